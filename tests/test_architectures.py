"""Registry-wide model contract tests plus exact architecture facts (parameter counts, names).

The contract checks are plain functions (``check_*``) applied to every registered model through
``list_models()``, so a model registered later -- built in or by a plugin -- is covered without
editing this file; ``test_temporary_model_is_covered`` proves that with a model registered here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from srbench.errors import ModelNotFoundError
from srbench.imresize import imresize_torch
from srbench.registry import (
    ModelCard,
    create_model,
    get_card,
    list_models,
    register_model,
    unregister_model,
)

LR_H, LR_W = 7, 9  # odd, tiny
BENCHMARK_SETS = {"set5", "set14", "b100", "urban100", "manga109"}
PROTOCOLS = {"legacy-y", "standard"}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Inputs here are tiny: intra-op threads only add overhead (and stall on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# Helpers used by the registry-wide tests (and by the temporary-model test)
# ----------------------------------------------------------------------------------------------


def channels_for(card: ModelCard) -> tuple[int, ...]:
    """Channel counts to test a model with: 1 for Y models, 3 for RGB, both for 'any'."""
    return {"y": (1,), "rgb": (3,), "any": (1, 3)}[card.input_channels]


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lr_input(channels: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, channels, LR_H, LR_W, generator=g)


def build(name: str, scale: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, scale)


def check_forward(name: str, scale: int, *, grad: bool = True) -> None:
    """Output shape/dtype/finiteness at ``scale``; with ``grad``, gradients reach every parameter."""
    card = get_card(name)
    model = build(name, scale)
    grad = grad and card.trainable
    for c in channels_for(card):
        x = lr_input(c).requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            y = model(x)
        assert y.shape == (1, c, LR_H * scale, LR_W * scale), (name, scale, tuple(y.shape))
        assert y.dtype == x.dtype
        assert torch.isfinite(y).all(), f"{name} x{scale}: non-finite output"
        if grad:
            y.square().mean().backward()
            grads = [p.grad for p in model.parameters() if p.requires_grad]
            assert grads, f"{name}: trainable model without trainable parameters"
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            model.zero_grad(set_to_none=True)


def check_determinism(name: str, scale: int) -> None:
    card = get_card(name)
    c = channels_for(card)[-1]
    m1, m2 = build(name, scale, seed=123), build(name, scale, seed=123)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k], s2[k]), f"{name}: {k} differs for the same seed"
    with torch.no_grad():
        assert torch.equal(m1.eval()(lr_input(c)), m2.eval()(lr_input(c)))


def check_card(name: str) -> None:
    card = get_card(name)
    assert card.name == name
    assert card.missing_fields() == [], f"{name}: incomplete card {card.missing_fields()}"
    assert card.scales and all(isinstance(s, int) and s >= 1 for s in card.scales)
    assert card.input_channels in ("y", "rgb", "any")
    for r in card.published:
        assert r.dataset in BENCHMARK_SETS, (name, r)
        assert r.scale in card.scales, (name, r)
        assert r.protocol in PROTOCOLS, (name, r)
        assert 15 < r.psnr_db < 50 and 0 < r.ssim < 1, (name, r)
        assert r.source
    assert len({(r.dataset, r.scale) for r in card.published}) == len(card.published)
    for s, ref in card.weights.items():
        assert s in card.scales
        assert ref.filename.endswith(".safetensors")
        assert len(ref.sha256) == 64 and int(ref.sha256, 16) >= 0
        assert ref.source
    assert set(card.published_params) <= set(card.scales)


def check_param_count(name: str, scale: int) -> None:
    card = get_card(name)
    if scale not in card.published_params:
        return  # nothing published to compare with (e.g. DRN: bands tested below)
    assert trainable_params(build(name, scale)) == card.published_params[scale]


# ----------------------------------------------------------------------------------------------
# Registry-wide tests
# ----------------------------------------------------------------------------------------------

MODELS = list_models()
MODEL_SCALES = [(n, s) for n in MODELS for s in get_card(n).scales if s in (2, 3, 4)]
PUBLISHED_PARAMS = [(n, s) for n, s in MODEL_SCALES if s in get_card(n).published_params]


def test_builtin_models_registered():
    expected = {
        "bicubic",
        "srcnn",
        "srcnn_915",
        "vdsr",
        "idn",
        "edsr_baseline",
        "drn_s",
        "drn_m",
        "drn_s_nodistill",
        "drn_s_plain",
    }
    assert expected <= set(MODELS)


@pytest.mark.parametrize(("name", "scale"), MODEL_SCALES)
def test_forward_contract(name, scale):
    # Gradients are checked at the smallest scale only, to keep the suite fast.
    check_forward(name, scale, grad=scale == min(get_card(name).scales))


@pytest.mark.parametrize("name", MODELS)
def test_determinism(name):
    check_determinism(name, 2)


@pytest.mark.parametrize("name", MODELS)
def test_card_complete(name):
    check_card(name)


@pytest.mark.parametrize(("name", "scale"), PUBLISHED_PARAMS)
def test_published_param_count(name, scale):
    check_param_count(name, scale)


def test_temporary_model_is_covered():
    class Tiny(nn.Module):
        def __init__(self, scale: int) -> None:
            super().__init__()
            self.scale = scale
            self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
            self.shuffle = nn.PixelShuffle(scale)

        def forward(self, x):
            return imresize_torch(x, self.scale) + self.shuffle(self.conv(x))

    card = ModelCard(
        name="zz_tmp_test_model",
        family="test",
        paper="A. Tester, 'A temporary model', Journal of Tests 1, 2024",
        year=2024,
        scales=(2, 3, 4),
        input_channels="rgb",
        pre_upsampled=False,
        licence="MIT",
        published_params={s: 3 * 3 * 3 * 3 * s * s + 3 * s * s for s in (2, 3, 4)},
    )
    register_model(card)(lambda scale, **kw: Tiny(scale))
    try:
        assert "zz_tmp_test_model" in list_models()
        assert list_models("zz_tmp*") == ["zz_tmp_test_model"]
        for s in (2, 3, 4):
            check_forward("zz_tmp_test_model", s)
            check_param_count("zz_tmp_test_model", s)
        check_determinism("zz_tmp_test_model", 3)
        check_card("zz_tmp_test_model")
    finally:
        unregister_model("zz_tmp_test_model")
    assert "zz_tmp_test_model" not in list_models()


# ----------------------------------------------------------------------------------------------
# Names and lookup
# ----------------------------------------------------------------------------------------------


def test_aliases_are_the_same_model():
    """`drn` and `edsr` are what users type; results are stored under one name, the card's."""
    from srbench.registry import resolve

    assert resolve("drn").key == "drn_s" and resolve("DRN").card is get_card("drn_s")
    assert resolve("edsr").key == "edsr_baseline"
    assert "drn" in get_card("drn_s").aliases and "edsr" in get_card("edsr_baseline").aliases
    assert list_models("drn") == ["drn_s"] and list_models("edsr") == ["edsr_baseline"]
    assert create_model("drn", 2).srbench_card.name == "drn_s"
    assert resolve("idn.official").key == "idn.official"
    assert resolve("edsr.official").key == "edsr_baseline.official"
    with pytest.raises(ModelNotFoundError, match="published no weights"):
        resolve("drn.official")
    with pytest.raises(ModelNotFoundError, match="unknown weights tag 'zoo2'"):
        resolve("idn.zoo2")
    assert "idn.official" in list_models(tags=True)


