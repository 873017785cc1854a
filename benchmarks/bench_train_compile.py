"""Does ``torch.compile`` make a CPU training step faster? (a script, not a test)::

    python benchmarks/bench_train_compile.py edsr_baseline drn_m [--steps 3] [--rounds 2]
        [--cores 1] [--scale 2]

For each model, bare fp32 training steps (forward, L1, backward, Adam; batch 16, LR patch 48,
random tensors; the model compiled as ``srbench train --compile`` does, the optimizer not) in
fresh processes pinned with ``taskset`` to ``--cores`` at one thread per core, eager and
compiled alternating for ``--rounds`` rounds: the median of ``--steps`` timed steps after 2
warm-up ones (a compiled process's first warm-up step includes the compilation, reported
apart). Each process also reports its first loss, so that the two forms can be seen to compute
the same step. Needs the cores to itself (stop a training queue on them first: SIGTERM, then
start it again). Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bare_steps(model: str, scale: int, steps: int, compiled: bool = False) -> dict:
    """``steps + 2`` bare fp32 training steps of ``model`` (batch 16, LR patch 48, random
    tensors, L1, Adam; the model compiled on request): the median of the last ``steps``, the
    first step's time and the first two losses."""
    import torch
    import torch.nn.functional as F

    from srbench.registry import create_model, get_card

    torch.manual_seed(0)
    net = create_model(model, scale).train()
    step_net = torch.compile(net) if compiled else net
    channels = 1 if get_card(model).input_channels == "y" else 3
    gen = torch.Generator().manual_seed(0)
    lr = torch.rand(16, channels, 48, 48, generator=gen)
    hr = torch.rand(16, channels, 48 * scale, 48 * scale, generator=gen)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    times, losses = [], []
    for _ in range(steps + 2):
        start = time.perf_counter()
        loss = F.l1_loss(step_net(lr), hr)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    return {
        "median_s": statistics.median(times[2:]),
        "first_step_s": times[0],
        "losses": losses[:2],
        "threads": torch.get_num_threads(),
    }


def _run(args: argparse.Namespace, model: str, compiled: bool) -> dict:
    cores = args.cores
    env = {**os.environ, "OMP_NUM_THREADS": str(len(cores.split(","))), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--child", model, "--steps", str(args.steps)]
    command += ["--scale", str(args.scale)] + (["--compiled"] if compiled else [])
    out = subprocess.run(
        ["taskset", "-c", cores, *command], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--cores", default="1")
    parser.add_argument("--child")
    parser.add_argument("--compiled", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(bare_steps(args.child, args.scale, args.steps, args.compiled)))
        return
    for model in args.models:
        runs: dict[str, list[dict]] = {"eager": [], "compiled": []}
        started = time.time()
        for _ in range(args.rounds):
            for kind in ("eager", "compiled"):
                runs[kind].append(_run(args, model, kind == "compiled"))
        medians = {k: [r["median_s"] for r in v] for k, v in runs.items()}
        print(
            json.dumps(
                {
                    "model": model,
                    "scale": args.scale,
                    "cores": args.cores,
                    "median_s": medians,
                    "speedup": statistics.median(medians["eager"])
                    / statistics.median(medians["compiled"]),
                    "compile_first_step_s": [r["first_step_s"] for r in runs["compiled"]],
                    "first_losses": {k: v[0]["losses"] for k, v in runs.items()},
                    "wall_s": round(time.time() - started),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
