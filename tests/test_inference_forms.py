"""The faster CPU-inference formulations of DRN (1x1 fusions without concatenations) and IDN
(oneDNN convolution + LeakyReLU in one call) compute what the plain formulations compute: the
same outputs within fp32 rounding, Set5 PSNR within 1e-4 dB with the shipped weights (loaded
unchanged), and the plain formulation whenever autograd or a trace is involved."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from safetensors import safe_open
from torch import nn

import architectures.drn as drn
import architectures.idn as idn
from srbench.registry import create_model, get_card
from srbench.weights import shipped_dir


def _plain(name: str):
    """A patch switching ``name``'s model to its plain formulation."""
    if name.startswith("drn"):
        return mock.patch.object(drn, "_cat_free", lambda x: False)
    return mock.patch.object(idn, "_fused_cpu_inference", lambda: False)


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("bias", [True, False])
def test_fuse_1x1_equals_the_convolution_of_the_concatenation(bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(64 + 16 + 24, 64, 1, bias=bias)
    x = _cl(torch.randn(1, 64, 13, 17))
    parts = [_cl(torch.randn(1, 64, 13, 17)), x[:, :16], _cl(torch.randn(1, 24, 13, 17))]
    with torch.inference_mode():
        ours = drn.fuse_1x1(parts, conv)
        ref = conv(torch.cat(parts, dim=1))
    assert ours.shape == ref.shape and ours.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours, ref, rtol=0, atol=5e-6)


@pytest.mark.parametrize("name", ["drn_s", "drn_m", "drn_s_nodistill", "idn"])
def test_fast_forms_match_the_plain_forward(name):
    torch.manual_seed(0)
    model = create_model(name, 2).eval().to(memory_format=torch.channels_last)
    x = _cl(torch.rand(1, 1 if name == "idn" else 3, 23, 19))
    with torch.inference_mode():
        ours = model(x)
        with _plain(name):
            ref = model(x)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    # with autograd (training) the plain formulation runs: the same numbers exactly
    with torch.enable_grad():
        trained = model(x.clone().requires_grad_())
        with _plain(name):
            plain = model(x.clone().requires_grad_())
    assert trained.equal(plain) and trained.grad_fn is not None


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "scale"), [("drn_s", 2), ("drn_m", 2), ("idn", 2), ("idn", 3), ("idn", 4)]
)
def test_fast_forms_keep_set5_psnr(data_root, name, scale):
    """Shipped weights load unchanged (the file's keys and shapes are the state_dict's), and
    Set5 PSNR with the fast formulation equals the plain one's within 1e-4 dB, image by image
    (channels_last, inference mode: as `srbench run` evaluates)."""
    from srbench.data import get_benchmark, iter_benchmark
    from srbench.protocols import STANDARD, LRCache, prepare, score

    card = get_card(name)
    model = create_model(name, scale, pretrained=True).eval().to(memory_format=torch.channels_last)
    assert model.srbench_weights_sha256 == card.weights[scale].sha256
    with safe_open(shipped_dir() / card.weights[scale].filename, "pt") as f:
        stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not iterable)
    assert stored == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for hr in iter_benchmark(get_benchmark("set5"), data_root):
        prepared = prepare(STANDARD, hr, scale, card.input_channels, LRCache(enabled=False))
        lr = _cl(torch.from_numpy(prepared.model_input).float()[None])
        with torch.inference_mode():
            a = score(STANDARD, model(lr)[0], prepared).psnr_db
            with _plain(name):
                b = score(STANDARD, model(lr)[0], prepared).psnr_db
        assert abs(a - b) < 1e-4, (hr.name, a, b)
