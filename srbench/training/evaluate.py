"""Validation and ablation scoring: the runner's own loop on a model object (the runner's numbers).

The runner builds each model from the registry by name, so it cannot build a model with
constructor overrides (an ablation variant) or one that is still training. These functions
wrap such a model as an :class:`~srbench.evaluation.Evaluand` and score it with
:func:`srbench.runner.iter_model` -- the loop `srbench run` uses, with its per-image step, its
record constructor and, for ablations, its store, claims and resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from srbench.data import resolve_data_root
from srbench.evaluation import Evaluand
from srbench.inference import in_memory_format
from srbench.protocols import Protocol
from srbench.registry import ModelCard
from srbench.runner import DatasetSource, RunConfig, Session, benchmark_source, iter_model
from srbench.schema import METRIC_NAMES, UNKNOWN_CODE


def validation_sources(
    datasets: Sequence[str], data_root: str | Path | None = None
) -> list[DatasetSource]:
    root = resolve_data_root(data_root)
    return [benchmark_source(key, root) for key in datasets]


def validation_session(protocol: Protocol, device: torch.device) -> Session:
    """A session that stores nothing and keeps each image's model input for the next
    validation (see :class:`srbench.runner.Session`)."""
    config = RunConfig(models=[], datasets=[], scales=[], protocol=protocol, device=str(device))
    return Session(config, device, stored=False)


def validation_records(
    model: torch.nn.Module,
    card: ModelCard,
    scale: int,
    sources: Sequence[DatasetSource],
    session: Session,
) -> list[dict]:
    """Per-image records of a model being trained (never stored): fp32, in the evaluation
    layout (a converted copy where the training layout differs), in eval mode meanwhile."""
    was_training = model.training
    model.eval()
    net = in_memory_format(model, session.record.device)
    # Training weights have no file yet and these records are never stored: placeholders.
    job = Evaluand(net, card.name, card, scale, "unsaved", UNKNOWN_CODE)
    try:
        events = iter_model(job, list(sources), session)
        return [e.record for e in events if e.kind == "image" and e.record is not None]
    finally:
        model.train(was_training)


def summarise_scores(scores: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Per-dataset mean PSNR/SSIM: ``{"set5": {"psnr_db": .., "ssim": .., "images": 5}}``."""
    out: dict[str, dict[str, float]] = {}
    for key in dict.fromkeys(s["dataset"] for s in scores):
        rows = [s for s in scores if s["dataset"] == key]
        out[key] = {
            **{m: sum(r[m] for r in rows) / len(rows) for m in METRIC_NAMES},
            "images": len(rows),
        }
    return out