def test_list_models_patterns():
    assert list_models("edsr*") == ["edsr_baseline"]
    assert list_models("drn*") == ["drn_m", "drn_s", "drn_s_nodistill", "drn_s_plain"]
    assert list_models("srcnn*") == ["srcnn", "srcnn_915"]
    assert "bicubic" not in list_models(trainable=True)
    assert list_models(trainable=False) == ["bicubic"]


@pytest.mark.parametrize(
    ("typo", "suggestion"), [("idm", "idn"), ("srcn", "srcnn"), ("edsr_base", "edsr_baseline")]
)
def test_unknown_model_suggests(typo, suggestion):
    with pytest.raises(ModelNotFoundError, match="did you mean") as info:
        create_model(typo, 2)
    assert suggestion in str(info.value)
    with pytest.raises(ModelNotFoundError):
        get_card(typo)


def test_unsupported_scale_and_unknown_option():
    from srbench.errors import SRBenchError

    with pytest.raises(SRBenchError, match="x5"):
        create_model("idn", 5)
    with pytest.raises(TypeError, match="unknown options"):
        create_model("drn_s", 2, n_fets=8)


# ----------------------------------------------------------------------------------------------
# Exact architecture facts
# ----------------------------------------------------------------------------------------------

EXACT = {
    "bicubic": {2: 0, 3: 0, 4: 0},
    "srcnn": {2: 57_281, 3: 57_281, 4: 57_281},
    "srcnn_915": {2: 8_129, 3: 8_129, 4: 8_129},
    "vdsr": {2: 665_921, 3: 665_921, 4: 665_921},
    "idn": {2: 552_769, 3: 552_769, 4: 552_769},
    "edsr_baseline": {2: 1_369_859, 3: 1_554_499, 4: 1_517_571},
}


