"""One two-thread training run, or two one-thread runs side by side? (a script, not a test)::

    python benchmarks/bench_train_threads.py edsr_baseline drn_m [--steps 5] [--scale 2]

For each model, bare fp32 training steps (forward, L1, backward, Adam; batch 16, LR patch 48,
random tensors) in fresh processes pinned with ``taskset``: two threads on cores 0-1 alone, one
thread on core 0 alone, and a pair of one-thread processes on cores 0 and 1 at once. Medians of
``--steps`` timed steps after 2 warm-up ones; the pair's effective time per step is half the
mean of its two medians. Needs the two cores to itself (stop the training queues first: SIGTERM,
then start them again). Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(model: str, scale: int, steps: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_train_compile import bare_steps  # the one bare training step of the benchmarks

    result = bare_steps(model, scale, steps)
    print(json.dumps({"median_s": result["median_s"], "threads": result["threads"]}))


def _start(cores: str, args: argparse.Namespace, model: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(len(cores.split(","))), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--child", model, "--steps", str(args.steps)]
    command += ["--scale", str(args.scale)]
    return subprocess.Popen(["taskset", "-c", cores, *command], env=env, stdout=subprocess.PIPE)


def _median(process: subprocess.Popen) -> float:
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"a timing process failed (exit {process.returncode}); see above")
    return float(json.loads(out.decode().strip().splitlines()[-1])["median_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.models[0], args.scale, args.steps)
        return
    for model in args.models:
        two = _median(_start("0,1", args, model))
        one = _median(_start("0", args, model))
        pair = [_start("0", args, model), _start("1", args, model)]
        try:
            pair_s = [_median(p) for p in pair]
        finally:
            for process in pair:  # the other one too, where one failed
                if process.poll() is None:
                    process.kill()
        row = {
            "model": model,
            "scale": args.scale,
            "two_threads_s": round(two, 3),
            "one_thread_alone_s": round(one, 3),
            "pair_of_one_thread_s": [round(t, 3) for t in pair_s],
            "pair_s_per_step": round(statistics.fmean(pair_s) / 2, 3),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
