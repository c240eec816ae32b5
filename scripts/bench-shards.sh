#!/usr/bin/env bash
# Wall time of one batch as 1 process and as SHARDS shard processes started
# at once on this machine (each --jobs cores/SHARDS, at least 1), then
# merged; A and B alternate ROUNDS times so that a machine whose load
# changes weighs on both alike. Every round checks that the merged shards
# equal the plain run (scripts/compare-outputs.py), and then times `merge`
# of 4,500 synthetic records (scripts/make-merge-parts.py).
#   scripts/bench-shards.sh COHORT [SHARDS (4)] [ROUNDS (2)]
# COHORT: a folder of photos, e.g. made by
#   scripts/make-cohort.sh 1000 26 /tmp/c1000 --min-mp 1.5 --max-mp 3
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: $0 COHORT [SHARDS] [ROUNDS]" >&2
  exit 2
fi
cohort=$1 shards=${2:-4} rounds=${3:-2}
cargo build --release --quiet --bin gradphoto
work=$(mktemp -d "${TMPDIR:-/tmp}/gradphoto-bench-shards.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "${CARGO_TARGET_DIR:-target}/release/gradphoto" "$work/"
g=$work/gradphoto
cores=$(nproc)
per=$((cores / shards))
[ "$per" -ge 1 ] || per=1
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
load() { cut -d' ' -f1 /proc/loadavg; }
for round in $(seq 1 "$rounds"); do
  rm -rf "$work/one" "$work/shards"
  t=$(now)
  "$g" normalize "$cohort" --out "$work/one" --jobs "$cores" --quiet >/dev/null 2>&1 || true
  echo "round $round: 1 process (--jobs $cores): $(since "$t") s (load $(load))"
  t=$(now)
  for k in $(seq 1 "$shards"); do
    "$g" normalize "$cohort" --out "$work/shards" --shard "$k/$shards" --jobs "$per" \
      --quiet >/dev/null 2>&1 &
  done
  wait
  shards_s=$(since "$t")
  t=$(now)
  "$g" merge "$work/shards" --out "$work/shards" >/dev/null 2>&1 || true
  echo "round $round: $shards shards (--jobs $per each, at once): $shards_s s, merge $(since "$t") s (load $(load))"
  python3 scripts/compare-outputs.py "$work/one" "$work/shards" | tail -n 1
done
python3 scripts/make-merge-parts.py \
  "$work/shards/.gradphoto-shards/shard-0001-of-$(printf %04d "$shards")/manifest.json" \
  4500 "$shards" "$work/merge4500" >/dev/null
t=$(now)
"$g" merge "$work/merge4500" --out "$work/merge4500" >/dev/null
echo "merge of 4,500 synthetic records in $shards parts: $(since "$t") s"
