"""The one per-image evaluation step: model input -> fp32 forward -> checks -> protocol score.

Used by the runner (``srbench run``), training validation and ablation scoring alike, so a
number is computed one way whoever asks for it (the runner adds the store and the claims; training
adds nothing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from srbench.errors import SRBenchError
from srbench.inference import InferenceReport, infer, memory_format
from srbench.protocols import Prepared, Protocol, Scored, score


@dataclass
class ImageResult:
    scored: Scored
    report: InferenceReport
    wall_ms: float  # this one forward pass, no warm-up: for orientation (profile measures latency)


def evaluate_image(
    model: torch.nn.Module,
    prepared: Prepared,
    protocol: Protocol,
    device: torch.device,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    ensemble: bool = False,
    label: str = "",
) -> ImageResult:
    """Run ``model`` (in eval mode, fp32) on one prepared image and score its output.

    Non-finite output pixels are an error naming ``label`` (model and image) -- never a stored
    number.
    """
    lr = torch.from_numpy(prepared.model_input).to(device, torch.float32)[None]
    lr = lr.contiguous(memory_format=memory_format(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    output, report = infer(
        model, lr, prepared.scale, tile=tile, overlap=overlap, ensemble=ensemble,
        label=label or "the model",
    )  # fmt: skip
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - start) * 1e3
    # One float64 reduction instead of a boolean map: any NaN/Inf makes the sum non-finite, and
    # float64 cannot overflow on float32 pixels.
    if not torch.isfinite(output.sum(dtype=torch.float64)):
        raise SRBenchError(
            f"{label or 'the model'} gave NaN or Inf pixels; nothing was stored for this image: "
            "the weights are broken or the model overflows in this precision"
        )
    return ImageResult(score(protocol, output[0].float(), prepared), report, wall_ms)
