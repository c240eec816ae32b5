#!/usr/bin/env bash
# A sharded batch on a real Slurm cluster, end to end: starts a one-node
# cluster on this machine (Debian's slurm-wlm and munge), generates a cohort,
# submits scripts/slurm/gradphoto-array.sbatch as a 4-task job array (each
# task one shard, told which by Slurm's own SLURM_ARRAY_TASK_* variables),
# merges the parts with scripts/slurm/gradphoto-merge.sbatch as a job that
# waits for the array, and compares every output byte and the merged
# manifest (timing fields aside) with one plain run of the same cohort.
#
# Where Slurm cannot start (not root, not installed, a daemon that does not
# come up), it says so loudly and runs the same comparison with the 4 shards
# started by hand as separate processes (--shard K/4) at the same time.
#
# scripts/test.sh installs slurm-wlm and munge (as root) and runs this. The
# daemons it starts use a configuration and state of their own in the work
# folder and ports 16817/16818 (not Slurm's usual ones, so a real cluster on
# the machine is left alone), and are stopped at the end; munged is started
# only when none answers, and then stopped too.
#
# Environment: SHARD_CHECK_COUNT (photos, default 200), SHARD_CHECK_SEED
# (default 9), SHARD_CHECK_COHORT (a folder of photos to use instead of
# generating them), SHARD_CHECK_NO_SLURM=1 (go straight to the shards by
# hand).
# Exits 0 when everything matched, 1 otherwise (the work folder is kept).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${SHARD_CHECK_COUNT:-200}
seed=${SHARD_CHECK_SEED:-9}
shards=4
start=$SECONDS

say() { echo "shard-check: $*"; }
die() {
  echo "shard-check: FAILED: $*" >&2
  exit 1
}
loud() {
  echo "shard-check: ************************************************************" >&2
  echo "shard-check: SLURM COULD NOT START: $*" >&2
  echo "shard-check: the same comparison runs with $shards shard processes started by hand" >&2
  echo "shard-check: ************************************************************" >&2
}

command -v python3 >/dev/null || die "python3 not found (apt-get install python3)"
work=$(mktemp -d "${TMPDIR:-/tmp}/gradphoto-shards.XXXXXX")
chmod 755 "$work"
ok=0
munged_started=0
cleanup() {
  # Cleaning up never fails the check: what it decides is already said.
  set +e
  # The daemons this started, by the pid files they wrote.
  local daemon pid pids=() i
  for daemon in slurm/slurmd slurm/slurmctld; do
    [ -f "$work/$daemon.pid" ] && pids+=("$(cat "$work/$daemon.pid")")
  done
  if [ "$munged_started" = 1 ] && [ -f "$work/munge/munged.pid" ]; then
    pids+=("$(cat "$work/munge/munged.pid")")
  fi
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  # slurmctld saves its state as it stops: wait for the daemons to be gone
  # before the folder goes (removing it under them failed a CI run with
  # "Directory not empty"), and never let the cleaning fail the check.
  for pid in "${pids[@]}"; do
    for i in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
  done
  if [ "$ok" = 1 ]; then
    rm -rf "$work" 2>/dev/null || rm -rf "$work" 2>/dev/null ||
      echo "shard-check: could not remove $work (left for the system's tmp cleaner)" >&2
  else
    echo "shard-check: work folder kept for a look: $work" >&2
  fi
}
trap cleanup EXIT

say "building the release binary"
cargo build --release --quiet --bin gradphoto
cp "${CARGO_TARGET_DIR:-target}/release/gradphoto" "$work/"
export GRADPHOTO=$work/gradphoto

if [ -n "${SHARD_CHECK_COHORT:-}" ]; then
  say "using the cohort in $SHARD_CHECK_COHORT"
  ln -s "$(cd "$SHARD_CHECK_COHORT" && pwd)" "$work/cohort"
else
  say "generating a cohort of $count photos (seed $seed, 1.3-2 MP)"
  t=$SECONDS
  cargo run --release --quiet --features testkit --example make_cohort -- \
    --out "$work/cohort" --count "$count" --seed "$seed" --preset cohort \
    --min-mp 1.3 --max-mp 2 >"$work/make_cohort.log" 2>&1 ||
    die "make_cohort failed: $(cat "$work/make_cohort.log")"
  say "generated in $((SECONDS - t)) s"
fi

# gradphoto's exit 1 means some photos failed (the cohort has unfit ones).
run_ok() {
  local rc=0
  "$@" || rc=$?
  [ "$rc" -le 1 ] || die "$* exited with $rc"
}

t=$SECONDS
run_ok "$GRADPHOTO" normalize "$work/cohort" --out "$work/plain" --quiet >"$work/plain.log" 2>&1
written=$(find "$work/plain" -maxdepth 1 -name '*.jpg' | wc -l)
[ "$written" -gt $((count / 2)) ] || die "the plain run wrote only $written photos"
say "plain run: $written photos written ($((SECONDS - t)) s)"

