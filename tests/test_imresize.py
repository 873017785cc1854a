"""Tests for srbench.imresize: MATLAB bit-exactness on the shared LR files, properties, known answers.

The data tests need SRBENCH_DATA (see tests/conftest.py); everything else runs anywhere.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from srbench.imresize import (
    _round_saturate,
    imresize,
    imresize_torch,
    modcrop,
    resize_matrix,
)

FACTORS = (2, 3, 4)
SCALES = (1 / 2, 1 / 3, 1 / 4, 2, 3, 4)

# --------------------------------------------------------------------------------------------------
# helpers


def _load(path: pathlib.Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _hr_path(data_root: pathlib.Path, dataset: str, stem: str) -> pathlib.Path:
    matches = sorted((data_root / dataset / "HR").glob(stem + ".*"))
    assert matches, f"no HR image for {dataset}/{stem}"
    return matches[0]


def _random_image(seed: int, shape: tuple[int, ...], dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.random(shape).astype(dtype)


def _cubic_scalar(t: float) -> float:
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def _reference_matrix(
    in_len: int, out_len: int, scale: float, border: str = "replicate"
) -> np.ndarray:
    """Scalar, loop-by-loop transcription of MATLAB's ``contributions`` (independent of the module).

    ``border="mirror"`` is the symmetric indexing of the common Python ports, for contrast.
    """
    width = 4 / scale if scale < 1 else 4.0
    mirror = [*range(1, in_len + 1), *range(in_len, 0, -1)]
    matrix = np.zeros((out_len, in_len))
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = []
        for j in range(left, left + math.ceil(width) + 2):
            w = scale * _cubic_scalar(scale * (u - j)) if scale < 1 else _cubic_scalar(u - j)
            taps.append((j, w))
        total = sum(w for _, w in taps)
        for j, w in taps:
            k = min(max(j, 1), in_len) if border == "replicate" else mirror[(j - 1) % (2 * in_len)]
            matrix[x - 1, k - 1] += w / total
    return matrix


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """Round half away from zero and saturate to uint8 (written differently from the module)."""
    x = np.clip(x, 0, 255)
    lower = np.floor(x)
    return np.where(x - lower >= 0.5, lower + 1, lower).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# bit-exactness against the MATLAB-made LR files

LR_SETS = [
    *[("Set5", s) for s in FACTORS],
    *[("Set14", s) for s in FACTORS],
    *[("B100", s) for s in FACTORS],
    pytest.param("Urban100", 4, marks=pytest.mark.slow),
]
EXPECTED_COUNT = {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}


@pytest.mark.data
@pytest.mark.parametrize(("dataset", "factor"), LR_SETS)
def test_bit_exact_with_matlab_lr_files(data_root, dataset, factor, record_property):
    lr_dir = data_root / dataset / "LR_bicubic" / f"X{factor}"
    lr_files = sorted(lr_dir.glob("*.png"))
    failures = []
    for lr_file in lr_files:
        hr = modcrop(_load(_hr_path(data_root, dataset, lr_file.stem)), factor)
        expected = _load(lr_file)
        got = imresize(hr, 1 / factor)
        assert got.dtype == np.uint8
        if got.shape != expected.shape:
            failures.append(f"{lr_file.name}: shape {got.shape} != {expected.shape}")
        elif not np.array_equal(got, expected):
            diff = got != expected
            if expected.ndim == 3:
                diff = diff.any(axis=2)
            rows, cols = np.nonzero(diff)
            failures.append(
                f"{lr_file.name}: {diff.sum()} pixels differ, rows {rows.min()}..{rows.max()}, "
                f"cols {cols.min()}..{cols.max()} of {expected.shape[:2]}"
            )
    record_property("files_checked", len(lr_files))
    print(f"{dataset} x{factor}: {len(lr_files)} LR files checked, {len(failures)} mismatches")
    assert len(lr_files) == EXPECTED_COUNT[dataset], f"expected {EXPECTED_COUNT[dataset]} LR files"
    assert not failures, f"{dataset} x{factor}: " + "; ".join(failures[:5])


@pytest.mark.data
def test_mirrored_borders_would_not_match(data_root):
    """Regression guard for the border rule: the mirror indexing of the common Python ports
    (``aux = [1:in, in:-1:1]``) matches the MATLAB files in the interior only."""
    factor = 2
    hr = modcrop(_load(_hr_path(data_root, "Set5", "baby")), factor).astype(np.float64)
    expected = _load(data_root / "Set5" / "LR_bicubic" / f"X{factor}" / "baby.png")

    x = hr
    for axis in (0, 1):
        m = _reference_matrix(x.shape[axis], x.shape[axis] // factor, 1 / factor, "mirror")
        x = np.moveaxis(np.tensordot(m, x, axes=([1], [axis])), 0, axis)
        x = _round_uint8(x).astype(np.float64)
    mirror_lr = x.astype(np.uint8)
    assert not np.array_equal(mirror_lr, expected)
    assert np.array_equal(mirror_lr[1:-1, 1:-1], expected[1:-1, 1:-1])  # only the outermost pixel
    assert np.array_equal(imresize(hr.astype(np.uint8), 1 / factor), expected)


# --------------------------------------------------------------------------------------------------
# known answers


def test_known_answer_ramp_upscale_x2():
    # Ramp v = [0, 1, 2, 3] upscaled x2. Output pixel x samples u = x/2 + 1/4 (1-based). The a=-0.5
    # cubic reproduces linear signals, so the interior is u - 1; near the ends the taps outside the
    # image are clamped onto the end pixel (value 0 or 3). For x = 1 (u = 0.75) the taps are
    # j = -1, 0, 1, 2 with distances 1.75, 0.75, -0.25, -1.25 and weights
    # cubic(1.75) = -3/128, cubic(0.75) = 29/128, cubic(0.25) = 111/128, cubic(1.25) = -9/128,
    # on values v(1), v(1), v(1), v(2) = 0, 0, 0, 1  ->  -9/128 = -0.0703125.
    # (Mirroring, v(-1) = v(2) = 1, would give -12/128.) For x = 2 (u = 1.25): weights -9, 111, 29,
    # -3 (/128) on v(1), v(1), v(2), v(3) = 0, 0, 1, 2 -> 23/128; for x = 3 (u = 1.75): -3, 29, 111,
    # -9 on 0, 0, 1, 2 -> 93/128; x = 4 is interior (1.25). The signal is antisymmetric about its
    # middle, so x = 5..8 are 3 minus x = 4..1.
    ramp = np.array([[0.0, 1.0, 2.0, 3.0]])
    expected = np.array([-9, 23, 93, 160, 224, 291, 361, 393]) / 128
    got = imresize(ramp, 2)
    assert got.shape == (2, 8)
    np.testing.assert_allclose(got, np.vstack([expected, expected]), rtol=0, atol=1e-15)
    # the same along the other axis, and through the torch path
    np.testing.assert_allclose(imresize(ramp.T, 2)[:, 0], expected, rtol=0, atol=1e-15)
    t = imresize_torch(torch.tensor(ramp, dtype=torch.float64)[None, None], 2)
    np.testing.assert_allclose(t[0, 0, 0].numpy(), expected, rtol=0, atol=1e-15)


def test_known_answer_antialiased_weights_x_half():
    # Shrinking by 2: h(d) = cubic(d/2)/2, width 8. An interior output pixel x sits at u = 2x - 1/2,
    # so its 8 taps are at distances +-0.5, +-1.5, +-2.5, +-3.5:
    # cubic(0.25)/2 = 111/256, cubic(0.75)/2 = 29/256, cubic(1.25)/2 = -9/256, cubic(1.75)/2 = -3/256
    # (they sum to 1 already). x = 4 (1-based) -> u = 7.5 -> input pixels 4..11 (0-based 3..10).
    m = resize_matrix(16, 8, 0.5)
    row = np.zeros(16)
    row[3:11] = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256
    np.testing.assert_array_equal(m[3], row)
    # First output pixel (u = 1.5): taps -2..5 (1-based) -> clamped ones pile onto pixel 1.
    first = np.zeros(16)
    first[0] = (-3 - 9 + 29 + 111) / 256  # taps -2, -1, 0, 1 -> pixel 1
    first[1:5] = np.array([111, 29, -9, -3]) / 256
    np.testing.assert_array_equal(m[0], first)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("in_len", [1, 2, 3, 7, 12, 31])
def test_resize_matrix_matches_scalar_reference(in_len, scale):
    out_len = math.ceil(in_len * scale)
    np.testing.assert_allclose(
        resize_matrix(in_len, out_len, scale),
        _reference_matrix(in_len, out_len, scale),
        rtol=0,
        atol=1e-14,
    )


def test_resize_matrix_cached_read_only_and_normalised():
    m = resize_matrix(50, 17, 1 / 3)
    assert m is resize_matrix(50, 17, 1 / 3)
    assert m.shape == (17, 50) and m.dtype == np.float64
    assert not m.flags.writeable
    with pytest.raises(ValueError):
        m[0, 0] = 1.0
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-14)


def test_round_saturate_ties_away_from_zero():
    x = np.array([0.5, 1.5, 2.5, 118.5, 0.49999999999999994, 254.5, 255.5, 300.0, -0.5, -3.0])
    got = _round_saturate(x.copy(), 0, 255)
    np.testing.assert_array_equal(got, [1, 2, 3, 119, 0, 255, 255, 255, 0, 0])
    signed = _round_saturate(np.array([-2.5, -2.4, -2.6, 2.5, -0.5, 0.5, -200.0]), -128, 127)
    np.testing.assert_array_equal(signed, [-3, -2, -3, 3, -1, 1, -128])


# --------------------------------------------------------------------------------------------------
# uint8 semantics: per-pass rounding, pass order


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    scale=st.sampled_from(SCALES),
)
def test_uint8_rounds_after_each_pass(seed, h, w, scale):
    img = _random_image(seed, (h, w, 3), np.uint8)
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    x = np.einsum("oh,hwc->owc", resize_matrix(h, oh, scale), img.astype(np.float64))
    x = _round_uint8(x).astype(np.float64)  # rows first (equal scales)
    x = np.einsum("pw,owc->opc", resize_matrix(w, ow, scale), x)
    np.testing.assert_array_equal(imresize(img, scale), _round_uint8(x))


def test_smaller_scale_dimension_goes_first():
    img = _random_image(7, (12, 20, 3), np.uint8)
    oh, ow = 24, 5  # scales 2 (rows) and 1/4 (cols): columns are resized first
    x = np.einsum("pw,hwc->hpc", resize_matrix(20, ow, ow / 20), img.astype(np.float64))
    x = _round_uint8(x).astype(np.float64)
    x = np.einsum("oh,hpc->opc", resize_matrix(12, oh, oh / 12), x)
    np.testing.assert_array_equal(imresize(img, None, output_shape=(oh, ow)), _round_uint8(x))


def test_output_shape_with_scale_is_the_same_as_scale():
    img = _random_image(3, (30, 25, 3), np.uint8)
    np.testing.assert_array_equal(imresize(img, 1 / 3, output_shape=(10, 9)), imresize(img, 1 / 3))


# --------------------------------------------------------------------------------------------------
# properties


@settings(deadline=None, max_examples=60)
@given(
    h=st.integers(1, 64),
    w=st.integers(1, 64),
    channels=st.sampled_from([None, 1, 3]),
    factor=st.sampled_from(FACTORS),
    shrink=st.booleans(),
    dtype=st.sampled_from([np.uint8, np.float32, np.float64]),
)
def test_output_shape_ceil_rule_and_dtype(h, w, channels, factor, shrink, dtype):
    shape = (h, w) if channels is None else (h, w, channels)
    img = _random_image(h * 1000 + w, shape, dtype)
    scale = 1 / factor if shrink else factor
    out = imresize(img, scale)
    oh, ow = (-(-h // factor), -(-w // factor)) if shrink else (h * factor, w * factor)
    assert out.shape == (oh, ow, *shape[2:])
    assert out.dtype == (np.uint8 if dtype is np.uint8 else np.float64)
    assert out.flags.c_contiguous


@settings(deadline=None, max_examples=60)
@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    scale=st.sampled_from(SCALES),
    value=st.integers(0, 255),
)
def test_constant_uint8_images_stay_exactly_constant(h, w, scale, value):
    out = imresize(np.full((h, w, 3), value, dtype=np.uint8), scale)
    assert np.all(out == value)


@settings(deadline=None, max_examples=60)
@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    scale=st.sampled_from(SCALES),
    value=st.floats(-10, 10, allow_nan=False, allow_subnormal=False),
)
def test_constant_float_images_stay_constant(h, w, scale, value):
    out = imresize(np.full((h, w), value, dtype=np.float64), scale)
    # Exactly so for integer values at x2/x4 (dyadic weights); otherwise to the last few ulps,
    # as in MATLAB: the normalised weights sum to 1 only up to float rounding.
    np.testing.assert_allclose(out, value, rtol=4e-15, atol=0)
    if value == int(value) and scale in (1 / 2, 1 / 4, 2, 4):
        assert np.all(out == value)


def test_uint16_and_bad_inputs():
    img = np.full((8, 8), 60000, dtype=np.uint16)
    out = imresize(img, 1 / 2)
    assert out.dtype == np.uint16 and np.all(out == 60000)
    with pytest.raises(TypeError):
        imresize(np.zeros((4, 4), dtype=bool), 2)
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4, 3, 1)), 2)
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), None)
    with pytest.raises(ValueError):
        resize_matrix(0, 3, 2.0)


def test_modcrop():
    img = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    assert modcrop(img, 4).shape == (4, 8, 3)
    assert modcrop(img[..., 0], 3).shape == (6, 9)
    assert modcrop(img, 1).shape == img.shape
    np.testing.assert_array_equal(modcrop(img, 2), img[:6, :10])  # bottom/right are cut
    with pytest.raises(ValueError):
        modcrop(img, 0)


# --------------------------------------------------------------------------------------------------
# torch path


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 32),
    w=st.integers(1, 32),
    channels=st.sampled_from([1, 3]),
    scale=st.sampled_from(SCALES),
)
def test_torch_float64_matches_numpy(seed, h, w, channels, scale):
    img = _random_image(seed, (h, w, channels), np.float64)
    expected = imresize(img, scale)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    got = imresize_torch(x, scale)
    assert got.shape == (1, channels, math.ceil(h * scale), math.ceil(w * scale))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got[0].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-10)


def test_torch_keeps_dtype_and_batches():
    x = torch.rand(2, 3, 9, 13, dtype=torch.float32)
    y = imresize_torch(x, 3)
    assert y.shape == (2, 3, 27, 39) and y.dtype == torch.float32
    single = imresize_torch(x[1:2], 3)
    torch.testing.assert_close(y[1:2], single)
    with pytest.raises(TypeError):
        imresize_torch(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 2)
    with pytest.raises(ValueError):
        imresize_torch(torch.zeros(4, 4), 2)


def test_torch_gradients_flow():
    x = torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize_torch(t, 1 / 2), (x,))
    assert torch.autograd.gradcheck(lambda t: imresize_torch(t, 3), (x,))
    # d(sum)/dx = (column sums of the row matrix) x (column sums of the column matrix)
    y = imresize_torch(x, 1 / 3)
    y.sum().backward()
    rows = resize_matrix(6, 2, 1 / 3).sum(axis=0)
    cols = resize_matrix(7, 3, 1 / 3).sum(axis=0)
    np.testing.assert_allclose(x.grad[0, 0].numpy(), np.outer(rows, cols), rtol=1e-12)


def test_torch_matrices_built_in_inference_mode_still_support_autograd():
    with torch.inference_mode():  # first use (and so the cache entry) under inference_mode
        imresize_torch(torch.rand(1, 1, 11, 19), 2)
    x = torch.rand(1, 1, 11, 19, requires_grad=True)
    imresize_torch(x, 2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_cuda_matches_numpy():
    img = _random_image(11, (37, 41, 3), np.float64)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    for scale in SCALES:
        expected = imresize(img, scale)
        got = imresize_torch(x.cuda(), scale)
        assert got.device.type == "cuda"
        np.testing.assert_allclose(
            got[0].permute(1, 2, 0).cpu().numpy(), expected, rtol=0, atol=1e-10
        )
        got32 = imresize_torch(x.float().cuda(), scale)
        assert got32.dtype == torch.float32
        np.testing.assert_allclose(
            got32[0].permute(1, 2, 0).cpu().numpy(), expected, rtol=0, atol=1e-4
        )
