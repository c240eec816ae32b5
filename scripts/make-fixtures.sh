#!/usr/bin/env bash
# Regenerates fixtures/ (the committed synthetic sample and its truth.json).
# Deterministic: the same seed gives byte-identical files on any machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf fixtures
cargo run --release --quiet --example make_cohort -- --out fixtures --preset fixtures --seed 1