@pytest.mark.parametrize(("name", "scale"), [(n, s) for n, c in EXACT.items() for s in c])
def test_exact_parameter_counts(name, scale):
    assert trainable_params(create_model(name, scale)) == EXACT[name][scale]
    assert get_card(name).published_params[scale] == EXACT[name][scale]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_drn_sizes(scale):
    count = {n: trainable_params(create_model(n, scale)) for n in list_models("drn*")}
    idn, edsr = EXACT["idn"][scale], EXACT["edsr_baseline"][scale]
    assert abs(count["drn_s"] / idn - 1) <= 0.05, count
    assert abs(count["drn_m"] / edsr - 1) <= 0.05, count
    assert abs(count["drn_s_plain"] / count["drn_s"] - 1) <= 0.02, count
    assert count["drn_s_nodistill"] < count["drn_s"]


def test_drn_configs_and_assumptions():
    s = create_model("drn_s", 2)
    nd = create_model("drn_s_nodistill", 2)
    plain = create_model("drn_s_plain", 2)
    assert s.config["use_distill"] and s.config["block"] == "rdb"
    assert not nd.config["use_distill"] and nd.config["block"] == "rdb"
    for key in ("n_feats", "n_groups", "n_blocks", "activation", "upsampler"):
        assert nd.config[key] == s.config[key]  # only the distilling branch is removed
    assert plain.config["block"] == "plain" and plain.config["n_feats"] == s.config["n_feats"]
    assert not any("distill" in k for k, _ in nd.named_parameters())
    for name in list_models("drn*"):
        card = get_card(name)
        assert card.licence == "unknown (no official code)"
        assert len(card.assumptions) >= 8 and all(isinstance(a, str) for a in card.assumptions)
        assert "no official code" in card.notes.lower()
        # No published numbers and no authors' weights: DRN's only weights are srbench's own.
        assert not card.published and not card.official_weights and not card.published_params
        assert all(ref.shipped for ref in card.weights.values())


@pytest.mark.parametrize("activation", ["elu", "relu", "leakyrelu"])
def test_drn_options(activation):
    model = create_model(
        "drn_s", 3, n_feats=8, n_groups=2, n_blocks=2, distill_channels=4, activation=activation
    )
    assert model(lr_input(3)).shape == (1, 3, LR_H * 3, LR_W * 3)
    with pytest.raises(ValueError, match="activation"):
        create_model("drn_s", 2, activation="gelu")
    with pytest.raises(ValueError, match="upsampler"):
        create_model("drn_s", 2, upsampler="deconv")
    with pytest.raises(ValueError, match="plain"):
        create_model("drn_s", 2, block="plain", use_distill=True)


