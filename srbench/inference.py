"""Inference modes every model gets: plain, tiled (for images that do not fit memory) and the x8
geometric self-ensemble (the "+" variants of the literature, e.g. DRN+, EDSR+)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


def memory_format(device: torch.device) -> torch.memory_format:
    """The activation layout evaluation runs in on ``device``.

    channels_last on the CPU: oneDNN's blocked fp32 convolutions are 1.1-1.45x faster there than
    on NCHW (VDSR 1.45x, EDSR-baseline 1.36x, DRN-S 1.29x, IDN 1.12x at 2 threads on an Intel
    Xeon with AMX and on an AMD EPYC Zen 4, torch 2.14), with outputs equal to NCHW's within
    5e-6 of the [0, 1] range: a pixel's uint8 rounding flips only rarely, moving per-image PSNR
    by at most 6e-5 dB and SSIM by 1e-6 (Set5 + Set14 x2, IDN, DRN-S, EDSR-baseline).
    The GPU keeps NCHW (cuDNN picks its own layout). Evaluation is fp32 in this layout: the
    ``fp32`` of :func:`srbench.precision.inference_precision`, where the one precision vocabulary
    lives (profile timings use it to be ``srbench run``'s forward passes).
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def in_memory_format(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` with its 4-D weights in :func:`memory_format` -- ``model`` itself when they
    already are, else a converted copy (a model being trained keeps its own layout), so that
    validation during training scores exactly as ``srbench run`` does."""
    fmt = memory_format(device)
    if all(p.is_contiguous(memory_format=fmt) for p in model.parameters() if p.dim() == 4):
        return model
    return copy.deepcopy(model).to(memory_format=fmt)


def memory_format_name(fmt: torch.memory_format) -> str:
    return "channels_last" if fmt == torch.channels_last else "nchw"


@dataclass
class InferenceReport:
    tiled: bool = False
    tile_size: int | None = None
    reason: str = ""  # why tiling was used ("requested" or "out of memory at full size")
    overlap: int | None = None  # LR pixels of context around each tile


PROBE_SIZES = (64, 128, 256)  # long sides of the LR probe strips, tried in turn
_STRIP = 16  # short side: the reach along the long side is seen through it, at a quarter the cost


def receptive_radius(model: torch.nn.Module, scale: int, channels: int) -> int | None:
    """The model's receptive-field radius in LR pixels, measured: the farthest input pixel the
    SR output of one central LR pixel depends on (its gradient is non-zero), along a wide and a
    tall probe strip; None when it reaches the ends of every probe (a global operation, or wider
    than 127 px). Cached on the model.

    It is the smallest tile overlap whose tiled result equals the untiled one (seams otherwise:
    SRCNN with 2 px moves Set5 x2 by -0.08 dB).
    """
    cached = getattr(model, "srbench_receptive_radius", None)
    if cached is not None:
        return cached[0]
    radius = None
    for side in PROBE_SIZES:
        reach = max(_reach(model, scale, channels, side, dim) for dim in (-1, -2))
        if reach < side // 2 - 1:  # clear of the probe's ends: the whole field was seen
            radius = reach
            break
    model.srbench_receptive_radius = (radius,)  # type: ignore[assignment]  # code_sha256 covers this code: no annotation edits
    return radius


def _reach(model: torch.nn.Module, scale: int, channels: int, side: int, dim: int) -> int:
    """How far along ``dim`` from a strip's central LR pixel the gradient of its output reaches."""
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    shape = [1, channels, _STRIP, _STRIP]
    shape[dim] = side
    # A private generator: measuring must not move the global RNG.
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_()
    cy, cx = shape[2] // 2, shape[3] // 2
    with torch.enable_grad():
        out = model(x)[..., cy * scale : (cy + 1) * scale, cx * scale : (cx + 1) * scale]
        (grad,) = torch.autograd.grad(out.sum(), x)
    support = (grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    centre = torch.tensor([cy, cx], device=support.device)
    along = 1 if dim == -1 else 0
    return int((support[:, along] - centre[along]).abs().max()) if len(support) else 0


def tile_overlap(
    model: torch.nn.Module, scale: int, channels: int, overlap: int | None, label: str
) -> int:
    """The overlap to tile with: ``overlap``, or the model's receptive radius when None; an
    overlap below the radius (or any tiling of a model with a global field) is refused."""
    from srbench.errors import SRBenchError

    radius = receptive_radius(model, scale, channels)
    if radius is None:
        raise SRBenchError(
            f"{label}: its receptive field is global (or wider than {PROBE_SIZES[-1] // 2 - 1} LR "
            "px), so tiled results would differ from untiled ones; run without --tile"
        )
    if overlap is None:
        return radius
    if overlap < radius:
        raise SRBenchError(
            f"{label}: --tile-overlap {overlap} is below its receptive field ({radius} LR px): "
            f"tiles would change the numbers; use --tile-overlap {radius} or more, or leave it "
            "out (the model's own is used)"
        )
    return overlap


def tiled_forward(
    forward: Forward, lr: torch.Tensor, scale: int, tile: int, overlap: int
) -> torch.Tensor:
    """Run ``forward`` on overlapping LR tiles and stitch the centres.

    Each tile is cut with ``overlap`` extra LR pixels of context on every side (clipped at the
    image border) and only its centre is kept, so the result equals the untiled one whenever
    ``overlap`` covers the model's receptive-field radius in LR pixels.
    """
    if tile <= 0 or overlap < 0:
        raise ValueError(f"tile must be > 0 and overlap >= 0, got tile={tile}, overlap={overlap}")
    n, _c, h, w = lr.shape
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            b0, r0 = min(bottom + overlap, h), min(right + overlap, w)
            sr_tile = forward(lr[:, :, t0:b0, l0:r0])
            if out is None:
                out = sr_tile.new_zeros(n, sr_tile.shape[1], h * scale, w * scale)
            out[:, :, top * scale : bottom * scale, left * scale : right * scale] = sr_tile[
                :,
                :,
                (top - t0) * scale : (bottom - t0) * scale,
                (left - l0) * scale : (right - l0) * scale,
            ]
    assert out is not None
    return out


def _transforms() -> list[tuple[Callable[[torch.Tensor], torch.Tensor], Callable]]:
    pairs = []
    for k in range(4):
        for flip in (False, True):

            def fwd(x, k=k, flip=flip):
                x = torch.rot90(x, k, dims=(-2, -1))
                return torch.flip(x, dims=(-1,)) if flip else x

            def inv(x, k=k, flip=flip):
                x = torch.flip(x, dims=(-1,)) if flip else x
                return torch.rot90(x, -k, dims=(-2, -1))

            pairs.append((fwd, inv))
    return pairs  # type: ignore[return-value]  # code_sha256 covers this code: no annotation edits


def self_ensemble(forward: Forward, lr: torch.Tensor) -> torch.Tensor:
    """Mean of the outputs for the 8 flips/rotations, each mapped back (Timofte et al. 2016)."""
    total = None
    for fwd, inv in _transforms():
        out = inv(forward(fwd(lr)))
        total = out if total is None else total + out
    return total / 8  # type: ignore[operator,return-value]  # code_sha256 covers this code: no annotation edits


def infer(
    model: torch.nn.Module,
    lr: torch.Tensor,
    scale: int,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    ensemble: bool = False,
    fallback_tile: int = 128,
    label: str = "the model",
) -> tuple[torch.Tensor, InferenceReport]:
    """Super-resolve ``lr`` (N, C, h, w); falls back to tiling on out-of-memory and says so.

    Tiles overlap by ``overlap`` LR pixels, by the model's receptive radius when None; a
    smaller overlap is refused (:func:`tile_overlap`), so tiling never changes a number.
    """
    report = InferenceReport()

    def base(x: torch.Tensor) -> torch.Tensor:
        return self_ensemble(model, x) if ensemble else model(x)

    if tile:
        overlap = tile_overlap(model, scale, lr.shape[1], overlap, label)
    with torch.inference_mode():
        if tile:
            assert overlap is not None
            report = InferenceReport(True, tile, "requested", overlap)
            return tiled_forward(base, lr, scale, tile, overlap), report
        try:
            return base(lr), report
        except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA) or the CPU allocator's error
            if not _is_oom(exc):
                raise
            if lr.is_cuda:
                torch.cuda.empty_cache()
    overlap = tile_overlap(model, scale, lr.shape[1], overlap, label)
    report = InferenceReport(True, fallback_tile, "out of memory at full size", overlap)
    with torch.inference_mode():
        return tiled_forward(base, lr, scale, fallback_tile, overlap), report


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in str(exc)
