#!/usr/bin/env bash
# Times gradphoto against ImageMagick and libvips doing the same job on the
# same cohort in ONE run, validates every output with the same yardstick
# (examples/validate.rs: SPEC §1 and the composition rule), and prints
# photos/s, peak resident memory and the ratios gradphoto/peer.
#
# Usage: scripts/bench.sh COHORT_DIR [JOBS...]     (default JOBS: 1 and nproc)
# The ratios are then measured again with the tools interleaved chunk by
# chunk (FLOOR_PASSES, FLOOR_CHUNK, INTERLEAVE: see below): on a shared VM
# one whole run of a tool varies by 10-30%, more than the distance to a
# target.
# Set FLOOR_ONLY=1 to skip the table and measure only the interleaved
# ratios. Set SKIP_SETUP=1 to
# skip installing the peers (and nasm, which builds the JPEG decoder with
# SIMD; a gradphoto built before nasm was installed needs
# `cargo clean -p mozjpeg-sys` to pick it up). Work files go to
# ${BENCH_TMP:-/tmp/gradphoto-bench}.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 COHORT_DIR [JOBS...]" >&2
  exit 2
fi
cohort=$(realpath "$1")
shift
cd "$(dirname "$0")/.."
ncores=$(nproc)
jobs_list=("$@")
[ ${#jobs_list[@]} -gt 0 ] || jobs_list=(1 "$ncores")
work=${BENCH_TMP:-/tmp/gradphoto-bench}

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq imagemagick libvips-tools time nasm >/dev/null
  python3 -m pip install -q pyvips
fi
# /usr/local/bin may hold a stand-in `convert`; use the Debian one.
magick=/usr/bin/convert
cargo build --release --quiet --bin gradphoto --example validate --example speed
bin=${CARGO_TARGET_DIR:-target}/release
mapfile -t photos < <(find -L "$cohort" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort)
n=${#photos[@]}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GB"
echo "cohort: $cohort, $n photos, $(du -shL "$cohort" | cut -f1)"
# Every tool reads the photos from the page cache: the first one timed would
# otherwise also pay for reading them from disk (a cold 1.2 GB cohort cost
# gradphoto, timed first, 13% at 2 jobs).
cat "${photos[@]}" >/dev/null

# Runs a command under /usr/bin/time -v; sets $secs, $cpu_secs (user +
# system) and $rss_mb.
timed() {
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" >"$work/cmd.log" 2>&1 || true
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$log")
  cpu_secs=$(awk -F': ' '/(User|System) time \(seconds\)/{s+=$2} END{print s}' "$log")
  rss_mb=$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$log")
}

magick_one() {
  local in=$1 out=$2/$(basename "${1%.*}").jpg
  # jpeg:size lets libjpeg decode at reduced scale (at least 2x the output).
  "$magick" -define jpeg:size=960x1280 "$in" -auto-orient -trim +repage \
    -resize '480x640^' -gravity center -extent 480x640 -strip \
    -density 300 -units PixelsPerInch -define jpeg:extent=100kb "$out"
}
export -f magick_one
export magick

# Runs TOOL on the photos in DIR at JOBS jobs, writing to OUT, under
# `timed`.
run_tool() {
  local tool=$1 jobs=$2 dir=$3 out=$4 list=()
  # The peers take the photos as a list; gradphoto and the floor a folder.
  if [ "$tool" = vips ] || [ "$tool" = magick ]; then
    mapfile -t list < <(find -L "$dir" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort)
  fi
  case $tool in
    gradphoto) timed "$bin/gradphoto" normalize "$dir" --out "$out" --jobs "$jobs" ;;
    decode-floor) timed "$bin/examples/speed" decode "$dir" --jobs "$jobs" ;;
    gradphoto-fullsize) timed "$bin/examples/speed" normalize "$dir" --out "$out" --jobs "$jobs" --max-factor 1 ;;
    vips) timed python3 scripts/bench_vips.py "$out" "$jobs" "${list[@]}" ;;
    magick) timed bash -c 'printf "%s\0" "$@" | xargs -0 -P '"$jobs"' -I{} bash -c "magick_one \"\$1\" '"$out"' 2>/dev/null || true" _ {}' _ "${list[@]}" ;;
  esac
}