def test_mean_shift_is_a_frozen_buffer():
    for name in ("edsr_baseline", "drn_s"):
        model = create_model(name, 2)
        buffers = dict(model.named_buffers())
        assert {"sub_mean.shift", "add_mean.shift"} <= set(buffers)
        assert torch.allclose(
            buffers["add_mean.shift"].flatten(), 255 * torch.tensor([0.4488, 0.4371, 0.4040])
        )
        assert not any("mean" in k for k, _ in model.named_parameters())
        assert not any("mean" in k for k in model.state_dict())  # constant, not stored


def test_edsr_keeps_official_module_names():
    keys = set(create_model("edsr_baseline", 4).state_dict())
    for k in (
        "head.0.weight",
        "body.0.body.0.weight",
        "body.15.body.2.bias",
        "body.16.weight",
        "tail.0.0.weight",
        "tail.0.2.weight",
        "tail.1.weight",
    ):
        assert k in keys


def test_official_layer_names():
    vdsr = set(create_model("vdsr", 2).state_dict())
    assert vdsr == {f"conv{i}.{p}" for i in range(1, 21) for p in ("weight", "bias")}
    idn = create_model("idn", 2).state_dict()
    assert len(idn) == 62
    assert idn["conv3_2.weight"].shape == (32, 12, 3, 3)
    assert idn["conv6_5.weight"].shape == (48, 16, 3, 3)
    assert idn["down4.weight"].shape == (64, 80, 1, 1)
    assert idn["upsample.weight"].shape == (64, 1, 17, 17)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_idn_upsampler_alignment_matches_caffe(scale):
    """Padding 9-s keeping the first h*s pixels == Caffe's padding 8 with the HR shifted by s-1."""
    torch.manual_seed(0)
    model = create_model("idn", scale)
    feats = torch.rand(1, 64, LR_H, LR_W)
    ours = model.upsample(feats)[..., : LR_H * scale, : LR_W * scale]
    caffe = nn.functional.conv_transpose2d(
        feats, model.upsample.weight, model.upsample.bias, stride=scale, padding=8
    )
    assert caffe.shape[-2:] == (LR_H * scale - scale + 1, LR_W * scale - scale + 1)
    torch.testing.assert_close(ours[..., scale - 1 :, scale - 1 :], caffe)


def test_bicubic_is_imresize_and_pre_upsampled_flags():
    x = lr_input(3)
    torch.testing.assert_close(create_model("bicubic", 3)(x), imresize_torch(x, 3))
    assert {n for n in MODELS if get_card(n).pre_upsampled} >= {"srcnn", "srcnn_915", "vdsr"}
    assert not get_card("idn").pre_upsampled and not get_card("bicubic").trainable


def test_zero_network_reduces_to_bicubic():
    """Residual-on-bicubic models (VDSR, IDN) return bicubic when their residual is zero."""
    x = lr_input(1)
    for name in ("vdsr", "idn"):
        model = create_model(name, 2)
        last = model.conv20 if name == "vdsr" else model.upsample
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
            torch.testing.assert_close(model(x), imresize_torch(x, 2))


def test_published_protocols():
    for name in ("bicubic", "srcnn", "vdsr", "idn"):
        assert {r.protocol for r in get_card(name).published} == {"legacy-y"}
        assert len(get_card(name).published) == 15
    assert {r.protocol for r in get_card("edsr_baseline").published} == {"standard"}
    assert math.isclose(get_card("idn").published_for("set5", 2).psnr_db, 37.83)
    assert get_card("edsr_baseline").published_for("urban100", 4).ssim == 0.7849


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_idn_lr_grid_upsampler_equals_the_transposed_convolution(scale):
    """The LR-grid convolution + pixel shuffle computes the same sums as the 17x17 transposed
    convolution (fp32 rounding apart), gradients included; the state_dict is unchanged."""
    torch.manual_seed(0)
    model = create_model("idn", scale)
    nn.init.normal_(model.upsample.weight, std=0.05)
    nn.init.normal_(model.upsample.bias)
    feats = torch.randn(2, 64, LR_H, LR_W, requires_grad=True)
    transposed = model.upsample(feats)[..., : LR_H * scale, : LR_W * scale]
    ours = model._upsample(feats)
    torch.testing.assert_close(ours, transposed, rtol=1e-5, atol=1e-5)
    (g_ours,) = torch.autograd.grad(ours.square().sum(), model.upsample.weight)
    (g_ref,) = torch.autograd.grad(transposed.square().sum(), model.upsample.weight)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-3)
    assert "_lr_grid_index" not in model.state_dict()


