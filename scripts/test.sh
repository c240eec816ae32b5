#!/usr/bin/env bash
# The whole test run, as the README gives it and as CI runs it (.ci/run):
#   1. installs what the tests need when it is missing, from Debian's
#      packages: chromium (tests/report_browser.rs renders report.html in
#      headless Chromium), nasm (libjpeg-turbo's SIMD code; it must be there
#      before the first build, or `cargo clean --release -p mozjpeg-sys`
#      after), qemu-user (scripts/qemu-check.sh), python3 (compares outputs)
#      and a C compiler (libjpeg-turbo is built from source). As root this
#      uses apt-get; otherwise it names what to install and stops;
#   2. cargo test --release --features testkit (the test kit: generators,
#      scorer and painters that tests and examples use);
#   3. scripts/qemu-check.sh: the same binary natively and under two emulated
#      CPUs without AVX2, outputs compared byte for byte.
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

cargo test --release --features testkit
scripts/qemu-check.sh
