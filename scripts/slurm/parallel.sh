#!/usr/bin/env bash
# A gradphoto batch as N shards on one big machine (or on several over ssh)
# with GNU parallel, then merged:
#   scripts/slurm/parallel.sh SHARDS INPUT OUT [normalize flags...]
# On one machine a single `gradphoto normalize` already uses every core;
# shards pay off when one process cannot use them all (NUMA nodes: pin each
# shard with numactl), or spread over machines that share OUT (add
# `-S node1,node2` to the parallel line below, with this script and
# gradphoto at the same path on each). Each shard gets the machine's cores
# divided among the shards.
set -euo pipefail
if [ "${1:-}" = --one-shard ]; then
  # One shard, as parallel runs it: exit 1 (the shard finished, some photos
  # failed, the manifest says which) counts as done.
  shift
  k=$1 shards=$2 jobs=$3 input=$4 out=$5
  shift 5
  status=0
  "${GRADPHOTO:-gradphoto}" normalize "$input" --out "$out" --shard "$k/$shards" \
    --jobs "$jobs" --quiet "$@" || status=$?
  [ "$status" -eq 1 ] && exit 0
  exit "$status"
fi
if [ $# -lt 3 ]; then
  echo "usage: $0 SHARDS INPUT OUT [normalize flags...]" >&2
  exit 2
fi
shards=$1 input=$2 out=$3
shift 3
jobs=$(($(nproc) / shards))
[ "$jobs" -ge 1 ] || jobs=1
# -q: every argument passed as it is, however it is spelt.
if ! parallel --halt never --line-buffer -j "$shards" -q \
  "$0" --one-shard {} "$shards" "$jobs" "$input" "$out" "$@" ::: $(seq 1 "$shards"); then
  echo "parallel.sh: some shards did not finish; run the same command again (they resume)" >&2
  exit 2
fi
"${GRADPHOTO:-gradphoto}" merge "$out" --out "$out"
