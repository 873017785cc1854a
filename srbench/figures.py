"""The report's figures, drawn from stored numbers only (records, profile records, cards).

* :func:`scale_figure`: one figure per protocol, scale and cost -- a panel per dataset with every
  model measured under that protocol, the Pareto front drawn and labelled, and the papers' own
  numbers under the *same* protocol as hollow markers beside the measured points;
* :func:`forest_plot`: the verdict's mean per-image differences with their 95% t intervals;
* :func:`strip_plot`: the per-image differences behind one verdict pair, a strip per cell.

Every figure is a :class:`matplotlib.figure.Figure` of its own (the caller's backend is left
alone), saved as PNG (and SVG where asked) without timestamps. Library code: nothing prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from srbench.data import benchmark_order
from srbench.kinds import weights_kind
from srbench.pareto import (
    COSTS,
    LOG_COSTS,
    _finite,
    budget_labels,
    draw_fronts,
    drop_partial,
    quality_spec,
)
from srbench.plotting import place_labels, save_figure, zero_cost_axis
from srbench.schema import headline


@dataclass(frozen=True)
class PaperPoint:
    """A paper's number of one metric (from a model card) at its architecture's stored cost."""

    label: str
    dataset: str
    value: float
    cost: float
    source: str


def _unit(spec) -> str:
    """`` (dB)`` after a label, nothing for a unitless metric."""
    return f" ({spec.unit})" if spec.unit else ""


def _save(fig, path: Path, svg: bool) -> dict[str, Path]:
    paths = {"png": path.with_suffix(".png")}
    if svg:
        paths["svg"] = path.with_suffix(".svg")
    return save_figure(fig, paths)


def _x(values: Sequence[float], log_x: bool) -> tuple[list[float], float | None]:
    """Plot positions: on a log axis a zero cost (bicubic's 0 parameters) sits one decade left
    of the smallest positive cost, on a tick labelled 0."""
    if not log_x:
        return list(values), None
    positive = [v for v in values if v > 0]
    zero_x = 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1.0
    return [v if v > 0 else zero_x for v in values], zero_x


def scale_figure(
    table: pd.DataFrame,
    datasets: Sequence[str],
    cost: str,
    path: Path,
    *,
    title: str,
    paper: Sequence[PaperPoint] = (),
    quality: str | None = None,
) -> tuple[dict[str, Path], list[str]]:
    """``quality`` (a metric) against ``cost``, one panel per dataset, for one protocol and scale.

    ``table``: the summary rows of that protocol and scale (:func:`srbench.pareto.summary_table`,
    with ``label``). Points without the cost, and means over part of a benchmark, are listed in
    the returned notes, never placed.
    """
    from matplotlib.figure import Figure

    spec = quality_spec(quality or headline().name)
    quality = spec.name
    table, notes = drop_partial(table)
    usable = table[table[cost].map(_finite) & table[quality].map(_finite)]
    missing = sorted(set(table["label"]) - set(usable["label"]))
    if missing:
        notes.append(f"no stored {cost} for: {', '.join(missing)}")
    shown = [d for d in datasets if (usable["dataset"] == d).any()]
    if not shown:
        raise ValueError(f"no model has both {quality} and {cost}")
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.9 * rows + 0.5), dpi=100)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    log_x = cost in LOG_COSTS
    labels_to_place = []  # placed once the layout is final
    for ax, dataset in zip(axes, shown, strict=False):
        part = usable[usable["dataset"] == dataset]
        costs = [float(v) for v in part[cost]]
        qualities = [float(v) for v in part[quality]]
        marks = [p for p in paper if p.dataset == dataset and _finite(p.cost)]
        xs, zero_x = _x(costs + [p.cost for p in marks], log_x)
        px, xs = xs[len(costs) :], xs[: len(costs)]
        kinds = [
            weights_kind(m, s) for m, s in zip(part["model"], part["weights_sha256"], strict=True)
        ]
        right = max(xs) * (1.6 if log_x else 1.05)
        draw_fronts(
            ax, costs, xs, qualities, kinds, right, 30, higher_is_better=spec.higher_is_better
        )
        labels_to_place.append((ax, xs, qualities, budget_labels(part), px, marks))
        if marks:
            ax.scatter(px, [p.value for p in marks], facecolors="none", edgecolors="black",
                       marker="D", s=34, zorder=4, label="paper (same protocol)")  # fmt: skip
        if log_x:
            ax.set_xscale("log")
            if zero_x is not None and any(c <= 0 for c in costs):
                zero_cost_axis(ax, zero_x, max(xs + px))
        ax.set_title(dataset, fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.set_xlabel(COSTS[cost] + (" (log)" if log_x else ""), fontsize=7)
        ax.set_ylabel(spec.axis_label(), fontsize=8)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1 : len(shown)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    for ax, xs, qualities, texts, px, marks in labels_to_place:
        paper_points = [(x, p.value) for x, p in zip(px, marks, strict=True)]
        measured = place_labels(ax, xs, qualities, texts, avoid_points=paper_points, fontsize=7)
        place_labels(
            ax, [x for x, _ in paper_points], [q for _, q in paper_points],
            [p.label for p in marks], avoid=measured, fontsize=6, color="dimgray",
            avoid_points=list(zip(xs, qualities, strict=True)),
        )  # fmt: skip
    return _save(fig, path, svg=True), notes


def forest_plot(
    rows: Sequence,
    path: Path,
    *,
    titles: dict[tuple[str, str], str],
    title: str = "DRN verdict",
) -> Path:
    """The verdict's rows of the headline metric (:class:`srbench.verdict.PairResult`): mean
    difference and its 95% CI per (pair, dataset, scale), a zero line, one block per pair."""
    from matplotlib.figure import Figure

    spec = headline()
    shown = [r for r in rows if r.metric == spec.name]
    pairs = list(dict.fromkeys((r.a, r.b) for r in shown))
    n = len(shown) + len(pairs)
    fig = Figure(figsize=(7.5, 0.9 + 0.24 * n), dpi=100)
    ax = fig.subplots()
    y, ticks, labels = 0, [], []
    for a, b in pairs:
        block = [r for r in shown if (r.a, r.b) == (a, b)]
        ax.text(0.0, y, titles.get((a, b), f"{a} vs {b}"), transform=ax.get_yaxis_transform(),
                fontsize=8, fontweight="bold", va="center")  # fmt: skip
        y -= 1
        for r in sorted(block, key=lambda r: (r.scale, benchmark_order(r.dataset))):
            color = {"better": "tab:green", "worse": "tab:red"}.get(r.sign, "tab:gray")
            ax.errorbar([r.diff.mean], [y], xerr=[[r.diff.mean - r.diff.low],
                        [r.diff.high - r.diff.mean]], fmt="o", color=color, ms=4, capsize=2)  # fmt: skip
            ticks.append(y)
            labels.append(f"{r.dataset} x{r.scale} (n={r.images})")
            y -= 1
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylim(y + 0.5, 1.0)
    ax.set_xlabel(
        f"mean per-image {spec.label} difference A - B{_unit(spec)}, 95% paired t interval",
        fontsize=8,
    )
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(f"{title} (green: A better, red: B better, grey: CI includes 0)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, svg=False)["png"]


def strip_plot(rows: Sequence, a: str, b: str, path: Path, *, title: str) -> Path:
    """Per-image differences A - B of the headline metric, one strip per (dataset, scale), with
    the mean marked; the horizontal jitter is deterministic (image order), so the figure is
    reproducible."""
    from matplotlib.figure import Figure

    spec = headline()
    cells = sorted(
        (r for r in rows if r.metric == spec.name and (r.a, r.b) == (a, b)),
        key=lambda r: (r.scale, benchmark_order(r.dataset)),
    )
    fig = Figure(figsize=(max(4.5, 0.9 * len(cells) + 1.5), 3.6), dpi=100)
    ax = fig.subplots()
    for i, r in enumerate(cells):
        values = [r.per_image[k] for k in sorted(r.per_image)]
        jitter = np.linspace(-0.28, 0.28, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + jitter, values, s=8, alpha=0.6, color="tab:blue")
        ax.plot([i - 0.35, i + 0.35], [r.diff.mean] * 2, color="black", linewidth=1.5)
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.set_xticks(range(len(cells)), [f"{r.dataset}\nx{r.scale}" for r in cells], fontsize=7)
    ax.set_ylabel(f"{spec.label} {a} - {b}{_unit(spec)}, per image", fontsize=8)
    ax.set_title(title + " (bar: mean)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, svg=False)["png"]


def budget_plot(
    rows: Sequence, path: Path, *, titles: dict[tuple[str, str], str], scale: int = 2
) -> Path | None:
    """The verdict against the training budget (:func:`srbench.verdict.budget_verdict` rows of
    the headline metric at ``scale``): one panel per pair, the mean difference A - B per dataset
    against the ladder rung on a log axis, each with its 95% interval as a bar -- a filled marker
    where the interval covers training seeds too, an open one where one seed covers only the
    images (no band: an interval between rungs is not measured); None when there are no rows."""
    from matplotlib.figure import Figure

    spec = headline()
    shown = [r for r in rows if r.metric == spec.name and r.scale == scale and r.budget]
    pairs = list(dict.fromkeys((r.a, r.b) for r in shown))
    if not pairs:
        return None
    fig = Figure(figsize=(3.4 * len(pairs), 3.3), dpi=100)
    axes = np.atleast_1d(fig.subplots(1, len(pairs), squeeze=False)[0])
    for ax, (a, b) in zip(axes, pairs, strict=True):
        block = [r for r in shown if (r.a, r.b) == (a, b)]
        for dataset in sorted({r.dataset for r in block}, key=benchmark_order):
            cells = sorted((r for r in block if r.dataset == dataset), key=lambda r: r.budget)
            line = ax.plot([r.budget for r in cells], [r.diff.mean for r in cells], "-",
                           lw=1, label=dataset)[0]  # fmt: skip
            for r in cells:
                ax.errorbar([r.budget], [r.diff.mean], capsize=2, fmt="o", ms=4,
                            yerr=[[r.diff.mean - r.diff.low], [r.diff.high - r.diff.mean]],
                            color=line.get_color(),
                            mfc=line.get_color() if r.diff.seeds > 1 else "white")  # fmt: skip
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        rungs = sorted({r.budget for r in block})
        ax.set_xticks(rungs, [f"{n // 1000}k" for n in rungs], fontsize=7)
        ax.minorticks_off()
        ax.set_title(titles.get((a, b), f"{a} vs {b}"), fontsize=7)
        ax.set_xlabel("training iterations (batch 16)", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(f"{spec.label} A - B{_unit(spec)}, x{scale}", fontsize=8)
    fig.text(
        0.5,
        0.01,
        "bars: 95% t intervals; filled marker: over the images and training "
        "seeds; open marker: over the images only (one seed)",
        ha="center",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path, svg=False)["png"]


def learning_curves(records: Sequence[dict], path: Path, *, scale: int) -> Path | None:
    """Set5 headline metric (PSNR) against iterations of every budget-ladder run at ``scale``
    (the committed training records of `srbench ladder record`): per model and seed, the
    constant-rate trunk as a line (raw weights, validations before each run's decay) and each
    rung's end, after its decay, as a marker joined by a dashed line; log iteration axis. None
    without records."""
    from matplotlib.figure import Figure

    spec = headline()
    runs = [r for r in records if r.get("ladder_run") and r["scales"] == [scale]]
    if not runs:
        return None
    fig = Figure(figsize=(7.0, 4.2), dpi=100)
    ax = fig.subplots()
    groups = sorted({(r["model"], r["seed"]) for r in runs})
    for model, seed in groups:
        mine = [r for r in runs if (r["model"], r["seed"]) == (model, seed)]
        trunk: dict[int, float] = {}
        ends: dict[int, float] = {}
        for r in mine:
            decay = r["decay_start"]
            for point in r["curve"]:
                if point.get("ema") or "set5" not in point:
                    continue
                if point["iteration"] == r["rung"]:
                    ends[r["rung"]] = point["set5"][spec.name]
                elif point["iteration"] <= decay:
                    trunk[point["iteration"]] = point["set5"][spec.name]
        label = model if seed == 0 else f"{model} seed {seed}"
        style = "-" if seed == 0 else ":"
        line = ax.plot(sorted(trunk), [trunk[k] for k in sorted(trunk)], style, lw=1,
                       label=f"{label} (trunk)")[0]  # fmt: skip
        ax.plot(sorted(ends), [ends[k] for k in sorted(ends)], "o--", color=line.get_color(),
                ms=4, lw=0.8)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("iterations (batch 16, LR patch 48)", fontsize=8)
    unit = f"{spec.unit}, " if spec.unit else ""
    ax.set_ylabel(f"Set5 {spec.label} ({unit}standard), x{scale}", fontsize=8)
    ax.set_title("Budget ladder: trunk at constant rate (line), rung ends after decay (o)",
                 fontsize=9)  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return _save(fig, path, svg=False)["png"]
