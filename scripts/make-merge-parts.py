#!/usr/bin/env python3
"""Writes synthetic shard parts of a big batch, to time `gradphoto merge`
without processing the photos: N records split over SHARDS parts in
OUT/.gradphoto-shards/, each record a copy of a real one (from TEMPLATE, the
manifest.json of a real shard part, whose header is reused) with its own
input and output names, and a file of the recorded size in OUT for every
output (sparse: no bytes written), as merge checks that the photos are there.

Photos go to shards as gradphoto sends them: the first 8 bytes of the
SHA-256 of the path below the input folder, big-endian, modulo SHARDS.

Usage: scripts/make-merge-parts.py TEMPLATE N SHARDS OUT
then:  time gradphoto merge OUT --out OUT"""
import copy
import hashlib
import json
import os
import sys


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    template_path, n, shards, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(template_path, encoding="utf-8") as f:
        template = json.load(f)
    written = [r for r in template["photos"] if r.get("output")]
    if not written or "shard" not in template["run"]:
        print("TEMPLATE must be a shard part's manifest.json with a photo written", file=sys.stderr)
        return 2
    inputs = [f"cohort/{i:06}.jpg" for i in range(n)]
    batch = hashlib.sha256("".join(p + "\n" for p in sorted(inputs)).encode()).hexdigest()
    parts = [[] for _ in range(shards)]
    os.makedirs(out, exist_ok=True)
    for i, path in enumerate(inputs):
        key = path.split("/", 1)[1].encode()
        k = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % shards
        r = copy.deepcopy(written[i % len(written)])
        r["input"] = path
        r["input_sha256"] = hashlib.sha256(path.encode()).hexdigest()
        r["output"] = f"{i:06}.jpg"
        r["output_sha256"] = hashlib.sha256(r["output"].encode()).hexdigest()
        with open(os.path.join(out, r["output"]), "wb") as f:
            f.truncate(r["output_bytes"])
        parts[k].append(r)
    for k, records in enumerate(parts, start=1):
        run = copy.deepcopy(template["run"])
        run["shard"].update(index=k, count=shards, batch_inputs=n, batch_sha256=batch)
        part = os.path.join(out, ".gradphoto-shards", f"shard-{k:04}-of-{shards:04}")
        os.makedirs(part, exist_ok=True)
        with open(os.path.join(part, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump({"run": run, "photos": records}, f, ensure_ascii=False, indent=2)
    print(f"{n} records in {shards} parts: {[len(p) for p in parts]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
