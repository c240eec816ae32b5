#!/usr/bin/env bash
# The whole test run, as the README gives it and as CI runs it (.ci/run):
#   1. installs what the tests need when it is missing, from Debian's
#      packages: chromium (tests/report_browser.rs renders report.html in
#      headless Chromium), nasm (libjpeg-turbo's SIMD code; it must be there
#      before the first build, or `cargo clean --release -p mozjpeg-sys`
#      after), qemu-user (scripts/qemu-check.sh), python3 (compares outputs),
#      poppler-utils (tests/print.rs reads the prints PDF with pdfinfo and
#      pdftoppm) and a C compiler (libjpeg-turbo is built from source). As
#      root this uses apt-get; otherwise it names what to install and stops;
#   2. cargo test --release --features testkit (the test kit: generators,
#      scorer and painters that tests and examples use);
#   3. scripts/qemu-check.sh: the same binary natively and under two emulated
#      CPUs without AVX2, outputs compared byte for byte;
#   4. scripts/shard-check.sh: a one-node Slurm cluster (Debian's slurm-wlm
#      and munge, installed here as root; without them the check says so
#      loudly and starts the shards by hand) runs a generated cohort as a
#      4-task job array, merged and compared byte for byte with one run.
# Rust itself (1.91 or newer, with cargo) is not installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || {
  echo "test.sh: cargo not found: install Rust 1.91 or newer (rustup) first" >&2
  exit 2
}

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v nasm >/dev/null || missing+=(nasm)
# The browser test takes $GRADPHOTO_CHROMIUM when set, else this path.
[ -n "${GRADPHOTO_CHROMIUM:-}" ] || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v qemu-x86_64 >/dev/null || missing+=(qemu-user)
command -v python3 >/dev/null || missing+=(python3)
# Slurm only as root: slurmd runs as root, and without it shard-check.sh
# runs the shards by hand rather than not at all.
slurm=()
if [ "$(id -u)" -eq 0 ]; then
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null || slurm+=(slurm-wlm)
  command -v munged >/dev/null || slurm+=(munge)
fi
# tests/print.rs opens the prints PDF with poppler (pdfinfo, pdftoppm).
{ [ -x /usr/bin/pdfinfo ] && [ -x /usr/bin/pdftoppm ]; } || missing+=(poppler-utils)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # libjpeg-turbo built before nasm was there stays without its SIMD code.
    case " ${missing[*]} " in
      *" nasm "*) [ ! -d "${CARGO_TARGET_DIR:-target}/release" ] ||
        cargo clean --release --quiet -p mozjpeg-sys ;;
    esac
  else
    echo "test.sh: missing ${missing[*]}; install them first (Debian:" \
      "sudo apt-get update && sudo apt-get install ${missing[*]}) and run again" >&2
    exit 2
  fi
fi

if [ ${#slurm[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "test.sh: installing ${slurm[*]} (apt-get, without recommends)"
  { [ ${#missing[@]} -gt 0 ] || apt-get update -qq; } &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${slurm[@]}" >/dev/null ||
    echo "test.sh: could not install ${slurm[*]}; shard-check.sh will say so and run the shards by hand" >&2
fi

cargo test --release --features testkit
scripts/qemu-check.sh
scripts/shard-check.sh
