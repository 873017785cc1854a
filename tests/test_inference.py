"""Tiled inference equals untiled; the x8 self-ensemble is the mean of the mapped-back outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srbench.inference import infer, memory_format, self_ensemble, tiled_forward
from srbench.registry import create_model


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _image(h: int, w: int, channels: int) -> torch.Tensor:
    y, x = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(x / 3.0) * np.cos(y / 5.0) + 0.1 * np.sin((x + y) / 2.0)
    img = np.stack([base * (0.8 + 0.1 * c) for c in range(channels)])
    return torch.from_numpy(img).float()[None]


@pytest.mark.parametrize(("name", "scale"), [("idn", 3), ("drn_s", 2), ("vdsr", 2)])
def test_tiled_equals_untiled(name, scale):
    torch.manual_seed(0)
    model = create_model(name, scale=scale).eval()
    channels = 1 if model.srbench_card.input_channels == "y" else 3
    lr = _image(45, 38, channels)
    with torch.inference_mode():
        full = model(lr)
        tiled = tiled_forward(model, lr, scale, tile=16, overlap=30)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max().item() < 1e-5


def test_tiling_without_enough_overlap_differs():
    """The overlap matters: a seam appears when it is smaller than the receptive field."""
    torch.manual_seed(0)
    model = create_model("idn", scale=2).eval()
    lr = _image(40, 40, 1)
    with torch.inference_mode():
        full = model(lr)
        seamed = tiled_forward(model, lr, 2, tile=16, overlap=0)
    assert (seamed - full).abs().max().item() > 1e-4


def test_infer_reports_requested_tiling():
    model = create_model("bicubic", scale=2)
    out, report = infer(model, _image(20, 20, 3), 2, tile=8, overlap=4)
    assert out.shape == (1, 3, 40, 40)
    assert report.tiled and report.reason == "requested"


def test_out_of_memory_falls_back_to_tiles_and_says_so():
    class Picky(torch.nn.Module):
        """Raises the CPU allocator's error for inputs larger than 16x16, like a real OOM."""

        def forward(self, x):
            if x.shape[-1] * x.shape[-2] > 32 * 32:
                raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ...")
            return x.repeat_interleave(2, -1).repeat_interleave(2, -2)

    lr = _image(50, 50, 1)
    out, report = infer(Picky(), lr, 2, overlap=0, fallback_tile=16)
    assert report.tiled and report.reason == "out of memory at full size"
    assert torch.equal(out, lr.repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_other_runtime_errors_are_not_swallowed():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        infer(Broken(), _image(8, 8, 1), 2)


def test_self_ensemble_of_bicubic_is_bicubic():
    """MATLAB bicubic with an integer factor commutes with flips and 90-degree rotations."""
    model = create_model("bicubic", scale=3)
    lr = _image(13, 17, 3).double()
    assert torch.allclose(self_ensemble(model, lr), model(lr), atol=1e-12)


def test_self_ensemble_is_mean_of_eight_transforms():
    torch.manual_seed(0)
    model = create_model("srcnn_915", scale=2).eval()
    lr = _image(11, 14, 1)
    with torch.inference_mode():
        got = self_ensemble(model, lr)
        outs = []
        for k in range(4):
            for flip in (False, True):
                x = torch.rot90(lr, k, (-2, -1))
                x = torch.flip(x, (-1,)) if flip else x
                y = model(x)
                y = torch.flip(y, (-1,)) if flip else y
                outs.append(torch.rot90(y, -k, (-2, -1)))
        want = torch.stack(outs).mean(0)
        plain = model(lr)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-4)  # a random model is not equivariant


@pytest.mark.parametrize(("name", "scale"), [("idn", 3), ("drn_s", 2), ("edsr_baseline", 4)])
def test_channels_last_evaluation_matches_nchw(name, scale):
    """The CPU evaluates in channels_last (faster); its output is NCHW's within float rounding."""
    assert memory_format(torch.device("cpu")) == torch.channels_last
    assert memory_format(torch.device("meta", 0)) == torch.contiguous_format
    torch.manual_seed(0)
    model = create_model(name, scale=scale).eval()
    channels = 1 if model.srbench_card.input_channels == "y" else 3
    lr = _image(40, 36, channels)
    with torch.inference_mode():
        nchw = model(lr)
        fast = model.to(memory_format=torch.channels_last)(
            lr.contiguous(memory_format=torch.channels_last)
        )
    assert fast.shape == nchw.shape
    assert (fast - nchw).abs().max().item() < 1e-5


def test_in_memory_format_copies_only_a_model_in_another_layout():
    """Validation during training converts a copy; the model being trained keeps its layout."""
    from srbench.inference import in_memory_format

    model = create_model("srcnn", scale=2).eval()
    cpu = torch.device("cpu")
    converted = in_memory_format(model, cpu)
    assert converted is not model
    assert model.conv1.weight.is_contiguous()  # the original is untouched
    assert converted.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert in_memory_format(converted, cpu) is converted


def _every_model_and_scale() -> list[tuple[str, int]]:
    from srbench.registry import get_card, list_models

    return [(name, scale) for name in list_models() for scale in get_card(name).scales]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scale"), _every_model_and_scale())
def test_every_model_tiled_with_its_own_overlap_scores_as_untiled(name, scale):
    """At the overlap derived from the model (its measured receptive radius r) tiling changes
    no number: PSNR/SSIM within 1e-4 of the untiled run, for every registered model and scale.
    The LR image is 16 x 3T with tiles of T = r + 4: the middle tile's context ends inside the
    image on both sides, so its seams are real ones."""
    from srbench.data import HRImage, pixels_sha256
    from srbench.evaluation import evaluate_image
    from srbench.inference import receptive_radius
    from srbench.protocols import LRCache, get_protocol, prepare

    torch.manual_seed(0)
    model = create_model(name, scale=scale).eval()
    card = model.srbench_card
    radius = receptive_radius(model, scale, 1 if card.input_channels == "y" else 3)
    assert radius is not None
    tile = radius + 4
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (4 * scale, 3 * tile, 3))
    pixels = np.kron(blocks, np.ones((4, scale, 1))).astype(np.uint8)  # 16s x 3Ts
    hr = HRImage("t", "t", pixels, pixels_sha256(pixels), None)
    protocol = get_protocol("standard")
    prepared = prepare(protocol, hr, scale, card.input_channels, LRCache(enabled=False))
    cpu = torch.device("cpu")
    full = evaluate_image(model, prepared, protocol, cpu)
    tiled = evaluate_image(model, prepared, protocol, cpu, tile=tile)
    assert tiled.report.tiled and tiled.report.overlap == radius
    for metric, value in full.scored.metrics.items():
        assert abs(tiled.scored.metrics[metric] - value) <= 1e-4, metric
