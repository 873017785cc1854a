#!/usr/bin/env bash
# The budget ladder's background training, from a frozen commit (so that later work on main
# never changes what a running job means). Resumable: run the same command again after any
# stop; finished rungs are skipped, an interrupted one resumes from its last checkpoint. Rungs
# recorded in the frozen commit's results/training/ladder/ are skipped too: on a new machine
# (no run folders, no trunk snapshots) they are never trained again; the others start over.
#
#   tools/ladder_queue.sh [COMMIT] [-- extra `srbench ladder train` options]
#
# To stop a queue: `kill $(cat <its .pid file>)` (SIGTERM): the rung under way checkpoints the
# iteration it is on and the queue exits 143; a second signal ends it at once.
#
# COMMIT (default: HEAD) is checked out as a git worktree in $LADDER_WORKTREES/<sha>; run
# folders, trunk snapshots and logs go to $LADDER_DIR (default /work/ladder), never into the
# repository. Uses the checkout's .venv with the worktree first on PYTHONPATH.
# LADDER_CPUS (e.g. "0"): pin the training to these cores, one torch thread per core -- on a
# 2-core machine shared with other work, a dedicated core at one thread beats two threads that
# wait for each other (measured: 13 s per DRN-S step with two threads beside test runs, against
# 0.65 s idle and about 1.2 s on one dedicated core).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
commit="$(git -C "$repo" rev-parse "${1:-HEAD}")"
shift || true
[ "${1:-}" = "--" ] && shift
worktrees="${LADDER_WORKTREES:-/work/ladder-worktrees}"
out="${LADDER_DIR:-/work/ladder}"
wt="$worktrees/${commit:0:12}"
if [ ! -d "$wt" ]; then
  mkdir -p "$worktrees"
  git -C "$repo" worktree add --detach "$wt" "$commit" >/dev/null
fi
mkdir -p "$out/logs"
export SRBENCH_DATA="${SRBENCH_DATA:-$(cd "$repo/.." && pwd)/shared/datasets}"
export PYTHONPATH="$wt"
cd "$wt"
# the queue's own pid in the name: two queues started in the same second get separate logs
log="$out/logs/ladder-$(date -u +%Y%m%dT%H%M%S)-${commit:0:8}-$$.log"
echo "ladder from $wt (commit $commit), run folders in $out, log $log"
pin=()
if [ -n "${LADDER_CPUS:-}" ]; then
  pin=(taskset -c "$LADDER_CPUS")
  export OMP_NUM_THREADS="$(echo "$LADDER_CPUS" | tr ',' '\n' | wc -l)"
fi
export SRBENCH_LADDER_DIR="$out"
nohup "${pin[@]}" "$repo/.venv/bin/python" -m srbench ladder train --output-dir "$out" "$@" \
  >"$log" 2>&1 &
echo $! >"${log%.log}.pid"  # one pid file per queue: two queues may run side by side
echo "pid $(cat "${log%.log}.pid")"
