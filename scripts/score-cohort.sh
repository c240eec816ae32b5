#!/usr/bin/env bash
# Runs `gradphoto normalize` (release) over a synthetic cohort made by
# make-cohort.sh and scores the manifest against the cohort's truth.json.
# Usage: scripts/score-cohort.sh COHORT_DIR OUT_DIR [extra normalize flags]
# OUT_DIR must not hold an earlier run's outputs (they are not overwritten).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 COHORT_DIR OUT_DIR [normalize flags]" >&2
  exit 2
fi
cohort=$1 out=$2
shift 2
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin gradphoto --example score_cohort
target=${CARGO_TARGET_DIR:-target}
start=$(date +%s.%N)
# A run that flags photos exits non-zero; the score says whether rightly.
"$target/release/gradphoto" normalize "$cohort" --out "$out" "$@" >"$out.log" 2>&1 || true
end=$(date +%s.%N)
echo "normalize: $(echo "$end - $start" | bc) s (log: $out.log)"
"$target/release/examples/score_cohort" "$cohort" "$out"
