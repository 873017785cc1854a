"""Validation and ablation scoring: the runner's own loop on a model object (the runner's numbers).

The runner builds each model from the registry by name, so it cannot build a model with
constructor overrides (an ablation variant) or one that is still training. These functions
wrap such a model as an :class:`~srbench.evaluation.Evaluand` and score it with
:func:`srbench.runner.iter_model` -- the loop `srbench run` uses, with its per-image step, its
record constructor and, for ablations, its store, claims and resume.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.data import resolve_data_root
from srbench.evaluation import Evaluand
from srbench.inference import in_memory_format
from srbench.protocols import Protocol, get_protocol
from srbench.registry import ModelCard
from srbench.runner import RunConfig, Session, iter_model
from srbench.schema import UNKNOWN_CODE, metric_names
from srbench.sources import DatasetSource, benchmark_source
from srbench.training import distributed
from srbench.training.checkpoint import append_log
from srbench.training.recipe import Recipe


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
    """Per-dataset mean of each metric: ``{"set5": {"psnr_db": .., "ssim": .., "images": 5}}``."""
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


class Validation:
    """Validation of the weights the run outputs -- with EMA, the raw model's too (logged with
    ``ema: false``), so whether the EMA helps is measured in every run -- through the runner's
    loop on the recipe's validation sets (rank 0 only)."""

    def __init__(
        self,
        recipe: Recipe,
        ctx: distributed.DistContext,
        card: ModelCard,
        models: dict[int, nn.Module],
        ema: Any | None,
        run_dir: Path,
        device: torch.device,
        data_root: str | Path | None,
    ) -> None:
        self.config = recipe.validation
        self.total = recipe.iterations
        self.card, self.models, self.ema = card, models, ema
        self.scales = list(models)  # the first is the one the EMA averages
        self.run_dir = run_dir
        self.wanted = bool(self.config.datasets) and (
            self.config.interval > 0 or self.config.at_end
        )
        self.sources: list[DatasetSource] = []
        self.session: Session | None = None
        if ctx.is_main and self.wanted:
            self.sources = validation_sources(self.config.datasets, data_root)
            protocol = get_protocol(self.config.protocol)
            self.session = validation_session(protocol, device)

    def due(self, done: int) -> bool:
        """A validation during training after iteration ``done`` (the final one comes after)."""
        interval, at_end = self.config.interval, self.config.at_end
        return (
            self.wanted
            and interval > 0
            and done % interval == 0
            and (done != self.total or not at_end)
        )

    def _eval_model(self, s: int) -> nn.Module:
        if self.ema is None:
            return self.models[s]
        if s == self.scales[0]:
            return self.ema.module
        shadow = copy.deepcopy(self.models[s])
        shadow.load_state_dict(self.ema.module.state_dict())
        return shadow

    def __call__(self, iteration: int) -> dict[str, Any]:
        """Validate after ``iteration``; logged, and returned as the ``validate`` event's info."""
        assert self.session is not None  # validations run on rank 0, when the recipe asks
        merged: dict[str, dict[str, float]] = {}
        for s in self.scales:
            for use_ema in [True, False] if self.ema is not None else [False]:
                net = self._eval_model(s) if use_ema else self.models[s]
                records = validation_records(net, self.card, s, self.sources, self.session)
                summary = summarise_scores(records)
                append_log(
                    self.run_dir,
                    {
                        "kind": "val",
                        "iteration": iteration,
                        "scale": s,
                        "protocol": self.config.protocol,
                        "ema": use_ema,
                        "results": summary,
                    },
                )
                if use_ema or self.ema is None:
                    for key, value in summary.items():
                        merged[key if len(self.scales) == 1 else f"{key} x{s}"] = value
        return {"results": merged, "protocol": self.config.protocol}
