"""The report's figures: Pareto panels per protocol, scale and cost, the zoo's learning curves
and the verdict's forest and strip plots -- each of the headline metric
(:func:`srbench.schema.headline`), drawn by :mod:`srbench.figures`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from srbench.figures import PaperPoint, forest_plot, scale_figure, strip_plot
from srbench.pareto import COSTS, architecture_name
from srbench.report.page import Plot
from srbench.report.text import card_or_none
from srbench.report.visuals import src
from srbench.schema import MetricSpec, headline, metric


def learning_curves(training: list[dict], img: Path) -> list[dict[str, Any]]:
    """One figure per scale: Set5's headline metric (PSNR) against the iteration for every zoo
    run (from the store's ``training/`` records, written by ``srbench zoo ship``)."""
    from matplotlib.figure import Figure

    spec = headline()  # what the validation during training measures
    by_scale: dict[int, list[tuple[str, list[int], list[float]]]] = {}
    for t in training:
        for scale in t["scales"]:
            points = [
                c
                for c in t["curve"]
                if int(c.get("scale", scale)) == scale and spec.name in c.get("set5", {})
            ]
            if points:
                by_scale.setdefault(int(scale), []).append(
                    (
                        t["model"],
                        [int(c["iteration"]) for c in points],
                        [float(c["set5"][spec.name]) for c in points],
                    )
                )
    figures = []
    for scale in sorted(by_scale):
        fig = Figure(figsize=(7.0, 4.2), dpi=110)
        ax = fig.subplots()
        for model, xs, ys in sorted(by_scale[scale]):
            ax.plot(xs, ys, marker="o", markersize=3, label=model)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"Set5 {spec.axis_label()}, standard protocol")
        ax.set_title(f"zoo learning curves, x{scale} (validation during training)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"learning_x{scale}.png"
        fig.savefig(img / name, metadata={"Software": None})
        figures.append({"scale": scale, "src": src(img / name), "alt": f"learning curves x{scale}"})
    return figures


def _paper_points(
    table: pd.DataFrame,
    datasets: Sequence[str],
    scale: int,
    protocol: str,
    cost: str,
    quality: MetricSpec | None = None,
) -> list[PaperPoint]:
    """The cards' published numbers of ``quality`` (default: the headline metric) under
    ``protocol`` for the architectures in ``table``, placed at the architecture's stored cost
    (never a cost typed into a card)."""
    spec = quality or headline()
    points = []
    for arch in sorted({architecture_name(str(m)) for m in table["model"]}):
        card = card_or_none(arch)
        rows = table[table["model"].map(lambda m, a=arch: architecture_name(str(m)) == a)]
        values = [float(v) for v in rows[cost] if pd.notna(v)]
        if card is None or not values:
            continue
        for dataset in datasets:
            published = card.published_for(dataset, scale)
            if published is None or published.protocol != protocol:
                continue
            value = getattr(published, spec.name, None)  # a card publishes what it has
            if value is not None:
                points.append(
                    PaperPoint(f"{arch} (paper)", dataset, value, values[0], published.source)
                )
    return points


def scale_plot(
    plotted: pd.DataFrame,
    datasets: Sequence[str],
    cost: str,
    img: Path,
    prefix: str,
    protocol: str,
    protocol_hash: str,
) -> Plot:
    """One figure for a protocol, scale and cost: a panel per dataset (:func:`scale_figure`),
    of the headline metric."""
    spec = headline()
    scale = int(plotted["scale"].iloc[0])
    title = f"×{scale}: {spec.label} vs {cost}"
    notes = []
    if cost in ("latency_ms", "memory_bytes"):
        # Only comparable on one machine: keep the most common hardware, name the others.
        measured = plotted[plotted[cost].notna()]
        hardware = str(measured["latency_hardware"].value_counts().index[0])
        other = sorted(set(measured[measured["latency_hardware"] != hardware]["label"]))
        if other:
            notes.append(f"measured on other hardware, not shown: {', '.join(other)}")
        notes.append(f"hardware: {hardware}")
        plotted = plotted[plotted["latency_hardware"].isin([hardware, None])]
    try:
        paths, more = scale_figure(
            plotted, datasets, cost, img / f"pareto_{prefix}_{cost}",
            title=f"{protocol}@{protocol_hash} ×{scale}: {spec.label} vs {COSTS[cost]}",
            paper=_paper_points(plotted, datasets, scale, protocol, cost, spec),
            quality=spec.name,
        )  # fmt: skip
    except ValueError as exc:
        return Plot(title, None, None, "", str(exc))
    return Plot(
        title,
        src(paths["png"]),
        src(paths["svg"]),
        f"{spec.label} against {cost} at x{scale}, a panel per dataset",
        note="; ".join([*notes, *more]),
    )


def _verdict_figures(rows: list, img: Path) -> list[dict[str, str]]:
    """The forest plot of every difference of the headline metric (PSNR) and a strip plot of
    the per-image differences of each pair (both from the per-image records, like the table)."""
    from srbench.verdict import VERDICT_PAIRS

    name = headline().label
    if not any(r.metric == headline().name for r in rows):
        return []
    titles = {(a, b): t for a, b, t in VERDICT_PAIRS}
    figures = [
        {
            "src": src(forest_plot(rows, img / "verdict_forest", titles=titles)),
            "alt": f"forest plot of the verdict's {name} differences",
            "caption": f"Mean per-image {name} difference A − B with its 95% paired t interval "
            "over the images, per dataset and scale.",
        }
    ]
    for a, b, title in VERDICT_PAIRS:
        if any((r.a, r.b) == (a, b) and r.metric == headline().name for r in rows):
            path = strip_plot(rows, a, b, img / f"verdict_strip_{a}_vs_{b}", title=title)
            figures.append(
                {
                    "src": src(path),
                    "alt": f"per-image {name} differences {a} - {b}",
                    "caption": f"{a} − {b}: every image's {name} difference, per dataset and scale.",
                }
            )
    return figures


def _diff_row(r: Any) -> dict[str, str]:
    """A verdict table row's shared cells (a :class:`srbench.verdict.PairResult`)."""
    digits = metric(r.metric).decimals + 1  # differences: one decimal finer than means
    return {
        "pair": f"{r.a} - {r.b}",
        "cell": f"{r.dataset} x{r.scale}",
        "metric": r.metric,
        "diff": f"{r.diff.mean:+.{digits}f}",
        "ci": f"[{r.diff.low:+.{digits}f}, {r.diff.high:+.{digits}f}]",
        "wtl": f"{r.wins}/{r.ties}/{r.losses}",
        "sign": r.sign,
    }


def verdict_rows(
    records: list[dict], img: Path
) -> tuple[list[dict[str, str]], list[str], list[dict[str, str]]]:
    from srbench.verdict import VERDICT_PAIRS, sentence, unequal_training, verdict

    rows = verdict(records)
    table = [{**_diff_row(r), "images": str(r.images)} for r in rows]
    unequal = unequal_training(records)
    sentences = [sentence(rows, a, b, unequal) for a, b, _ in VERDICT_PAIRS]
    return table, sentences, _verdict_figures(rows, img)


def budget_section(records: list[dict], ladder: list[dict], img: Path) -> dict[str, Any]:
    """The verdict over training budgets (the ladder's rungs, :func:`srbench.verdict.
    budget_verdict`): per pair its sentence (with any rung that trained at a lowered rate after a
    divergence), the difference-against-budget figure per scale, one table row per pair, rung,
    dataset, scale and metric with what its interval covers, and the ladder's learning curves
    (``ladder``: the committed ``training/ladder`` records)."""
    from srbench.figures import budget_plot
    from srbench.figures import learning_curves as ladder_curves
    from srbench.verdict import VERDICT_PAIRS, budget_sentence, budget_verdict

    rows = budget_verdict(records)
    titles = {(a, b): t for a, b, t in VERDICT_PAIRS}
    table = [
        {**_diff_row(r), "rung": f"{(r.budget or 0) // 1000}k", "covers": r.diff.covers}
        for r in rows
    ]
    pairs = [(a, b) for a, b, _ in VERDICT_PAIRS if any((r.a, r.b) == (a, b) for r in rows)]
    figures = []
    for scale in sorted({r.scale for r in rows}):
        path = budget_plot(rows, img / f"verdict_budget_x{scale}", titles=titles, scale=scale)
        if path is not None:
            figures.append({"src": src(path), "scale": str(scale)})
    curves = []
    for scale in sorted({int(r["scales"][0]) for r in ladder}):
        path = ladder_curves(ladder, img / f"ladder_curves_x{scale}.png", scale=scale)
        if path is not None:
            curves.append({"src": src(path), "scale": str(scale)})
    return {
        "rows": table,
        "sentences": [budget_sentence(rows, a, b) for a, b in pairs],
        "figures": figures,
        "curves": curves,
    }
