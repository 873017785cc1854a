"""The one per-image evaluation step and the one record constructor.

:func:`evaluate_image` (model input -> fp32 forward -> checks -> protocol score) and
:func:`result_record` are used by the runner's loop (:func:`srbench.runner.iter_model`), which
``srbench run``, training validation and ablation scoring all go through, so a number and its
record are made one way whoever asks for them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import torch

from srbench.errors import SRBenchError
from srbench.inference import InferenceReport, infer, memory_format, memory_format_name
from srbench.precision import tf32
from srbench.protocols import Prepared, Protocol, Scored, score
from srbench.schema import SCORER_VERSION, tiling_label

if TYPE_CHECKING:  # only named: the registry stays out of the scorer's code_sha256
    from srbench.registry import ModelCard


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
    """Run ``model`` (in eval mode, fp32: on a GPU with TF32 off, which torch's cuDNN default
    leaves on) on one prepared image and score its output.

    Non-finite output pixels are an error naming ``label`` (model and image) -- never a stored
    number.
    """
    lr = torch.from_numpy(prepared.model_input).to(device, torch.float32)[None]
    lr = lr.contiguous(memory_format=memory_format(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with tf32(False):
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


def new_run_id() -> str:
    """The id of one run (``srbench run``, an ablation's scoring): its UTC start and 6 random
    hex digits, so two runs started in the same second differ."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Evaluand:
    """A built model and what its results are stored under: the runner's and an ablation's
    (a variant built with constructor overrides) alike."""

    model: torch.nn.Module  # on the device, in eval mode and the evaluation layout
    key: str  # the stored name: idn, idn.official, fsrcnn.mine
    card: ModelCard
    scale: int
    weights_sha256: str
    code_sha256: str
    tile_overlap: int | None = None  # with tiling: LR pixels of context (checked by the caller)
    extra: dict[str, Any] = field(default_factory=dict)  # the caller's tags (ablation, variant)


@dataclass(frozen=True)
class RecordContext:
    """What every record of one run shares: protocol, inference variant and provenance."""

    protocol: Protocol
    device: torch.device
    env: dict[str, Any]
    run_id: str
    precision: str  # srbench.precision's name of what evaluate_image computes in
    seed: int = 0
    ensemble: bool = False
    tile: int | None = None


def key_fields(
    job: Evaluand, ctx: RecordContext, *, dataset: str, image: str, hr_sha256: str, standard: bool
) -> dict[str, Any]:
    """The fields that identify a result (:data:`srbench.schema.KEY_FIELDS`), in record order."""
    return {
        "model": job.key,
        "weights_sha256": job.weights_sha256,
        "scale": job.scale,
        "dataset": dataset,
        "image": image,
        "protocol": ctx.protocol.id,
        "protocol_hash": ctx.protocol.hash,
        "ensemble": ctx.ensemble,
        "precision": ctx.precision,
        "hr_sha256": hr_sha256,
        "standard_benchmark": standard,
        "scorer_version": SCORER_VERSION,
        "tiling": tiling_label(ctx.tile, job.tile_overlap),
        "code_sha256": job.code_sha256,
        "device_type": ctx.device.type,
    }


def result_record(
    job: Evaluand,
    ctx: RecordContext,
    base: dict[str, Any],
    result: ImageResult,
    *,
    fingerprint: str,
    threads: dict | None = None,
) -> dict[str, Any]:
    """The one constructor of a stored per-image record: ``base`` (:func:`key_fields`), the
    scores, how the image was run, provenance, then the caller's tags."""
    from srbench.provenance import record_provenance

    report = result.report
    return {
        **base,
        **result.scored.metrics,
        # Wall time of this one forward pass, no warm-up: for orientation only; `srbench
        # profile` makes the latency numbers to compare.
        "wall_ms": result.wall_ms,
        "tiled": report.tiled,
        "tile_size": report.tile_size,
        "tile_overlap": report.overlap,
        "memory_format": memory_format_name(memory_format(ctx.device)),
        "dataset_fingerprint": fingerprint,
        **record_provenance(ctx.env, ctx.device, ctx.run_id, ctx.seed, threads),
        **job.extra,
    }