@pytest.mark.data
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_idn_lr_grid_upsampler_keeps_set5_psnr(data_root, scale):
    """With the shipped weights (loaded unchanged), Set5 PSNR of the LR-grid formulation equals
    the transposed convolution's within 1e-4 dB, image by image."""
    from srbench.data import get_benchmark, iter_benchmark
    from srbench.protocols import STANDARD, LRCache, prepare, score
    from srbench.registry import get_card
    from srbench.weights import load_weights, shipped_dir

    card = get_card("idn")
    model = create_model("idn", scale).eval()
    load_weights(model, shipped_dir() / card.weights[scale].filename, card=card, scale=scale)

    def transposed(x):
        h, w = x.shape[-2:]
        up = imresize_torch(x, float(scale))
        f = model._act(model.conv2(model._act(model.conv1(x))))
        for k in range(3, 7):
            f = model._block(k, f)
        return up + model.upsample(f)[..., : h * scale, : w * scale]

    for hr in iter_benchmark(get_benchmark("set5"), data_root):
        prepared = prepare(STANDARD, hr, scale, "y", LRCache(enabled=False))
        lr = torch.from_numpy(prepared.model_input).float()[None]
        with torch.no_grad():
            a = score(STANDARD, model(lr)[0], prepared).psnr_db
            b = score(STANDARD, transposed(lr)[0], prepared).psnr_db
        assert abs(a - b) < 1e-4, (hr.name, a, b)


def test_drn_elu_inference_formula_equals_nn_elu():
    """DRN's ELU without autograd (max(x, 0) + exp(min(x, 0)) - 1, in place) equals nn.ELU
    within fp32 rounding of exp(x) - 1; with autograd it is nn.ELU itself, gradients included."""
    from architectures.drn import ELU

    x = torch.linspace(-20, 20, 10_001).reshape(1, 1, 73, 137).contiguous()
    ref = nn.functional.elu(x)
    with torch.inference_mode():
        ours = ELU(inplace=True)(x.clone())
    torch.testing.assert_close(ours, ref, rtol=0, atol=1.2e-7)
    assert ours[x > 0].equal(x[x > 0])  # the positive side is exactly x
    kept = x.clone()
    with torch.no_grad():
        ELU(inplace=False)(kept)
    assert kept.equal(x)  # inplace=False leaves its input alone
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ELU()(a * 1.0).sum().backward()
    nn.functional.elu(b).sum().backward()
    assert a.grad.equal(b.grad)


def _every_bf16() -> torch.Tensor:
    return torch.from_numpy(np.arange(-32768, 32768, dtype=np.int16)).view(torch.bfloat16)


