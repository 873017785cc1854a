"""DRN's ELU against ``nn.ELU`` (a script, not a unit test)::

    python benchmarks/bench_drn_elu.py [--dtype fp32|bf16] [--threads 1] [--repeats 9]
    python benchmarks/bench_drn_elu.py --step drn_m [--threads 1] [--repeats 3] [--steps 6]

``--dtype fp32`` (default): ``nn.ELU(inplace=True)`` against ``architectures.drn.ELU`` (the exp
formula used without autograd) on a 16x64x96x96 channels_last tensor under
``torch.inference_mode``, in one process, alternating; medians (first pass of each dropped).

``--dtype bf16``: the same on a 16x64x48x48 bf16 tensor (DRN-M's activations in a bf16 training
step), where ``drn.ELU`` is the table look-up; ``--step MODEL``: whole bf16-autocast training
steps (x2, batch 16, LR patch 48, channels_last, Adam) with the model's ELUs as they are and with
``nn.ELU``. Both run **each variant in its own fresh process**, alternating ``--repeats`` times:
on this project's AMD EPYC (KVM) torch's ``exp``/``expm1`` run 3-7x faster in a process that has
once taken them of negative subnormals -- which building the ELU table does -- so a same-process
comparison would time ``nn.ELU`` in that faster state too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

VARIANTS = ("nn.ELU", "drn.ELU")


def _elu_fp32(repeats: int) -> dict[str, list[float]]:
    from architectures.drn import ELU

    x = torch.randn(16, 64, 96, 96, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    variants = {"nn.ELU": nn.ELU(inplace=True), "drn.ELU": ELU(inplace=True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for _ in range(repeats + 1):
            for name, act in variants.items():
                y = x.clone()
                start = time.perf_counter()
                act(y)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: t[1:] for name, t in times.items()}


def _elu_bf16(variant: str, repeats: int) -> list[float]:
    from architectures.drn import ELU

    x = torch.randn(16, 64, 48, 48, generator=torch.Generator().manual_seed(0)) * 2
    x = x.bfloat16().contiguous(memory_format=torch.channels_last)
    act = ELU() if variant == "drn.ELU" else nn.ELU()
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            act(x)
            times.append((time.perf_counter() - start) * 1e3)
    return times[1:]


def _step(variant: str, model: str, steps: int) -> list[float]:
    import torch.nn.functional as F

    import architectures.drn as drn
    from srbench.precision import training_precision
    from srbench.registry import create_model
    from srbench.training.steps import TrainStep

    torch.manual_seed(0)
    net = create_model(model, 2).train().to(memory_format=torch.channels_last)
    if variant == "nn.ELU":
        for module in net.modules():
            if isinstance(module, drn.ELU):
                module.forward = nn.ELU.forward.__get__(module)  # type: ignore[method-assign]
    precision = training_precision("bf16", torch.device("cpu"))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    step = TrainStep(net, optimizer, F.l1_loss, device=torch.device("cpu"), precision=precision)
    gen = torch.Generator().manual_seed(1)
    lr, hr = torch.rand(16, 3, 48, 48, generator=gen), torch.rand(16, 3, 96, 96, generator=gen)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        step(lr, hr)
        times.append((time.perf_counter() - start) * 1e3)
    return times[1:]


def _child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    if args.step:
        times = _step(args.child, args.step, args.steps)
    else:
        times = _elu_bf16(args.child, args.repeats)
    print(json.dumps(times))


def _in_processes(args: argparse.Namespace) -> dict[str, list[float]]:
    """Each variant's median, from a fresh process per run, alternating."""
    base = [sys.executable, __file__, "--threads", str(args.threads), "--dtype", args.dtype]
    base += ["--repeats", "9", "--steps", str(args.steps)] + (
        ["--step", args.step] * bool(args.step)
    )
    medians: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name in VARIANTS:
            out = subprocess.run(
                [*base, "--child", name], capture_output=True, text=True, check=True
            )
            medians[name].append(statistics.median(json.loads(out.stdout)))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--step", metavar="MODEL", help="time bf16 training steps of MODEL")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per process")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    torch.set_num_threads(args.threads)
    if args.dtype == "fp32" and not args.step:
        runs = _elu_fp32(args.repeats)
        what = "fp32 ELU, 16x64x96x96, one process, alternating"
    else:
        runs = _in_processes(args)
        what = f"bf16 {'training step of ' + args.step if args.step else 'ELU, 16x64x48x48'}"
        what += ", one fresh process per run, alternating"
    median = {name: statistics.median(t) for name, t in runs.items()}
    print(json.dumps({"what": what, "threads": args.threads, "median_ms": median,
                      "runs_ms": runs, "speedup": median["nn.ELU"] / median["drn.ELU"]}))  # fmt: skip


if __name__ == "__main__":
    main()
