"""``--device`` strings: resolve_device (must exist here) and requested_device (a missing GPU is
recorded as not measured), each failure one line."""

from __future__ import annotations

import pytest
import torch

from srbench.devices import DeviceError, requested_device, resolve_device


@pytest.mark.parametrize("text", ["tpu", "gpu", "", "cuda:x"])
def test_unknown_devices_are_one_line_errors_for_both(text):
    for resolve in (resolve_device, requested_device):
        with pytest.raises(DeviceError) as info:
            resolve(text)
        assert "\n" not in str(info.value) and "cpu, cuda or cuda:N" in str(info.value)


def test_cpu_is_cpu_for_both():
    assert resolve_device(" CPU ") == requested_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_gpu_request_without_cuda():
    with pytest.raises(DeviceError, match=r"no usable CUDA GPU.*use --device cpu"):
        resolve_device("cuda")
    assert requested_device("cuda:1") == torch.device("cuda", 1)  # counted, not timed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_index_this_machine_lacks_is_refused_by_both():
    missing = f"cuda:{torch.cuda.device_count()}"
    for resolve in (resolve_device, requested_device):
        with pytest.raises(DeviceError, match=r"only .* CUDA device"):
            resolve(missing)
