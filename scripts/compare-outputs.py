#!/usr/bin/env python3
"""Compares two gradphoto output folders: every file byte for byte, and the
manifests record for record with the fields that measure time or the machine
left out (`started`, `finished`, `seconds`, `stage_seconds`, `jobs`, and
`merged`, which says how many shards made a merged manifest). Hidden files and
folders (the lock, a sharded batch's parts in .gradphoto-shards/) are ours,
not outputs, and are left out.

Usage: scripts/compare-outputs.py DIR_A DIR_B
Exit status 0 when they are the same, 1 with the differences listed."""
import json
import os
import sys

# Fields of the run header that say when and how fast, not what.
TIMING = {"started", "finished", "seconds", "stage_seconds", "jobs", "merged"}
MANIFESTS = {"manifest.json", "manifest.jsonl", "manifest.csv"}


def files(root):
    out = {}
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = path
    return out


def manifest(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    run = {k: v for k, v in doc.get("run", {}).items() if k not in TIMING}
    return run, doc.get("photos", [])


def journal(path):
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return sorted(records, key=lambda r: r.get("input", ""))


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = files(sys.argv[1]), files(sys.argv[2])
    problems = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            problems.append(f"{name}: only in {'the second' if name in b else 'the first'}")
            continue
        base = os.path.basename(name)
        if base == "manifest.json":
            (run_a, photos_a), (run_b, photos_b) = manifest(a[name]), manifest(b[name])
            if run_a != run_b:
                problems.append(f"{name}: run headers differ beyond timing")
            if photos_a != photos_b:
                diff = sum(1 for x, y in zip(photos_a, photos_b) if x != y)
                problems.append(f"{name}: {diff} records differ (counts {len(photos_a)} / {len(photos_b)})")
        elif base == "manifest.jsonl":
            if journal(a[name]) != journal(b[name]):
                problems.append(f"{name}: journal records differ")
        elif base.startswith("."):
            continue
        else:
            with open(a[name], "rb") as fa, open(b[name], "rb") as fb:
                if fa.read() != fb.read():
                    problems.append(f"{name}: bytes differ")
    for p in problems:
        print(p)
    print(f"compared {len(set(a) | set(b))} files: {'identical' if not problems else f'{len(problems)} differences'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