# Starts munged (when none answers) and a one-node Slurm cluster; returns 1
# with the reason in $why when it cannot.
why=""
start_slurm() {
  if [ "$(id -u)" -ne 0 ]; then
    why="not root (slurmd must run as root)"
    return 1
  fi
  for tool in slurmctld slurmd sbatch sinfo munged munge unmunge; do
    command -v "$tool" >/dev/null || {
      why="$tool not found (Debian: apt-get install slurm-wlm munge)"
      return 1
    }
  done
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    [ -r /etc/munge/munge.key ] || {
      why="munged is not running and /etc/munge/munge.key is missing"
      return 1
    }
    mkdir -p "$work/munge" /run/munge
    chown munge: "$work/munge" /run/munge 2>/dev/null || true
    runuser -u munge -- munged --pid-file="$work/munge/munged.pid" \
      --log-file="$work/munge/munged.log" >/dev/null 2>&1 || {
      why="munged did not start: $(tail -n 3 "$work/munge/munged.log" 2>/dev/null)"
      return 1
    }
    munged_started=1
    munge -n | unmunge >/dev/null 2>&1 || {
      why="munge does not answer after starting munged"
      return 1
    }
  fi
  local host mem
  host=$(hostname -s)
  # In MB, less some for the system: the array script asks for memory.
  mem=$(awk '/^MemTotal:/ { m = int($2 / 1024) - 512; print (m > 512 ? m : 512) }' /proc/meminfo)
  mkdir -p "$work/slurm/state" "$work/slurm/spool"
  export SLURM_CONF=$work/slurm/slurm.conf
  cat >"$SLURM_CONF" <<EOF
ClusterName=gradphoto-check
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/slurm/state
SlurmdSpoolDir=$work/slurm/spool
SlurmctldPidFile=$work/slurm/slurmctld.pid
SlurmdPidFile=$work/slurm/slurmd.pid
SlurmctldLogFile=$work/slurm/slurmctld.log
SlurmdLogFile=$work/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=check Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -i >/dev/null 2>&1 || {
    why="slurmctld did not start: $(tail -n 3 "$work/slurm/slurmctld.log" 2>/dev/null)"
    return 1
  }
  slurmd >/dev/null 2>&1 || {
    why="slurmd did not start: $(tail -n 3 "$work/slurm/slurmd.log" 2>/dev/null)"
    return 1
  }
  local i state=""
  for i in $(seq 1 30); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)
    [ "$state" = idle ] && return 0
    sleep 1
  done
  why="the node is not idle after 30 s (sinfo says ${state:-nothing}): $(tail -n 3 "$work/slurm/slurmd.log" 2>/dev/null)"
  return 1
}

mode=slurm
if [ "${SHARD_CHECK_NO_SLURM:-0}" = 1 ]; then
  why="SHARD_CHECK_NO_SLURM=1"
  mode=hand
elif ! start_slurm; then
  mode=hand
fi

t=$SECONDS
if [ "$mode" = slurm ]; then
  say "one-node Slurm cluster up ($(sinfo -h -o '%P %D node, %c CPUs, %T'))"
  cd "$work"
  # One CPU a task: on 2 cores two shards run at a time, the others wait
  # in the queue, as on a busy cluster.
  timeout 900 sbatch --wait --quiet --array=0-$((shards - 1)) --cpus-per-task=1 --time=15 \
    --output="$work/array-%a.log" "$OLDPWD/scripts/slurm/gradphoto-array.sbatch" \
    "$work/cohort" "$work/sharded" ||
    die "the array job failed: $(tail -n 5 "$work"/array-*.log)"
  timeout 300 sbatch --wait --quiet --time=5 --output="$work/merge.log" \
    "$OLDPWD/scripts/slurm/gradphoto-merge.sbatch" "$work/sharded" ||
    die "the merge job failed: $(cat "$work/merge.log")"
  cd "$OLDPWD"
  for k in $(seq 1 $shards); do
    grep -q "shard $k of $shards (from SLURM_ARRAY_TASK_ID)" "$work"/array-*.log ||
      die "no array task said it was shard $k of $shards from SLURM_ARRAY_TASK_ID"
  done
  say "Slurm ran the $shards-task array and the merge job ($((SECONDS - t)) s): $(grep merged "$work/merge.log")"
else
  loud "$why"
  pids=()
  for k in $(seq 1 $shards); do
    "$GRADPHOTO" normalize "$work/cohort" --out "$work/sharded" --shard "$k/$shards" \
      --jobs 1 --quiet >"$work/shard-$k.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    rc=0
    wait "${pids[$i]}" || rc=$?
    [ "$rc" -le 1 ] || die "shard $((i + 1)) exited with $rc: $(tail -n 5 "$work/shard-$((i + 1)).log")"
  done
  run_ok "$GRADPHOTO" merge "$work/sharded" --out "$work/sharded" >"$work/merge.log" 2>&1
  say "$shards shards by hand and merged ($((SECONDS - t)) s): $(grep merged "$work/merge.log")"
fi

parts=$(find "$work/sharded/.gradphoto-shards" -mindepth 1 -maxdepth 1 -type d | wc -l)
[ "$parts" -eq "$shards" ] || die "$parts parts in $work/sharded/.gradphoto-shards, expected $shards"
python3 scripts/compare-outputs.py "$work/plain" "$work/sharded" >"$work/compare.txt" || {
  cat "$work/compare.txt" >&2
  die "the merged shards differ from the plain run"
}
grep -q '"merged"' "$work/sharded/manifest.json" || die "the merged manifest does not say it was merged"
ok=1
say "OK ($mode): $shards shards merged = one plain run, $(tail -n 1 "$work/compare.txt"); $((SECONDS - start)) s in all"
