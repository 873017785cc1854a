"""pytest-benchmark: CPU forward pass of every registered model at x2 on a 64x64 LR input.

Batch 1, random weights, ``torch.inference_mode``, fp32, the default thread count (recorded in
``extra_info``). Models without x2 use their smallest scale. Not part of the default test run;
run with ``.venv/bin/python -m pytest benchmarks --benchmark-only -q``. These are orientation
numbers; `srbench profile` makes the latency numbers to compare (docs/efficiency.md).
"""

from __future__ import annotations

import pytest
import torch

from srbench.profiling import input_channels
from srbench.registry import create_model, get_card, list_models

LR_SIZE = 64

pytestmark = pytest.mark.benchmark(group=f"forward: cpu, LR {LR_SIZE}x{LR_SIZE}, x2")


@pytest.mark.parametrize("name", list_models())
def test_forward_cpu(benchmark, name):
    card = get_card(name)
    scale = 2 if 2 in card.scales else min(card.scales)
    model = create_model(name, scale).eval()
    x = torch.rand(
        1, input_channels(card), LR_SIZE, LR_SIZE, generator=torch.Generator().manual_seed(0)
    )
    benchmark.extra_info.update(
        model=name, scale=scale, lr=f"{LR_SIZE}x{LR_SIZE}", threads=torch.get_num_threads()
    )

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    out = benchmark(forward)
    assert out.shape[-2:] == (LR_SIZE * scale, LR_SIZE * scale)
