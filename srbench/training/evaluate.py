"""Validation and ablation scoring with the project's protocols (exactly the runner's numbers).

The runner builds each model from the registry by name, so it cannot evaluate a model built with
constructor overrides (an ablation variant) or one that is still training. These functions take
a model object and run the runner's own per-image step, :func:`srbench.evaluation.evaluate_image`
(fp32 forward, NaN check, protocol score), so the numbers are the runner's numbers, and
:func:`result_records` writes records with the runner's fields (plus the caller's tags).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from srbench.data import resolve_data_root
from srbench.evaluation import evaluate_image
from srbench.inference import in_memory_format
from srbench.protocols import LRCache, Prepared, get_protocol, prepare
from srbench.registry import ModelCard
from srbench.runner import DatasetSource, benchmark_source
from srbench.schema import metric_names


@dataclass
class PreparedImage:
    dataset: str
    name: str
    hr_sha256: str
    fingerprint: str
    standard: bool
    prepared: Prepared


def prepare_sources(
    sources: Sequence[DatasetSource],
    scale: int,
    input_channels: str,
    protocol: str = "standard",
    cache: LRCache | None = None,
) -> list[PreparedImage]:
    """Model inputs and scoring targets of every image, made once (reused at each validation)."""
    proto = get_protocol(protocol)
    cache = cache or LRCache()
    out = []
    for source in sources:
        for name in source.names:
            hr = source.loader(name)
            out.append(
                PreparedImage(
                    source.key,
                    name,
                    hr.pixels_sha256,
                    source.fingerprint,
                    source.is_standard,
                    prepare(proto, hr, scale, input_channels, cache),
                )
            )
    return out


def validation_sources(
    datasets: Sequence[str], data_root: str | Path | None = None
) -> list[DatasetSource]:
    root = resolve_data_root(data_root)
    return [benchmark_source(key, root) for key in datasets]


def iter_scores(
    model: torch.nn.Module,
    images: Sequence[PreparedImage],
    protocol: str = "standard",
    device: torch.device | str = "cpu",
) -> Iterator[dict]:
    """Per-image ``{dataset, image, psnr_db, ssim, wall_ms, tiled, ...}`` in fp32."""
    proto = get_protocol(protocol)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    net = in_memory_format(model, device)
    try:
        for item in images:
            result = evaluate_image(
                net, item.prepared, proto, device, label=f"{item.dataset}/{item.name}"
            )
            scored, report, wall_ms = result.scored, result.report, result.wall_ms
            yield {
                "dataset": item.dataset,
                "image": item.name,
                **scored.metrics,
                "wall_ms": wall_ms,
                "tiled": report.tiled,
                "hr_sha256": item.hr_sha256,
                "dataset_fingerprint": item.fingerprint,
                "standard_benchmark": item.standard,
            }
    finally:
        model.train(was_training)


def summarise_scores(scores: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Per-dataset mean PSNR/SSIM: ``{"set5": {"psnr_db": .., "ssim": .., "images": 5}}``."""
    out: dict[str, dict[str, float]] = {}
    for key in dict.fromkeys(s["dataset"] for s in scores):
        rows = [s for s in scores if s["dataset"] == key]
        out[key] = {
            **{
                m: sum(r[m] for r in rows) / len(rows)
                for m in metric_names()
                if all(m in r for r in rows)  # a metric the protocol cannot feed: absent
            },
            "images": len(rows),
        }
    return out


def result_records(
    scores: Sequence[dict],
    *,
    card: ModelCard,
    scale: int,
    weights_sha256: str,
    protocol: str = "standard",
    device: torch.device | str = "cpu",
    seed: int = 0,
    extra: dict | None = None,
) -> list[dict]:
    """Result-store records with the runner's fields, plus ``extra`` (e.g. ablation tags)."""
    from srbench.provenance import environment, record_provenance

    proto = get_protocol(protocol)
    device = torch.device(device)
    env = environment(device)
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    records = []
    for s in scores:
        records.append(
            {
                "model": card.name,
                "weights_sha256": weights_sha256,
                "scale": scale,
                "dataset": s["dataset"],
                "image": s["image"],
                "protocol": proto.id,
                "protocol_hash": proto.hash,
                "ensemble": False,
                "precision": "fp32",
                **{m: s[m] for m in metric_names() if m in s},
                "wall_ms": s["wall_ms"],
                "tiled": s["tiled"],
                "hr_sha256": s["hr_sha256"],
                "dataset_fingerprint": s["dataset_fingerprint"],
                "standard_benchmark": s["standard_benchmark"],
                **record_provenance(env, device, run_id, seed),
                **(extra or {}),
            }
        )
    return records
