"""pytest-benchmark: PSNR and SSIM on a 512x512 Y pair (float64 inside, values in [0, 255]).

Not part of the default test run (``testpaths = tests``). Run with::

    .venv/bin/python -m pytest benchmarks --benchmark-only -q
"""

from __future__ import annotations

import pytest
import torch

from srbench.metrics import psnr, ssim

pytestmark = pytest.mark.benchmark(group="metrics: 512x512 Y")


@pytest.fixture(scope="module")
def y_pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (1, 1, 512, 512), generator=g).to(torch.float64)
    noise = torch.randint(-8, 9, (1, 1, 512, 512), generator=g).to(torch.float64)
    sr = (hr + noise).clamp(0, 255)
    return sr, hr


def test_psnr_512(benchmark, y_pair):
    sr, hr = y_pair
    benchmark.extra_info.update(size="512x512", channels=1, threads=torch.get_num_threads())
    value = benchmark(psnr, sr, hr, crop=4)
    assert torch.isfinite(value).all()


def test_ssim_512(benchmark, y_pair):
    sr, hr = y_pair
    benchmark.extra_info.update(size="512x512", channels=1, threads=torch.get_num_threads())
    value = benchmark(ssim, sr, hr, crop=4)
    assert 0 < float(value) < 1