@pytest.mark.parametrize("layout", ["flat", "contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("inplace", [False, True])
def test_drn_bf16_elu_equals_nn_elu_on_every_bf16_value(layout, inplace):
    """DRN's bf16 ELU (a table look-up) equals nn.ELU bit for bit on all 65,536 bf16 values,
    NaNs and infinities included, keeps the layout, and writes in place only when asked; a
    tensor in neither dense layout goes to nn.ELU."""
    from architectures.drn import ELU

    x = _every_bf16() if layout == "flat" else _every_bf16().view(4, 16, 32, 32)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # neither layout: nn.ELU itself
        x = _every_bf16().view(4, 16, 32, 16, 2)[..., 0]
    ref = nn.functional.elu(x)
    kept = x.clone()
    with torch.no_grad():
        ours = ELU(inplace=inplace)(x)
    assert ours.view(torch.int16).equal(ref.view(torch.int16))
    assert ours.stride() == (x.stride() if inplace else ref.stride())
    assert (ours.data_ptr() == x.data_ptr()) == inplace
    assert inplace or x.view(torch.int16).equal(kept.view(torch.int16))


def test_drn_bf16_elu_gradient_is_nn_elus():
    """With autograd, the bf16 ELU's gradient is nn.ELU(inplace=True)'s, bit for bit."""
    from architectures.drn import ELU

    x = _every_bf16().view(4, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    x = torch.where(x.isfinite(), x, 0.0)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).bfloat16()
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ELU(inplace=True)(a * 1).backward(grad)
    nn.ELU(inplace=True)(b * 1).backward(grad)
    assert a.grad is not None and b.grad is not None and a.grad.equal(b.grad)


def test_drn_bf16_training_step_is_bit_identical_to_nn_elu(monkeypatch):
    """A bf16-autocast training step of DRN-S (channels_last, Adam) ends with the same weights,
    bit for bit, whether its activations are the table ELU or nn.ELU: rungs trained before and
    after the change are one computation."""
    import copy

    import architectures.drn as drn
    from srbench.precision import Precision
    from srbench.training.steps import TrainStep

    torch.manual_seed(0)
    ours = create_model("drn_s", 2).train().to(memory_format=torch.channels_last)
    ref = copy.deepcopy(ours)
    for module in ref.modules():
        if isinstance(module, drn.ELU):
            module.forward = nn.ELU.forward.__get__(module)  # type: ignore[method-assign]
    table = drn._BF16ELUFunction.apply
    calls: list[int] = []
    monkeypatch.setattr(drn._BF16ELUFunction, "apply", lambda *a: (calls.append(1), table(*a))[1])
    bf16 = Precision("bf16", "bf16-autocast (cpu)", torch.bfloat16, channels_last=True, tf32=False)
    gen = torch.Generator().manual_seed(1)
    lr, hr = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 32, 32, generator=gen)
    for net in (ours, ref):
        step = TrainStep(net, torch.optim.Adam(net.parameters(), 1e-3), nn.functional.l1_loss,
                         device=torch.device("cpu"), precision=bf16)  # fmt: skip
        step(lr, hr)
        step(lr, hr)
    assert len(calls) == 2 * 16 * 2  # two steps of 16 blocks x 2 ELUs, all through the table
    for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        assert a.equal(b), name


@pytest.mark.data
@pytest.mark.parametrize("name", ["drn_s", "drn_m"])
def test_drn_elu_formula_keeps_set5_psnr(data_root, name):
    """With the shipped x2 weights (loaded unchanged), Set5 PSNR of DRN with the inference ELU
    formula equals nn.ELU's within 1e-4 dB, image by image (channels_last, as `run` evaluates)."""
    from unittest import mock

    from architectures.drn import ELU
    from srbench.data import get_benchmark, iter_benchmark
    from srbench.protocols import STANDARD, LRCache, prepare, score

    model = create_model(name, 2, pretrained=True).eval().to(memory_format=torch.channels_last)
    assert model.srbench_weights_sha256 == get_card(name).weights[2].sha256
    for hr in iter_benchmark(get_benchmark("set5"), data_root):
        prepared = prepare(STANDARD, hr, 2, "rgb", LRCache(enabled=False))
        lr = torch.from_numpy(prepared.model_input).float()[None]
        lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            a = score(STANDARD, model(lr)[0], prepared).psnr_db
            with mock.patch.object(ELU, "forward", nn.ELU.forward):
                b = score(STANDARD, model(lr)[0], prepared).psnr_db
        assert abs(a - b) < 1e-4, (hr.name, a, b)
