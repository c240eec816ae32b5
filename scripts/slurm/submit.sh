#!/usr/bin/env bash
# Submits a whole sharded batch to Slurm: an array of SHARDS tasks, then the
# merge as a job that starts when every task has succeeded.
#   scripts/slurm/submit.sh SHARDS INPUT OUT [normalize flags...]
# Set GRADPHOTO to the binary's path when it is not on the nodes' PATH, and
# pass sbatch options (partition, account, time) in SBATCH_* variables, e.g.
# SBATCH_PARTITION=cpu SBATCH_ACCOUNT=photos. Prints the two job ids.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 SHARDS INPUT OUT [normalize flags...]" >&2
  exit 2
fi
shards=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
array=$(sbatch --parsable --array=0-$((shards - 1)) "$here/gradphoto-array.sbatch" "$@")
array=${array%%;*}
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
  "$here/gradphoto-merge.sbatch" "$2")
echo "array job $array ($shards shards), merge job $merge"
