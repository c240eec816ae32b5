#!/usr/bin/env bash
# Peak memory against the number of photos: gradphoto on cohorts of 24 MP
# photos of different sizes, all cores, /usr/bin/time -v. The photos are
# DISTINCT generated files (default 24) linked under as many names as each
# cohort needs: every name is a separate photo to gradphoto (read, decoded,
# written and recorded on its own), and a 4,500-photo cohort costs 24
# photos' disk space and generation time instead of 4,500.
#
# Resident memory is also sampled every 0.5 s (VmRSS from /proc) into
# BENCH_TMP/trace-N.tsv (seconds, MB), summarised as the median and 90th
# percentile of the samples after the first 10% of the run: the peak is one
# moment, the trace shows whether memory grows with the photos done.
#
# Usage: scripts/bench-memory.sh [COUNTS...]      (default: 500 4500)
# Env: DISTINCT (24), JOBS (nproc), BENCH_TMP (/tmp/gradphoto-memory),
#      BIN (a gradphoto binary to measure instead of building this tree).
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(500 4500)
work=${BENCH_TMP:-/tmp/gradphoto-memory}
distinct=${DISTINCT:-24}
jobs=${JOBS:-$(nproc)}
mkdir -p "$work"
if [ ! -f "$work/distinct/truth.json" ]; then
  rm -rf "$work/distinct"
  scripts/make-cohort.sh "$distinct" 24 "$work/distinct" --min-mp 23 --max-mp 24
fi
bin=${BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin gradphoto
  bin=${CARGO_TARGET_DIR:-target}/release/gradphoto
fi
mapfile -t sources < <(find "$work/distinct" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) | sort)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GB; $jobs jobs; ${#sources[@]} distinct 23-24 MP photos"
printf '| photos | seconds | photos/s | peak RSS MB | RSS median / p90 MB | written | failed |\n| --- | --- | --- | --- | --- | --- | --- |\n'
for n in "${counts[@]}"; do
  cohort=$work/cohort-$n out=$work/out-$n
  if [ "$(find "$cohort" -maxdepth 1 -type f 2>/dev/null | wc -l)" != "$n" ]; then
    rm -rf "$cohort" && mkdir -p "$cohort"
    for ((i = 0; i < n; i++)); do
      src=${sources[i % ${#sources[@]}]}
      ln "$src" "$cohort/$(printf '%05d' "$i")-$(basename "$src")"
    done
  fi
  rm -rf "$out"
  /usr/bin/time -v -o "$work/time-$n.log" "$bin" normalize "$cohort" --out "$out" --jobs "$jobs" --quiet \
    >"$work/run-$n.log" 2>&1 &
  timer=$!
  trace=$work/trace-$n.tsv
  : >"$trace"
  child=
  start=$(date +%s.%N)
  while kill -0 "$timer" 2>/dev/null; do
    [ -n "$child" ] || child=$(pgrep -P "$timer" | head -n1 || true)
    if [ -n "$child" ] && [ -r "/proc/$child/status" ]; then
      kb=$(awk '/^VmRSS:/{print $2}' "/proc/$child/status" 2>/dev/null || true)
      [ -z "$kb" ] || awk -v t="$(date +%s.%N)" -v s="$start" -v kb="$kb" \
        'BEGIN{printf "%.1f\t%.0f\n", t-s, kb/1024}' >>"$trace"
    fi
    sleep 0.5
  done
  wait "$timer" || true
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$work/time-$n.log")
  rss=$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$work/time-$n.log")
  written=$(find "$out" -maxdepth 1 -name '*.jpg' | wc -l)
  spread=$(awk -F'\t' '{t[NR]=$1; m[NR]=$2} END{for(i=1;i<=NR;i++) if (t[i] >= t[NR]*0.1) print m[i]}' "$trace" |
    sort -n | awk '{v[NR]=$1} END{p=int(NR*0.9); if (p < NR*0.9) p++; if (p < 1) p=1; if (NR == 0) print "-"; else printf "%d / %d", v[int((NR+1)/2)], v[p]}')
  printf '| %s | %.0f | %.1f | %s | %s | %s | %s |\n' "$n" "$secs" "$(awk -v n="$n" -v s="$secs" 'BEGIN{print n/s}')" \
    "$rss" "$spread" "$written" "$((n - written))"
done
