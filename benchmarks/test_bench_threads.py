"""pytest-benchmark: the NumPy imresize followed by the torch SSIM, as the runner does per image,
with NumPy's BLAS pool left alone and held to one thread (what ``srbench.runner.iter_run`` does).

On a 2-core machine idle OpenBLAS threads spinning after the imresize slow the SSIM several-fold;
compare the two groups' medians (measured in the same run, never asserted as a timing)::

    .venv/bin/python -m pytest benchmarks/test_bench_threads.py --benchmark-only -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from srbench.color import rgb_to_y
from srbench.imresize import imresize
from srbench.metrics import ssim


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (480, 320, 3), dtype=np.uint8)


def _step(image: np.ndarray) -> float:
    lr = imresize(image, 1 / 3)
    up = imresize(lr, 3)
    sr = torch.from_numpy(rgb_to_y(up))
    hr = torch.from_numpy(rgb_to_y(image))
    return float(ssim(sr, hr, crop=3)[0])


@pytest.mark.benchmark(group="imresize + ssim, B100-sized x3")
def test_default_blas_threads(benchmark, image):
    benchmark.extra_info.update(blas_threads="default")
    assert 0 < benchmark(_step, image) < 1


@pytest.mark.benchmark(group="imresize + ssim, B100-sized x3")
def test_blas_held_to_one_thread(benchmark, image):
    benchmark.extra_info.update(blas_threads=1)
    with threadpool_limits(limits=1, user_api="blas"):
        assert 0 < benchmark(_step, image) < 1
