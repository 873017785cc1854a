"""DRN's inference ELU against ``nn.ELU``, in one process, alternating (not a unit test)::

    python benchmarks/bench_drn_elu.py [--threads 1] [--repeats 9]

Times ``nn.ELU(inplace=True)`` and ``architectures.drn.ELU`` (the exp formula used without
autograd) on a 16x64x96x96 fp32 channels_last tensor under ``torch.inference_mode``; prints the
medians (first pass of each dropped as warm-up) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from architectures.drn import ELU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(16, 64, 96, 96, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    variants = {"nn.ELU": nn.ELU(inplace=True), "drn.ELU": ELU(inplace=True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for _ in range(args.repeats + 1):
            for name, act in variants.items():
                y = x.clone()
                start = time.perf_counter()
                act(y)
                times[name].append((time.perf_counter() - start) * 1e3)
    median = {name: statistics.median(t[1:]) for name, t in times.items()}
    print(json.dumps({"threads": args.threads, "median_ms": median,
                      "speedup": median["nn.ELU"] / median["drn.ELU"]}))  # fmt: skip


if __name__ == "__main__":
    main()