if [ "${FLOOR_ONLY:-0}" != 1 ]; then
printf '%-20s %5s %8s %9s %7s %8s %12s %7s\n' tool jobs seconds photos/s peakMB spec_ok composition valid
declare -A rate
for jobs in "${jobs_list[@]}"; do
  for tool in gradphoto decode-floor gradphoto-fullsize vips magick; do
    out=$work/$tool-$jobs
    rm -rf "$out" && mkdir -p "$out"
    run_tool "$tool" "$jobs" "$cohort" "$out"
    rate[$tool-$jobs]=$(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.2f", n/s}')
    if [ "$tool" = decode-floor ]; then
      ok=- comp=- valid=-
    else
      v=$("$bin/examples/validate" "$out")
      ok=$(sed -n 's/.*spec_ok=\([0-9]*\).*/\1/p' <<<"$v")
      comp=$(sed -n 's/.*composition_ok=\([0-9]*\).*/\1/p' <<<"$v")
      valid=$(sed -n 's/.* valid=\([0-9]*\).*/\1/p' <<<"$v")
    fi
    printf '%-20s %5s %8.1f %9s %7s %8s %12s %7s\n' "$tool" "$jobs" "$secs" "${rate[$tool-$jobs]}" "$rss_mb" "$ok/$n" "$comp/$n" "$valid/$n"
  done
  for peer in vips magick decode-floor; do
    awk -v a="${rate[gradphoto-$jobs]}" -v b="${rate[$peer-$jobs]}" -v p="$peer" -v j="$jobs" \
      'BEGIN{printf "ratio gradphoto/%s at %s jobs: %.2f\n", p, j, a/b}'
  done
done
echo "peak RSS: gradphoto is one process; vips and magick are the largest single process (they run one per job)."
fi

# The ratios again, interleaved finely: the cohort is cut into chunks of
# FLOOR_CHUNK photos (default 50), and each chunk is run by gradphoto and by
# each tool in INTERLEAVE (default: decode-floor magick; vips can be added,
# but its per-process Python start-up then counts once per chunk) one right
# after the other, the order rotating from
# chunk to chunk; FLOOR_PASSES (default 3) passes over the cohort. On a
# shared VM the speed drifts by 10-30% over minutes, so two whole-cohort
# runs a minute apart can differ more than the distance to a target; runs
# of one chunk seconds apart see the same machine. Each pass's ratio is the
# sum of its chunks' times. Every chunk run is a separate process with its
# own start-up (and for gradphoto its own final manifest).
passes=${FLOOR_PASSES:-3}
chunk=${FLOOR_CHUNK:-50}
# FLOOR_PASSES=0: the table alone.
[ "$passes" -gt 0 ] || exit 0
read -r -a others <<<"${INTERLEAVE:-decode-floor magick}"
# Prints "v1 v2 ... (median m)" for the values given.
sorted_with_median() {
  printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1; printf "%s ", $1} END{printf "(median %s)", (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'
}
chunks=$work/chunks
rm -rf "$chunks"
for ((i = 0; i < n; i++)); do
  dir=$chunks/$(printf '%04d' $((i / chunk)))
  mkdir -p "$dir"
  ln -s "${photos[$i]}" "$dir/"
done
mapfile -t chunk_dirs < <(find "$chunks" -mindepth 1 -maxdepth 1 -type d | sort)
sides=(gradphoto "${others[@]}")
# SIDE GRADPHOTO_SECONDS SIDE_SECONDS: the floor's ratio is gradphoto's
# time over its own (target <= 1.5); a peer's is its time over gradphoto's,
# i.e. gradphoto's throughput over the peer's.
side_ratio() {
  awk -v s="$1" -v g="$2" -v o="$3" 'BEGIN{printf "%.3f", s == "decode-floor" ? g/o : o/g}'
}
for jobs in "${jobs_list[@]}"; do
  declare -A wall_ratios=() cpu_ratios=()
  floor_chunks=()
  for ((pass = 0; pass < passes; pass++)); do
    declare -A wall=() cpu=() chunk_wall=()
    for side in "${sides[@]}"; do wall[$side]=0 cpu[$side]=0; done
    for ((c = 0; c < ${#chunk_dirs[@]}; c++)); do
      for ((k = 0; k < ${#sides[@]}; k++)); do
        side=${sides[$(((c + pass + k) % ${#sides[@]}))]}
        out=$work/chunk-$side
        rm -rf "$out" && mkdir -p "$out"
        run_tool "$side" "$jobs" "${chunk_dirs[$c]}" "$out"
        chunk_wall[$side]=$secs
        wall[$side]=$(awk -v a="${wall[$side]}" -v b="$secs" 'BEGIN{print a+b}')
        cpu[$side]=$(awk -v a="${cpu[$side]}" -v b="$cpu_secs" 'BEGIN{print a+b}')
      done
      if [ -n "${chunk_wall[decode-floor]:-}" ]; then
        floor_chunks+=("$(awk -v g="${chunk_wall[gradphoto]}" -v f="${chunk_wall[decode-floor]}" 'BEGIN{printf "%.3f", g/f}')")
      fi
    done
    for side in "${others[@]}"; do
      wall_ratios[$side]+="$(side_ratio "$side" "${wall[gradphoto]}" "${wall[$side]}") "
      cpu_ratios[$side]+="$(side_ratio "$side" "${cpu[gradphoto]}" "${cpu[$side]}") "
    done
  done
  for side in "${others[@]}"; do
    read -r -a w <<<"${wall_ratios[$side]}"
    read -r -a u <<<"${cpu_ratios[$side]}"
    case $side in
      decode-floor) what="time gradphoto / time decode-floor (target <= 1.5)" ;;
      vips) what="photos/s gradphoto / vips (target >= 2)" ;;
      magick) what="photos/s gradphoto / magick (target >= 5)" ;;
      *) what="gradphoto against $side" ;;
    esac
    echo "$what at $jobs jobs, $passes passes of ${#chunk_dirs[@]} interleaved chunks of $chunk photos: $(sorted_with_median "${w[@]}")"
    # CPU time is less moved by the scheduler than wall time; every tool
    # keeps the cores busy, so the two ratios should agree.
    echo "  the same in CPU seconds (user + system): $(sorted_with_median "${u[@]}")"
  done
  if [ ${#floor_chunks[@]} -gt 0 ]; then
    echo "  single chunks, gradphoto / decode-floor, wall time: $(printf '%s\n' "${floor_chunks[@]}" | sort -n | awk '{v[NR]=$1} END{printf "min %s, quartiles %s %s %s, max %s", v[1], v[int(NR/4)+1], v[int(NR/2)+1], v[int(3*NR/4)+1], v[NR]}')"
  fi
done
