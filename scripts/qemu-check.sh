#!/usr/bin/env bash
# The portable code paths, tested end to end: one release gradphoto binary
# normalises fixtures/ and a small generated cohort natively and then under
# user-mode QEMU with two older CPU models, and every output byte and every
# manifest record (timing fields aside) must be the same.
#
# gradphoto picks its fast paths at run time: is_x86_feature_detected! for
# its own AVX2 kernels (resize, colour, encode, scaled IDCTs, subject, rank,
# working copy), SSSE3 paths (border, portrait) and the SHA-NI digest; the
# sha2 crate and libjpeg-turbo (AVX2 or SSE2) detect for themselves. On a
# CPU with AVX2 the unit tests that compare AVX2 with portable code run both;
# this job runs the whole pipeline with the fast paths switched off by the
# CPU itself. What each model's CPUID reports (printed and checked below
# with examples/cpu_features.rs):
#   Westmere  SSE2, SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, AES; no AVX, AVX2,
#             FMA or SHA: every AVX2 kernel and the SHA-NI digest off, the
#             SSSE3 paths on, libjpeg-turbo on its SSE2 code.
#   qemu64    SSE, SSE2, SSE3 only: the SSSE3 paths off as well.
# QEMU also traps AVX2 instructions for these models (SIGILL; checked below
# with `cpu_features --execute-avx2`), so an emulated run that completes
# executed no AVX2 instruction at all, detected or not.
#
# Needs an x86-64 host, qemu-x86_64 (Debian: qemu-user) and python3; ideally
# nasm before the first build (libjpeg-turbo's SIMD). scripts/test.sh
# installs them and then runs this. Measured on 2 cores right after
# scripts/test.sh's cargo test: 147 s in all (169 s with the machine shared),
# of which about 1 minute builds the binary (the tests built the library with
# the test kit, this binary is built without it), 10-15 s generate the
# cohort, and about 70-90 s are the four emulated runs: emulation is about
# 20 times slower than native, hence a small cohort of small photos.
#
# Environment: QEMU_CHECK_COUNT (cohort size, default 32), QEMU_CHECK_SEED
# (default 5: progressive, YCCK, grayscale, PNG, restart markers, EXIF
# rotations, borders and unfit photos among them), QEMU_CHECK_MODELS
# (default "Westmere qemu64").
# Exits 0 when everything matched, 1 on any difference or failed check, and
# keeps its work folder (printed) for a look when something differs.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${QEMU_CHECK_COUNT:-32}
seed=${QEMU_CHECK_SEED:-5}
read -r -a models <<<"${QEMU_CHECK_MODELS:-Westmere qemu64}"
start=$SECONDS

say() { echo "qemu-check: $*"; }
die() {
  echo "qemu-check: FAILED: $*" >&2
  exit 1
}

if [ "$(uname -m)" != x86_64 ]; then
  say "SKIPPED: this host is $(uname -m); the job emulates older x86-64 CPUs for an x86-64 build"
  exit 0
fi
command -v qemu-x86_64 >/dev/null ||
  die "qemu-x86_64 not found: install Debian's qemu-user (apt-get install qemu-user), or run scripts/test.sh as root"
command -v python3 >/dev/null || die "python3 not found (apt-get install python3)"

work=$(mktemp -d "${TMPDIR:-/tmp}/gradphoto-qemu.XXXXXX")
ok=0
cleanup() {
  if [ "$ok" = 1 ]; then
    rm -rf "$work"
  else
    echo "qemu-check: work folder kept for a look: $work" >&2
  fi
}
trap cleanup EXIT

# One binary for every run: copied out so that later cargo commands cannot
# replace it.
say "building the release binary"
t=$SECONDS
cargo build --release --quiet --bin gradphoto --example cpu_features
target=${CARGO_TARGET_DIR:-target}/release
cp "$target/gradphoto" "$target/examples/cpu_features" "$work/"
gradphoto=$work/gradphoto
features=$work/cpu_features
say "built in $((SECONDS - t)) s"

