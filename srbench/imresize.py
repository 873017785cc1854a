"""MATLAB-exact bicubic ``imresize`` (NumPy and PyTorch) and ``modcrop``.

This module reproduces MATLAB's ``imresize(img, scale, 'bicubic')``, the function that made the
benchmark LR files (``LR_bicubic/X{2,3,4}``, see ``docs/PROTOCOL.md``). On uint8 input :func:`imresize` is
bit-exact with the shared MATLAB-made files: all 457 of them (Set5, Set14, B100 at x2/x3/x4 and
Urban100 at x4), borders included -- ``tests/test_imresize.py`` checks every one.

Conventions
-----------
- **Layout**: ``img`` is ``H x W`` (grey) or ``H x W x C`` (any number of channels); the result
  has the same layout. Only the first two axes are resized; channels are resized independently, so
  the channel order (RGB, BGR, Y) is whatever came in. :func:`imresize_torch` takes and returns
  ``(N, C, H, W)`` tensors.
- **dtype and range**:
  - ``uint8`` (or any integer dtype) in -> same dtype out, range ``[0, 255]`` for uint8. Like
    MATLAB, the intermediate result after EACH of the two 1-D passes is rounded (half away from
    zero) and saturated to the dtype's range.
  - float (float16/32/64) in -> **float64** out, any range (e.g. ``[0, 1]``), computed in float64
    with no rounding and no clipping (bicubic overshoots the input range near sharp edges).
  - :func:`imresize_torch` is the float path only: the output keeps the input's dtype and device,
    nothing is rounded or clipped, and it is differentiable.
- **Kernel**: Keys cubic with ``a = -0.5`` (support ``[-2, 2]``). When shrinking (``scale < 1``)
  the kernel is stretched by ``1/scale`` (antialiasing: ``h(x) = scale * cubic(scale * x)``,
  support ``4/scale``); the weights of every output pixel are normalised to sum to 1.
- **Geometry**: output length ``ceil(in_len * scale)``; output pixel ``x = 1..out_len`` (1-based)
  samples input coordinate ``u = x / scale + 0.5 * (1 - 1/scale)`` (pixel centres aligned, the
  half-pixel convention); taps ``floor(u - width/2) + (0 .. ceil(width) + 1)``.
- **Borders: replicate (clamp), not mirror.** Taps outside the image are clamped to the first/last
  pixel (``indices = min(max(1, indices), in_length)`` in MATLAB's ``contributions``). The
  symmetric ``aux = [1:in, in:-1:1]`` indexing of the common Python ports (BasicSR/KAIR style)
  changes the outermost 1 (x2, x3) or 2 (x4) LR pixels and does NOT reproduce the MATLAB files
  (the interiors agree).
- **Pass order**: the dimension with the smaller scale factor is resized first; for equal factors
  rows (height, axis 0) first, then columns (width, axis 1) -- MATLAB's stable ``sort(scale)``.
- **Rounding**: integer outputs use round-half-away-from-zero (MATLAB ``uint8()``), then saturate.
  Each pass is a float64 product with the ``(out_len, in_len)`` weight matrix
  (:func:`resize_matrix`), so the summation order differs from MATLAB's tap-by-tap loop, yet the
  result is bit-exact and does not depend on the BLAS: at x2/x4 every weight is dyadic
  (``k / 2**n``), so on integer pixels each pass is exact and ties such as ``118.5`` are real
  (hundreds of thousands of them on the 457 files; half-to-even ``np.round`` would fail); at x3 no
  pre-rounding value on those files came closer than 0.006 to a ``.5`` tie.

Speed: each pass is a few banded BLAS ``dgemm`` calls (blocks of output rows times the input rows
they touch); the weight matrices are cached per ``(in_len, out_len, scale)``. Measured: all 100
Urban100 HR images (up to 1280x1200 RGB uint8, modcropped) resized by 1/2 in 3.5 s with two
OpenBLAS threads, 5.0 s single-threaded (a 2-core machine shared with other jobs; up to about 17 s
when it was heavily oversubscribed). The full dense product took about 2x longer.

Usage::

    lr = imresize(modcrop(hr, 4), 1 / 4)          # benchmark LR from a uint8 RGB HR image
    up = imresize(lr.astype(np.float64) / 255, 4)  # float64 bicubic upsampling, unclipped
    sr = imresize_torch(lr_tensor, 4)              # (N, C, H, W) -> (N, C, 4H, 4W), differentiable
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["imresize", "imresize_torch", "modcrop", "resize_matrix"]

_KERNEL_WIDTH = 4.0  # support of the (unscaled) bicubic kernel
_BAND_ROWS = 128  # output rows per matrix-product block in the NumPy path


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), evaluated elementwise."""
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


