#!/usr/bin/env bash
# Writes a synthetic vendor cohort: N photos (2-24 MP, vendor-like mix of
# borders, EXIF rotation, PNG, progressive/gray/CMYK and a few unfixable
# cases) plus OUTDIR/truth.json.
# Usage: scripts/make-cohort.sh N SEED OUTDIR [extra make_cohort flags]
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 N SEED OUTDIR [--min-mp X --max-mp Y --force]" >&2
  exit 2
fi
n=$1 seed=$2 out=$3
shift 3
cd "$(dirname "$0")/.."
cargo run --release --quiet --example make_cohort -- \
  --out "$out" --count "$n" --seed "$seed" --preset cohort "$@"
