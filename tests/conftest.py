import os
import pathlib

import pytest


def _data_root():
    v = os.environ.get("SRBENCH_DATA")
    return pathlib.Path(v) if v else None


@pytest.fixture(scope="session")
def data_root():
    root = _data_root()
    if root is None or not (root / "Set5").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("SRBENCH_DATA must point at the benchmark data in CI")
        pytest.skip("benchmark data not available: set SRBENCH_DATA")
    return root


@pytest.fixture(scope="session")
def reference_weights(data_root):
    """The official IDN/VDSR weights as .npz (shared test data next to the datasets)."""
    root = data_root.parent / "reference-weights"
    if not (root / "idn_x2.npz").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"reference weights missing: expected {root}/idn_x2.npz in CI")
        pytest.skip(f"reference weights not available at {root}")
    return root


def pytest_configure(config):
    # Commands run with no --results-dir write to the user's store: in tests, a throwaway one.
    if "SRBENCH_RESULTS" not in os.environ:
        import tempfile

        os.environ["SRBENCH_RESULTS"] = tempfile.mkdtemp(prefix="srbench-results-")


@pytest.fixture
def diverge_at(monkeypatch):
    """``diverge_at(which)``: from then on the training step's loss is 5.0 (above 1 on [0, 1]
    images: diverged) on the calls ``which(call)`` selects, counted from 1 (a real divergence's
    iteration depends on the CPU's arithmetic). Calling it again starts a new count."""
    import torch

    import srbench.training.steps as steps

    real = steps.TrainStep.__call__

    def patch(which):
        calls = []

        def step(self, lr, hr):
            calls.append(1)
            loss = real(self, lr, hr)
            return torch.full_like(loss, 5.0) if which(len(calls)) else loss

        monkeypatch.setattr(steps.TrainStep, "__call__", step)

    return patch