def _check_length(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    return scale


@functools.lru_cache(maxsize=256)
def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: per-output-pixel weights and 0-based input indices.

    Returns ``(weights, indices)``, both ``(out_len, P)`` (read-only), where ``P`` is
    ``ceil(width) + 2`` less the tap columns whose weights are all zero.
    """
    if scale < 1:  # antialiasing: stretch the kernel by 1/scale
        width = _KERNEL_WIDTH / scale

        def kernel(d: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * d)
    else:
        width = _KERNEL_WIDTH
        kernel = _cubic  # type: ignore[assignment]  # code_sha256 covers this code: no annotation edits

    x = np.arange(1, out_len + 1, dtype=np.float64)  # 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # matching input coordinates (1-based)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Replicate the end points (MATLAB clamps; it does not mirror). Convert to 0-based.
    indices = np.clip(indices.astype(np.int64), 1, in_len) - 1  # type: ignore[assignment]  # code_sha256 covers this code: no annotation edits
    keep = np.any(weights != 0, axis=0)
    weights = np.ascontiguousarray(weights[:, keep])
    indices = np.ascontiguousarray(indices[:, keep])
    weights.flags.writeable = False
    indices.flags.writeable = False
    return weights, indices


@functools.lru_cache(maxsize=128)
def _resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    weights, indices = _contributions(in_len, out_len, scale)
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.arange(out_len)
    # Within one tap column every (row, index) pair is distinct, so fancy "+=" is safe; taps that
    # were clamped onto the same border pixel accumulate over the columns, in tap order.
    for k in range(weights.shape[1]):
        matrix[rows, indices[:, k]] += weights[:, k]
    matrix.flags.writeable = False
    return matrix


def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """Dense MATLAB-bicubic weight matrix ``R`` (``(out_len, in_len)``, float64, read-only).

    ``R @ v`` resizes a 1-D signal ``v`` of length ``in_len`` to ``out_len`` samples exactly as one
    MATLAB ``imresize`` pass with kernel scale ``scale`` (normally ``out_len == ceil(in_len *
    scale)``). Every row sums to 1 (up to float rounding). Cached (LRU); do not modify the result
    (it is read-only; copy it first).
    """
    return _resize_matrix(
        _check_length("in_len", in_len), _check_length("out_len", out_len), _check_scale(scale)
    )


def _round_saturate(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Saturate to ``[lo, hi]``, then round half away from zero (MATLAB's integer conversion).

    Works in place on the float64 array ``x`` and returns the (float64, integer-valued) result.
    Clipping first is equivalent (``lo``/``hi`` are integers) and keeps the values small. Ties are
    broken exactly: ``x - floor(x)`` is exact for ``|x| < 2**52`` (no ``+0.5`` rounding error), and
    at x2/x4 exact ties are common -- the weights are dyadic, so sums such as ``118.5`` are exact
    and must round to 119, where ``np.round`` (half to even) would give 118.
    """
    np.clip(x, lo, hi, out=x)
    floor = np.floor(x)
    frac = np.subtract(x, floor, out=x)
    # Non-negative values: away from zero is up. Negative ties go down (away from zero).
    up = frac >= 0.5 if lo >= 0 else (frac > 0.5) | ((frac == 0.5) & (floor >= 0))
    return np.add(floor, up, out=floor)


@functools.lru_cache(maxsize=128)
def _bands(in_len: int, out_len: int, scale: float) -> tuple[tuple[int, int, int, int], ...]:
    """Blocks ``(r0, r1, c0, c1)``: output rows ``r0:r1`` only read input rows ``c0:c1``."""
    _, indices = _contributions(in_len, out_len, scale)
    lo = indices.min(axis=1)
    hi = indices.max(axis=1) + 1
    bands = []
    for r0 in range(0, out_len, _BAND_ROWS):
        r1 = min(r0 + _BAND_ROWS, out_len)
        bands.append((r0, r1, int(lo[r0:r1].min()), int(hi[r0:r1].max())))
    return tuple(bands)


def _resize_axis(x: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    """One pass along ``axis`` of float64 ``x``: ``resize_matrix @ x`` by row blocks.

    The weight matrix is banded, so each block of output rows is one ``dgemm`` with the few input
    rows it touches (about 5x fewer flops than the full dense product at x2 on 1280 pixels; the
    skipped entries are exact zeros, so the result is the dense product's).
    """
    in_len = x.shape[axis]
    matrix = _resize_matrix(in_len, out_len, scale)
    moved = np.moveaxis(x, axis, 0)
    rest = moved.shape[1:]
    flat = np.ascontiguousarray(moved).reshape(in_len, math.prod(rest))  # no copy for axis 0
    out = np.empty((out_len, flat.shape[1]), dtype=np.float64)
    for r0, r1, c0, c1 in _bands(in_len, out_len, scale):
        np.matmul(matrix[r0:r1, c0:c1], flat[c0:c1], out=out[r0:r1])
    return np.moveaxis(out.reshape((out_len, *rest)), 0, axis)


def _plan(
    in_shape: tuple[int, int], scale: float | None, output_shape: tuple[int, int] | None
) -> tuple[tuple[float, float], tuple[int, int]]:
    """Per-axis kernel scales and output lengths, as MATLAB's ``fixupSizeAndScale`` derives them."""
    if output_shape is not None:
        if len(output_shape) != 2:
            raise ValueError(f"output_shape must be (height, width), got {output_shape!r}")
        out_hw = (
            _check_length("output_shape[0]", output_shape[0]),
            _check_length("output_shape[1]", output_shape[1]),
        )
        if scale is None:  # MATLAB: scale = output_size ./ input_size
            scales = (out_hw[0] / in_shape[0], out_hw[1] / in_shape[1])
        else:  # MATLAB with both 'Scale' and 'OutputSize': the kernel uses the given scale
            s = _check_scale(scale)
            scales = (s, s)
    else:
        if scale is None:
            raise ValueError("give a scale or an output_shape")
        s = _check_scale(scale)
        scales = (s, s)
        out_hw = (math.ceil(s * in_shape[0]), math.ceil(s * in_shape[1]))
    return scales, out_hw


def _pass_order(scales: tuple[float, float]) -> tuple[int, int]:
    """Smaller scale factor first; rows first on ties (MATLAB's stable ``sort(scale)``)."""
    return (0, 1) if scales[0] <= scales[1] else (1, 0)


def imresize(
    img: np.ndarray, scale: float | None, *, output_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` (antialiased when shrinking).

    Args:
        img: ``H x W`` or ``H x W x C`` array. Integer dtype (normally uint8, range [0, 255]):
            the result has the same dtype and is rounded (half away from zero) and saturated after
            each pass, as in MATLAB. Float dtype: computed and returned as float64, unrounded and
            unclipped.
        scale: resize factor, e.g. ``1/4`` to make x4 LR, ``4`` to upsample. The output is
            ``ceil(H * scale) x ceil(W * scale)``. May be ``None`` when ``output_shape`` is given.
        output_shape: ``(height, width)`` of the result (MATLAB's ``[NUMROWS NUMCOLS]``). Without
            ``scale`` the kernel scale of each axis is ``out / in``; with both, MATLAB's
            ``'Scale'`` + ``'OutputSize'`` behaviour (sizes from ``output_shape``, kernel from
            ``scale``).

    Returns:
        The resized image, same layout (and, for integer input, same dtype).
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"img must be HxW or HxWxC, got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"img must not be empty, got shape {img.shape}")
    if img.dtype == np.bool_ or not (
        np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)
    ):
        raise TypeError(f"img must be an integer (uint8) or float array, got {img.dtype}")
    integer = np.issubdtype(img.dtype, np.integer)
    scales, out_hw = _plan(img.shape[:2], scale, output_shape)

    x = img.astype(np.float64)
    for axis in _pass_order(scales):
        x = _resize_axis(x, axis, out_hw[axis], scales[axis])
        if integer:  # MATLAB rounds and saturates after each pass
            info = np.iinfo(img.dtype)
            x = _round_saturate(x, int(info.min), int(info.max))
    return np.ascontiguousarray(x.astype(img.dtype) if integer else x)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom rows and right columns so that H and W are multiples of ``scale``.

    Works on ``H x W`` and ``H x W x C`` arrays; returns a view (no copy).
    """
    scale = _check_length("scale", scale)
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"img must be HxW or HxWxC, got shape {img.shape}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


@functools.lru_cache(maxsize=32)
def _torch_matrix(in_len: int, out_len: int, scale: float, dtype, device):
    import torch

    # Build outside any inference_mode so the cached tensor is usable by autograd later on.
    with torch.inference_mode(False), torch.no_grad():
        return torch.tensor(_resize_matrix(in_len, out_len, scale), dtype=dtype, device=device)


def imresize_torch(x, scale: float):
    """MATLAB bicubic resize of a batch: ``(N, C, H, W)`` -> ``(N, C, ceil(H*s), ceil(W*s))``.

    Float semantics of :func:`imresize` (no rounding, no clipping) as two matrix products with the
    weight matrices in ``x``'s dtype and on ``x``'s device (cached per length, scale, dtype and
    device). Differentiable with respect to ``x``. Rows are resized first, then columns.
    """
    import torch

    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError("x must be a (N, C, H, W) tensor")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    s = _check_scale(scale)
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
    out_h, out_w = math.ceil(h * s), math.ceil(w * s)
    mh = _torch_matrix(h, out_h, s, x.dtype, x.device)
    mw = _torch_matrix(w, out_w, s, x.dtype, x.device)
    y = torch.matmul(mh, x)  # (out_h, H) @ (N, C, H, W) -> (N, C, out_h, W)
    return torch.matmul(y, mw.transpose(0, 1))  # (N, C, out_h, W) @ (W, out_w)
