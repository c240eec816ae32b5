#!/usr/bin/env bash
# Fuzzes the whole per-photo path (fuzz/fuzz_targets/normalize_photo.rs)
# with libFuzzer for SECONDS (default 600) on one core.
#
# Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# The corpus (fuzz/corpus/normalize_photo) is seeded on first use with small
# synthetic portraits of every kind the cohort generator makes (JPEG baseline,
# progressive, restart markers, gray, CMYK, YCCK, phone EXIF; PNG 8/16-bit,
# palette, alpha) plus every committed regression input in tests/hostile.
# Crashes land in fuzz/artifacts/normalize_photo; each one found must become
# a file in tests/hostile and a test in tests/hostile.rs.
# FUZZ_TARGET_DIR (default fuzz/target) holds the instrumented build.
# FUZZ_TARGET=decode_formats fuzzes the decode stage alone instead
# (fuzz/fuzz_targets/decode_formats.rs: TIFF, BMP, WebP, arithmetic JPEG and
# the colour profiles), seeded with tests/fixtures/formats.
# Usage: scripts/fuzz.sh [SECONDS] [extra libFuzzer flags]
set -euo pipefail
secs=${1:-600}
shift || true
cd "$(dirname "$0")/.."
target=${FUZZ_TARGET:-normalize_photo}
corpus=fuzz/corpus/$target
mkdir -p "$corpus" "fuzz/artifacts/$target"
if [ -z "$(ls -A "$corpus")" ]; then
  seeds=$(mktemp -d)
  trap 'rm -rf "$seeds"' EXIT
  cargo run --release --quiet --example make_cohort -- \
    --out "$seeds" --count 40 --seed 11 --preset cohort --min-mp 0.04 --max-mp 0.08
  find "$seeds" -type f \( -name '*.jpg' -o -name '*.png' \) -exec cp {} "$corpus"/ \;
fi
# Regression inputs always go back in, so the fuzzer starts from every
# crash it ever found.
# So do the small files of every format and colour profile the decoders read.
cp tests/fixtures/formats/* "$corpus"/
find tests/hostile -maxdepth 1 -type f -size -200k -exec cp {} "$corpus"/ \; 2>/dev/null || true
# -malloc_limit_mb: one allocation above it is reported as a crash, so a
# header that slips past the 1 MP pixel limit cannot go unnoticed.
# -O -a: optimised, but with overflow checks and debug assertions, which
# turn silent arithmetic wrap-around into findings.
cargo +nightly fuzz run -O -a --target-dir "${FUZZ_TARGET_DIR:-fuzz/target}" \
  "$target" "$corpus" -- \
  -max_total_time="$secs" -max_len=262144 -timeout=20 \
  -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1 "$@"