say "generating a cohort of $count photos (seed $seed, 0.5-4 MP)"
t=$SECONDS
cargo run --release --quiet --features testkit --example make_cohort -- \
  --out "$work/cohort" --count "$count" --seed "$seed" --preset cohort \
  --min-mp 0.5 --max-mp 4 2>"$work/make_cohort.log" ||
  die "make_cohort failed: $(cat "$work/make_cohort.log")"
say "generated in $((SECONDS - t)) s"

# What the CPU detection sees natively and under each model.
native_line=$("$features")
say "native:   $native_line"
case " $native_line " in
  *" avx2=true "*) ;;
  *) say "WARNING: this CPU has no AVX2, so the native runs take the portable paths too; the comparison below then shows only that emulation changes nothing" ;;
esac
trapped=()
for model in "${models[@]}"; do
  line=$(qemu-x86_64 -cpu "$model" "$features") || die "cpu_features did not run under -cpu $model"
  say "$(printf '%-9s %s' "$model:" "$line")"
  case $model in
    qemu64) absent="ssse3 sse4.1 sse4.2 avx avx2 fma sha" ;;
    *) absent="avx avx2 fma sha" ;;
  esac
  for f in $absent; do
    case " $line " in
      *" $f=false "*) ;;
      *) die "under -cpu $model the binary detects $f (expected $f=false): the fast paths would not be off" ;;
    esac
  done
  # The emulator should kill a process that executes AVX2 on this model.
  if canary=$( (ulimit -c 0; qemu-x86_64 -cpu "$model" "$features" --execute-avx2) 2>&1); then
    say "WARNING: this QEMU executed an AVX2 instruction under -cpu $model ($canary); an unguarded AVX2 instruction would go unnoticed there (detection is still checked above)"
  else
    trapped+=("$model")
  fi
done

# Runs gradphoto normalize on INPUT into OUT, natively or under a model.
# Exit 1 means some photos failed (fixtures has 3 unfit samples): it ran.
normalize() {
  local model=$1 input=$2 out=$3 rc=0
  local run=("$gradphoto")
  [ "$model" = native ] || run=(qemu-x86_64 -cpu "$model" "$gradphoto")
  "${run[@]}" normalize "$input" --out "$out" --quiet >"$out.log" 2>&1 || rc=$?
  if [ "$rc" -gt 1 ]; then
    tail -n 20 "$out.log" >&2
    die "gradphoto normalize $input exited with $rc ($model)"
  fi
}

differences=0
for set in fixtures cohort; do
  input=fixtures/
  [ "$set" = cohort ] && input=$work/cohort
  t=$SECONDS
  normalize native "$input" "$work/native-$set"
  written=$(find "$work/native-$set" -maxdepth 1 -name '*.jpg' | wc -l)
  [ "$written" -gt 0 ] || die "no photo written natively for $set: nothing to compare"
  say "$set: native run wrote $written photos ($((SECONDS - t)) s)"
  for model in "${models[@]}"; do
    t=$SECONDS
    normalize "$model" "$input" "$work/$model-$set"
    if python3 scripts/compare-outputs.py "$work/native-$set" "$work/$model-$set" >"$work/compare-$model-$set.txt"; then
      say "$set under -cpu $model: $(tail -n 1 "$work/compare-$model-$set.txt") ($((SECONDS - t)) s)"
    else
      echo "qemu-check: $set under -cpu $model differs from the native run:" >&2
      cat "$work/compare-$model-$set.txt" >&2
      differences=$((differences + 1))
    fi
  done
done

[ "$differences" -eq 0 ] ||
  die "$differences of $((2 * ${#models[@]})) emulated runs differ from the native ones (outputs in $work)"
ok=1
say "OK: outputs and manifests identical natively and under ${models[*]} (AVX2 trapped under: ${trapped[*]:-none}); $((SECONDS - start)) s in all"
