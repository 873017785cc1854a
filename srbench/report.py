"""The HTML report: one self-contained folder, made from the result store, that opens offline.

``build_report(results_dir, output_dir)`` writes ``output_dir/index.html`` and ``output_dir/img/<build>/``
(Pareto plots as PNG + SVG, visual-comparison crops as PNG), all referenced by relative paths;
the page loads nothing from the network (no CDN, no fonts, no scripts). What it shows:

* per protocol (id + hash -- numbers from different protocols are never in one table) and scale,
  a table of PSNR / SSIM on every benchmark present, with parameters, MACs and latency
  (:mod:`srbench.pareto` says where each cost comes from), and a paper-vs-measured table for
  every model whose card publishes numbers under that same protocol;
* Pareto plots (PSNR vs parameters and MACs; latency when ``srbench profile`` measured it);
* visual comparisons: the same HR crop of a few hard benchmark images for every model, as
  ``srbench run`` stored them (:mod:`srbench.crops`), beside exactly the records the tables show;
* the DRN ablation results (records that carry an ``ablation`` field);
* a footer with each protocol's id, hash and definition, the hardware and the software versions
  (from the records' metadata).

Every value reaches the page through Jinja2 with ``autoescape=True``.
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from srbench.crops import CropStore
from srbench.data import BENCHMARK_KEYS, benchmark_order
from srbench.errors import SRBenchError
from srbench.figures import PaperPoint, forest_plot, scale_figure, strip_plot
from srbench.files import atomic_write, writable_target
from srbench.kinds import KINDS, PAPER_KINDS, training_budget, weights_kind
from srbench.pareto import (
    COST_SIZE,
    COSTS,
    CostFn,
    architecture_name,
    efficiency_table,
    load_profiles,
    mean_problem,
    profile_hardware,
    summary_table,
    timed_as_run,
)
from srbench.protocols import PROTOCOLS
from srbench.results import ResultStore
from srbench.schema import UNKNOWN_CODE, record_key

IMG_DIR = "img"
_MARKER = ".srbench-report"  # only an img/ folder holding this file is ever cleared


# ------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def fmt(value: Any, digits: int = 2, signed: bool = False) -> str:
    v = _num(value)
    if v is None:
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if round(v, digits) == 0:
        v = 0.0  # no "-0.00"
    text = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    return text.replace("-", "−")


def fmt_int(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{round(v):,}"


def fmt_macs(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    return f"{v / 1e9:,.1f} G" if v >= 1e8 else f"{v / 1e6:,.1f} M"


def fmt_ms(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.2f}")


def _ordered_datasets(names: Sequence[str]) -> list[str]:
    return sorted(set(names), key=benchmark_order)


# Visual comparison: one image per benchmark by default (each spec's first, hardest-first
# ``visual_images``), so Manga109 is shown beside Urban100 and Set14, not cut off after four.
VISUAL_IMAGES = len(BENCHMARK_KEYS)


def visual_order(images: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(dataset, image) pairs in the order the visual comparison shows them: each benchmark's
    first named image in benchmark order, then each one's second, and so on; unnamed last."""
    from srbench.data import get_benchmark

    def key(item: tuple[str, str]) -> tuple[bool, int, tuple[int, str], str]:
        dataset, image = item
        try:
            visual = list(get_benchmark(dataset).visual_images)
        except SRBenchError:
            visual = []
        named = image in visual
        return not named, visual.index(image) if named else 0, benchmark_order(dataset), image

    return sorted(images, key=key)


def _card(model: str):
    from srbench.registry import get_card

    try:
        return get_card(model)
    except SRBenchError:
        return None


def _short(sha: Any) -> str:
    sha = str(sha)
    return sha if sha in ("none", "random-init") else sha[:12]


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))[:80]


# ------------------------------------------------------------------------------------------------
# Page model
# ------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    psnr: str
    ssim: str
    images: str = ""
    flags: list[str] = field(default_factory=list)


@dataclass
class Row:
    label: str
    model: str
    weights: str
    weights_warning: str
    kind: str  # whose weights (srbench.kinds.KINDS legend)
    budget: str  # srbench's training budget, for zoo models
    cells: list[Cell]
    params: str
    macs: str
    network_macs: str
    latency: str
    latency_hw: str
    cost_source: str
    paper: str


@dataclass
class PaperRow:
    label: str
    dataset: str
    paper_psnr: str
    paper_ssim: str
    measured_psnr: str
    measured_ssim: str
    delta_psnr: str
    delta_ssim: str
    source: str
    note: str


@dataclass
class Plot:
    title: str
    png: str | None
    svg: str | None
    alt: str
    problem: str = ""  # why it is not drawn
    note: str = ""  # what a drawn figure leaves out


@dataclass
class Crop:
    label: str
    src: str
    psnr: str
    crop_psnr: str
    note: str = ""


@dataclass
class Visual:
    dataset: str
    image: str
    box: str
    crops: list[Crop]


@dataclass
class ScaleSection:
    scale: int
    datasets: list[str]
    rows: list[Row]
    paper: list[PaperRow]
    plots: list[Plot]
    visuals: list[Visual]
    visual_skipped: list[str]
    latency_hardware: list[str]


@dataclass
class ProtocolSection:
    protocol: str
    protocol_hash: str
    anchor: str
    title: str
    known: bool
    scales: list[ScaleSection]
    preview_note: str = ""


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------


def _row_key(row: Any) -> tuple:
    return (row.model, row.weights_sha256, bool(row.ensemble), row.precision)


def _scale_rows(
    group: pd.DataFrame, datasets: list[str], standard: dict[tuple, bool]
) -> tuple[list[Row], list[PaperRow], list[str]]:
    rows: list[Row] = []
    paper_rows: list[PaperRow] = []
    hardware: list[str] = []
    protocol = str(group["protocol"].iloc[0])
    scale = int(group["scale"].iloc[0])
    for key, sub in group.groupby(["model", "weights_sha256", "ensemble", "precision"], sort=True):
        by_dataset = {r.dataset: r for r in sub.itertuples()}
        first = sub.iloc[0]
        cells = []
        deltas = []
        kind = weights_kind(str(key[0]), str(key[1]))
        # Only the paper's own weights (or none) are compared with its numbers.
        card = _card(str(key[0])) if kind in PAPER_KINDS else None
        for dataset in datasets:
            r = by_dataset.get(dataset)
            if r is None:
                cells.append(Cell("", ""))
                continue
            problem = mean_problem(dataset, r.images, getattr(r, "verified", None))
            if problem:  # not the benchmark's number: refused, the reason shown instead
                cells.append(Cell("", "", str(int(r.images)), [problem]))
                continue
            flags = []
            if not standard.get((key, dataset), True):
                flags.append("unverified images (not the standard benchmark)")
            cells.append(Cell(fmt(r.psnr_db), fmt(r.ssim, 4), str(int(r.images)), flags))
            published = card.published_for(dataset, scale) if card is not None else None
            if published is None or published.protocol != protocol:
                continue
            d_psnr = float(r.psnr_db) - published.psnr_db
            d_ssim = float(r.ssim) - published.ssim
            deltas.append(f"{dataset} {fmt(d_psnr, 2, signed=True)}")
            note = "; ".join(flags)
            paper_rows.append(
                PaperRow(
                    str(first.label), dataset, fmt(published.psnr_db), fmt(published.ssim, 4),
                    fmt(r.psnr_db), fmt(r.ssim, 4), fmt(d_psnr, 2, signed=True),
                    fmt(d_ssim, 4, signed=True), published.source, note,
                )
            )  # fmt: skip
        hw = first.get("latency_hardware")
        hw = hw if isinstance(hw, str) and hw else ""
        if hw and hw not in hardware:
            hardware.append(hw)
        weights = str(key[1])
        rows.append(
            Row(
                label=str(first.label),
                model=str(key[0]),
                weights=_short(weights),
                weights_warning="random weights: numbers are meaningless"
                if weights == "random-init"
                else "",
                kind=KINDS[kind][0],
                budget=training_budget(str(key[0]), scale, weights),
                cells=cells,
                params=fmt_int(first.get("params")),
                macs=fmt_macs(first.get("macs")),
                network_macs=fmt_macs(first.get("network_macs")),
                latency=fmt_ms(first.get("latency_ms")),
                latency_hw=str(hardware.index(hw) + 1) if hw else "",
                cost_source=str(first.get("cost_source") or ""),
                paper=", ".join(deltas),
            )
        )
    return rows, paper_rows, hardware


# ------------------------------------------------------------------------------------------------
# Visual comparisons
# ------------------------------------------------------------------------------------------------


def _visuals(
    group: pd.DataFrame, entries: list[dict], crops_root: Path, img: Path, count: int, prefix: str
) -> tuple[list[Visual], list[str]]:
    """The stored crops (``srbench run`` wrote them, :mod:`srbench.crops`) of the results in
    ``group`` -- exactly the records the tables show, matched by record key -- copied into the
    report folder; up to ``count`` images, in :func:`visual_order`. Nothing is re-run."""
    import hashlib

    labels: dict[tuple, str] = {}
    for row in group.to_dict("records"):
        labels[record_key(row)] = str(row["label"])
    mine = [e for e in entries if record_key(e) in labels]
    without = sorted({labels[k] for k in labels} - {labels[record_key(e)] for e in mine})
    skipped = []
    if without and mine:
        skipped.append(
            f"no stored crops for {', '.join(without)} (run them again with `srbench run` to add "
            "their crops)"
        )

    by_image: dict[tuple[str, str], list[dict]] = {}
    for e in mine:
        by_image.setdefault((str(e["dataset"]), str(e["image"])), []).append(e)
    visuals = []
    for v_index, (dataset, image) in enumerate(visual_order(by_image)[:count]):
        shown = sorted(by_image[(dataset, image)], key=lambda e: labels[record_key(e)])
        first = shown[0]
        box = first["box"]
        hr_file = img / f"{prefix}_v{v_index}_hr.png"
        shutil.copyfile(crops_root / first["hr_file"], hr_file)
        crops = [Crop("HR (ground truth)", _src(hr_file), "", "")]
        for m_index, e in enumerate(shown):
            data = (crops_root / e["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != e.get("file_sha256"):
                skipped.append(f"{labels[record_key(e)]} on {image}: its crop file was changed")
                continue
            file = img / f"{prefix}_v{v_index}_m{m_index}.png"
            file.write_bytes(data)  # into this build's own new folder (see build_report)
            crops.append(
                Crop(labels[record_key(e)], _src(file), fmt(e["psnr_db"]), fmt(e["crop_psnr_db"]))
            )
        where = f"{box['size']}×{box['size']} HR pixels at (x={box['left']}, y={box['top']})"
        visuals.append(Visual(dataset, image, where, crops))
    return visuals, skipped


# ------------------------------------------------------------------------------------------------
# Ablation
# ------------------------------------------------------------------------------------------------


def _tag_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _record_params(record: dict) -> Any:
    for name in ("params", "trainable_params"):
        if _num(record.get(name)) is not None:
            return record[name]
    return None


def _ablation_tables(records: list[dict], costs: pd.DataFrame) -> list[dict[str, Any]]:
    """One table per (ablation, protocol): a row per (variant, model, weights), in store order,
    and a column per dataset and scale.

    Records written by ``srbench ablate`` carry ``ablation`` (the study), ``variant``,
    ``model_overrides`` and ``params``; the parameters shown are the records' own (a variant built
    with overrides has other counts than its registered name), else the registered model's,
    marked as such.
    """
    rows = [r for r in records if r.get("ablation") not in (None, "", {})]
    if not rows:
        return []
    frame = pd.DataFrame.from_records(rows)
    frame["study"] = [_tag_text(r.get("ablation")) for r in rows]
    frame["variant_label"] = [
        _tag_text(r.get("variant", r.get("ablation_variant"))) or "-" for r in rows
    ]
    frame["overrides"] = [_tag_text(r.get("model_overrides")) for r in rows]
    frame["record_params"] = [_record_params(r) for r in rows]
    frame["order"] = range(len(frame))
    tables = []
    keys = ["variant_label", "model", "weights_sha256"]
    for (study, protocol, phash), sub in frame.groupby(
        ["study", "protocol", "protocol_hash"], sort=True
    ):
        columns = [
            (d, int(s))
            for s in sorted(sub["scale"].unique())
            for d in _ordered_datasets(list(sub[sub["scale"] == s]["dataset"].unique()))
        ]
        parts = sorted(sub.groupby(keys, sort=False), key=lambda kv: kv[1]["order"].min())
        body = []
        for (variant, model, sha), part in parts:
            cells = []
            for d, s in columns:
                hit = part[(part["dataset"] == d) & (part["scale"] == s)]
                if hit.empty:
                    cells.append(Cell("", ""))
                    continue
                cells.append(
                    Cell(fmt(hit["psnr_db"].mean()), fmt(hit["ssim"].mean(), 4), str(len(hit)))
                )
            own = [p for p in part["record_params"] if _num(p) is not None]
            if own:
                params = ", ".join(sorted({fmt_int(p) for p in own}))
            else:
                known = costs[costs["model"] == model]
                params = ", ".join(
                    f"x{int(s)}: {fmt_int(p)} (registered {model})"
                    for s, p in zip(known["scale"], known["params"], strict=True)
                    if int(s) in set(part["scale"].astype(int))
                )
            body.append(
                {"variant": variant, "model": model, "overrides": part["overrides"].iloc[0],
                 "weights": _short(sha), "params": params, "cells": cells}
            )  # fmt: skip
        tables.append(
            {
                "study": str(study),
                "protocol": str(protocol),
                "protocol_hash": str(phash),
                "columns": [f"{d} ×{s}" for d, s in columns],
                "rows": body,
            }
        )
    return tables


# ------------------------------------------------------------------------------------------------
# Footer
# ------------------------------------------------------------------------------------------------


def _distinct(records: list[dict], *fields: str) -> list[str]:
    seen: list[str] = []
    for r in records:
        values = [r.get(f) for f in fields]
        if all(v in (None, "") for v in values):
            continue
        text = " · ".join(
            f"{f}={v}" for f, v in zip(fields, values, strict=True) if v not in (None, "")
        )
        if text not in seen:
            seen.append(text)
    return seen


def _code_provenance(records: list[dict]) -> str:
    """Which code made the shown results (``code_sha256``); older records' code is unknown."""
    hashes = [r.get("code_sha256") or UNKNOWN_CODE for r in records]
    unknown = hashes.count(UNKNOWN_CODE)
    known = sorted(set(hashes) - {UNKNOWN_CODE})
    parts = (
        [f"{len(hashes) - unknown} per-image results from code {', '.join(known)}"] if known else []
    )
    if unknown:
        parts.append(
            f"{unknown} made before srbench recorded its code hash (code unknown: shown, never "
            "reused by a run)"
        )
    return "; ".join(parts)


def _footer(records: list[dict], profiles: list[dict], protocols: list[tuple[str, str]]) -> dict:
    described = []
    for pid, phash in protocols:
        known = PROTOCOLS.get(pid)
        if known is not None and known.hash == phash:
            described.append(
                {"id": pid, "hash": phash, "title": known.title, "known": True,
                 "definition": sorted(known.definition.items())}
            )  # fmt: skip
        else:
            described.append(
                {"id": pid, "hash": phash, "title": "", "known": False, "definition": []}
            )
    times = sorted(str(r["time_utc"]) for r in records if r.get("time_utc"))
    profile_hw = []
    for p in profiles:
        env = p.get("env") or {}
        text = (
            f"{env.get('gpu_name') or env.get('cpu_model') or p.get('device')} · "
            f"device={p.get('device')} · threads={p.get('threads')} · torch={env.get('torch')}"
        )
        if text not in profile_hw:
            profile_hw.append(text)
    return {
        "protocols": described,
        "hardware": _distinct(records, "device", "device_type", "torch_threads"),
        "versions": _distinct(records, "srbench_version", "git_commit", "torch_version"),
        "code": _code_provenance(records),
        "profile_hardware": profile_hw,
        "runs": len({r.get("run_id") for r in records if r.get("run_id")}),
        "records": len(records),
        "first": times[0] if times else "",
        "last": times[-1] if times else "",
    }


# ------------------------------------------------------------------------------------------------
# Build
# ------------------------------------------------------------------------------------------------


def _src(file: Path) -> str:
    """The page's relative link to ``file`` in a build folder ``img/<build>/``."""
    return f"{IMG_DIR}/{file.parent.name}/{file.name}"


@contextmanager
def _image_build(out: Path) -> Iterator[Path]:
    """A new, empty folder ``out/img/<build>/`` for one build's figures and crops.

    The page links only into its own build folder, so writing ``index.html`` (atomically) swaps
    in the whole new report at once: ``kill -9`` at any moment leaves the old page with all its
    images, or the new one with all of its. Builds are serialised by a lock on the marker file;
    after the block, every other entry of ``img/`` (older builds, a killed build's leftovers)
    is removed -- only from an ``img/`` that holds the marker, i.e. that srbench made.
    """
    root = out / IMG_DIR
    root.mkdir(parents=True, exist_ok=True)
    ours = (root / _MARKER).is_file() or not any(root.iterdir())
    if ours and not (root / _MARKER).is_file():
        atomic_write(root / _MARKER, "files written by `srbench report`; replaced on rebuild\n")
    stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    build = root / f"build-{stamp}"
    with open(root / _MARKER if ours else os.devnull, "rb") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        build.mkdir()
        try:
            yield build
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        for entry in root.iterdir() if ours else []:
            if entry.name not in (_MARKER, build.name):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _learning_curves(training: list[dict], img: Path) -> list[dict[str, Any]]:
    """One figure per scale: Set5 PSNR against the iteration for every zoo run (from the store's
    ``training/`` records, written by ``srbench zoo ship``)."""
    from matplotlib.figure import Figure

    by_scale: dict[int, list[tuple[str, list[int], list[float]]]] = {}
    for t in training:
        for scale in t["scales"]:
            points = [c for c in t["curve"] if int(c.get("scale", scale)) == scale and "set5" in c]
            if points:
                by_scale.setdefault(int(scale), []).append(
                    (
                        t["model"],
                        [int(c["iteration"]) for c in points],
                        [float(c["set5"]["psnr_db"]) for c in points],
                    )
                )
    figures = []
    for scale in sorted(by_scale):
        fig = Figure(figsize=(7.0, 4.2), dpi=110)
        ax = fig.subplots()
        for model, xs, ys in sorted(by_scale[scale]):
            ax.plot(xs, ys, marker="o", markersize=3, label=model)
        ax.set_xlabel("iteration")
        ax.set_ylabel("Set5 PSNR (dB), standard protocol")
        ax.set_title(f"zoo learning curves, x{scale} (validation during training)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"learning_x{scale}.png"
        fig.savefig(img / name, metadata={"Software": None})
        figures.append(
            {"scale": scale, "src": _src(img / name), "alt": f"learning curves x{scale}"}
        )
    return figures


def _training_rows(training: list[dict]) -> list[dict[str, str]]:
    rows = []
    for t in sorted(training, key=lambda t: (t["scales"][0], t["model"])):
        info = t["summary"]
        val = info.get("validation") or {}
        rows.append(
            {
                "model": t["model"],
                "scales": "/".join(f"x{s}" for s in t["scales"]),
                "iterations": str(info.get("iterations")),
                "budget": training_budget(t["model"], t["scales"][0], str(t.get("shipped_sha256")))
                or "not shipped",
                "minutes": f"{float(info.get('train_seconds') or 0) / 60:.1f}",
                "machine": f"{info.get('cpu_model', '?')}, {info.get('torch_threads', '?')} "
                f"threads, {info.get('precision', '?')}",
                "set5": " / ".join(f"{v['psnr_db']:.2f}" for v in val.values()) or "-",
                "run": t["zoo_run"],
            }
        )
    return rows


def _paper_points(
    table: pd.DataFrame, datasets: Sequence[str], scale: int, protocol: str, cost: str
) -> list[PaperPoint]:
    """The cards' published numbers under ``protocol`` for the architectures in ``table``,
    placed at the architecture's stored cost (never a cost typed into a card)."""
    points = []
    for arch in sorted({architecture_name(str(m)) for m in table["model"]}):
        card = _card(arch)
        rows = table[table["model"].map(lambda m, a=arch: architecture_name(str(m)) == a)]
        values = [float(v) for v in rows[cost] if pd.notna(v)]
        if card is None or not values:
            continue
        for dataset in datasets:
            published = card.published_for(dataset, scale)
            if published is not None and published.protocol == protocol:
                point = PaperPoint(
                    f"{arch} (paper)", dataset, published.psnr_db, values[0], published.source
                )
                points.append(point)
    return points


def _scale_plot(
    plotted: pd.DataFrame,
    datasets: Sequence[str],
    cost: str,
    img: Path,
    prefix: str,
    protocol: str,
    protocol_hash: str,
) -> Plot:
    """One figure for a protocol, scale and cost: a panel per dataset (:func:`scale_figure`)."""
    scale = int(plotted["scale"].iloc[0])
    title = f"×{scale}: PSNR vs {cost}"
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
            title=f"{protocol}@{protocol_hash} ×{scale}: PSNR vs {COSTS[cost]}",
            paper=_paper_points(plotted, datasets, scale, protocol, cost),
        )  # fmt: skip
    except ValueError as exc:
        return Plot(title, None, None, "", str(exc))
    return Plot(
        title,
        _src(paths["png"]),
        _src(paths["svg"]),
        f"PSNR against {cost} at x{scale}, a panel per dataset",
        note="; ".join([*notes, *more]),
    )


def _efficiency_rows(profiles: Sequence[dict], models: set[str]) -> list[dict[str, Any]]:
    """Per scale, a row per architecture measured in the store: every cost from the profile
    records (the latest count; the latest fp32 timing made as `srbench run` runs, per device
    type), never re-counted."""
    counted: dict[tuple[str, int, str], dict] = {}
    timed: dict[tuple[str, int, str], dict] = {}
    for r in profiles:
        key = (str(r.get("model")), int(r.get("scale", 0)), str(r.get("size")))
        counted[key] = r
        if timed_as_run(r):
            timed[(*key[:2], f"{key[2]}:{r.get('device_type')}")] = r
    archs = sorted({architecture_name(m) for m in models})
    scales = sorted({k[1] for k in counted if k[0] in archs})
    out = []
    for scale in scales:
        rows = []
        for arch in archs:
            hd, small = counted.get((arch, scale, COST_SIZE)), counted.get((arch, scale, "256"))
            if hd is None:
                continue
            cpu, gpu = (
                timed.get((arch, scale, f"{COST_SIZE}:cpu")),
                timed.get((arch, scale, f"{COST_SIZE}:cuda")),
            )
            literature = hd.get("literature_macs")
            cpu_lat = (cpu or {}).get("latency") or {}
            gpu_mem = ((gpu or {}).get("peak_memory") or {}).get("peak_allocated_bytes")
            cpu_mem = ((cpu or {}).get("peak_memory") or {}).get("peak_rss_bytes")
            rows.append(
                {
                    "model": arch,
                    "params": fmt_int(hd.get("trainable_params")),
                    "macs": fmt_macs(hd.get("total_macs")),
                    "literature_macs": fmt_macs(literature)
                    if literature not in (None, hd.get("total_macs"))
                    else "",
                    "macs_256": fmt_macs((small or {}).get("total_macs")),
                    "cpu_ms": (
                        f"{fmt_ms(cpu_lat.get('median_ms'))} (IQR {fmt_ms(cpu_lat.get('iqr_ms'))},"
                        f" {cpu_lat.get('repeats')} runs, {cpu.get('threads')} threads)"
                        if cpu
                        else "not measured"
                    ),
                    "cpu_hw": profile_hardware(cpu)["device"] if cpu else "",
                    "cpu_memory": f"{float(cpu_mem) / 2**20:,.0f} MiB"
                    if cpu_mem
                    else "not measured",
                    "gpu_ms": fmt_ms(gpu["latency_median_ms"]) if gpu else "not measured",
                    "gpu_memory": f"{float(gpu_mem) / 2**20:.0f} MiB"
                    if gpu_mem
                    else "not measured",
                }
            )
        if rows:
            out.append({"scale": scale, "rows": rows})
    return out


def _verdict_figures(rows: list, img: Path) -> list[dict[str, str]]:
    """The forest plot of every PSNR difference and a strip plot of the per-image differences
    of each pair (both from the per-image records, like the table)."""
    from srbench.verdict import VERDICT_PAIRS

    if not any(r.metric == "psnr_db" for r in rows):
        return []
    titles = {(a, b): t for a, b, t in VERDICT_PAIRS}
    figures = [
        {
            "src": _src(forest_plot(rows, img / "verdict_forest", titles=titles)),
            "alt": "forest plot of the verdict's PSNR differences",
            "caption": "Mean per-image PSNR difference A − B with its 95% paired t interval over the images, "
            "per dataset and scale.",
        }
    ]
    for a, b, title in VERDICT_PAIRS:
        if any((r.a, r.b) == (a, b) and r.metric == "psnr_db" for r in rows):
            path = strip_plot(rows, a, b, img / f"verdict_strip_{a}_vs_{b}", title=title)
            figures.append(
                {
                    "src": _src(path),
                    "alt": f"per-image PSNR differences {a} - {b}",
                    "caption": f"{a} − {b}: every image's PSNR difference, per dataset and scale.",
                }
            )
    return figures


def _verdict_rows(
    records: list[dict], img: Path
) -> tuple[list[dict[str, str]], list[str], list[dict[str, str]]]:
    from srbench.verdict import VERDICT_PAIRS, sentence, verdict

    rows = verdict(records)
    table = []
    for r in rows:
        digits = 3 if r.metric == "psnr_db" else 5
        table.append(
            {
                "pair": f"{r.a} - {r.b}",
                "cell": f"{r.dataset} x{r.scale}",
                "metric": r.metric,
                "images": str(r.images),
                "diff": f"{r.diff.mean:+.{digits}f}",
                "ci": f"[{r.diff.low:+.{digits}f}, {r.diff.high:+.{digits}f}]",
                "wtl": f"{r.wins}/{r.ties}/{r.losses}",
                "sign": "better" if r.diff.low > 0 else "worse" if r.diff.high < 0 else "unclear",
            }
        )
    sentences = [sentence(rows, a, b) for a, b, _ in VERDICT_PAIRS]
    return table, sentences, _verdict_figures(rows, img)


def build_report(
    results_dir: str | Path,
    output_dir: str | Path = Path("reports"),
    *,
    visual_images: int | None = None,
    visual_scales: Sequence[int] | None = None,
    profiles: Sequence[dict] | None = None,
    cost_fn: CostFn | None = None,
    costs: Sequence[str] = ("params", "macs", "latency_ms"),
    title: str = "srbench report",
    progress: Callable[[str], None] | None = None,
    extra_records: Sequence[dict] = (),
) -> Path:
    """Render ``output_dir/index.html`` (+ ``output_dir/img/``) from the store in ``results_dir``.

    Everything comes from the store: the records, the costs (``profile.jsonl``, written by
    ``srbench profile`` and ``srbench run``) and the visual-comparison crops (``crops/``, written
    by ``srbench run``); no model is built or run here. ``visual_images``: images per protocol
    and scale (``None``: :data:`VISUAL_IMAGES`, one per benchmark; 0: no visual comparisons); ``visual_scales``: the scales to show them for
    (default: every scale). ``profiles``: instead of ``results_dir/profile.jsonl``. ``cost_fn``:
    a fallback for costs no profile record has (tests; ``None``: such costs are missing and the
    page says so). ``costs``: the Pareto plots' x-axes. ``extra_records``: shown beside the
    store's (the reference store's, renamed ``NAME@ref``). Returns the path of ``index.html``.
    """
    out = Path(output_dir)
    index = writable_target(out / "index.html")
    with _image_build(out) as img:
        html = _render_page(
            results_dir, img, visual_images=visual_images, visual_scales=visual_scales,
            profiles=profiles, cost_fn=cost_fn, costs=costs, title=title, progress=progress,
            extra_records=extra_records,
        )  # fmt: skip
        atomic_write(index, html)  # the swap: this page links only into the new img/ build
    return index


def _render_page(
    results_dir: str | Path,
    img: Path,
    *,
    visual_images: int | None,
    visual_scales: Sequence[int] | None,
    profiles: Sequence[dict] | None,
    cost_fn: CostFn | None,
    costs: Sequence[str],
    title: str,
    progress: Callable[[str], None] | None,
    extra_records: Sequence[dict] = (),
) -> str:
    """The page's HTML; its figures and crops are written into ``img``."""
    import jinja2

    say = progress or (lambda _msg: None)
    store = ResultStore(Path(results_dir))
    records = store.shown_records() + list(extra_records)
    profiles = list(load_profiles(results_dir) if profiles is None else profiles)
    main_records = [r for r in records if r.get("ablation") in (None, "", {})]
    frame = pd.DataFrame.from_records(main_records) if main_records else pd.DataFrame()
    for column in ("ensemble", "precision"):
        if not frame.empty and column not in frame.columns:
            frame[column] = False if column == "ensemble" else "fp32"
    table = summary_table(frame, profiles, cost_fn=cost_fn) if not frame.empty else pd.DataFrame()

    standard: dict[tuple, bool] = {}
    if not frame.empty and "standard_benchmark" in frame.columns:
        for r in frame.itertuples():
            key = ((r.model, r.weights_sha256, bool(r.ensemble), r.precision), r.dataset)
            value = r.standard_benchmark  # missing (NaN) in old records: not flagged
            ok = not (isinstance(value, (bool, np.bool_)) and not value)
            standard[key] = standard.get(key, True) and bool(ok)

    crop_store = CropStore(results_dir)
    if visual_images is None:
        visual_images = VISUAL_IMAGES
    crop_entries = crop_store.entries() if visual_images > 0 else []

    sections: list[ProtocolSection] = []
    protocols: list[tuple[str, str]] = []
    if not table.empty:
        for (pid, phash), ptable in table.groupby(["protocol", "protocol_hash"], sort=True):
            protocols.append((str(pid), str(phash)))
            known = PROTOCOLS.get(str(pid))
            is_known = known is not None and known.hash == phash
            scales = sorted(int(s) for s in ptable["scale"].unique())
            shown_visual = set(visual_scales) if visual_scales is not None else set(scales)
            scale_sections = []
            for scale in scales:
                group = ptable[ptable["scale"] == scale]
                datasets = _ordered_datasets(list(group["dataset"].unique()))
                rows, paper, hardware = _scale_rows(group, datasets, standard)
                prefix = _safe_name(f"{pid}-{phash}_x{scale}")
                plots = []
                random = group["weights_sha256"] == "random-init"
                plotted = group[~random]
                if random.any():
                    names = ", ".join(sorted(set(group[random]["label"])))
                    plots.append(
                        Plot(
                            "Pareto plots",
                            None,
                            None,
                            "",
                            f"random-weight results left out: {names}",
                        )
                    )
                for cost in costs if not plotted.empty else ():  # only random weights: no plot
                    if cost in ("latency_ms", "memory_bytes") and not plotted[cost].notna().any():
                        continue
                    plots.append(_scale_plot(plotted, datasets, cost, img, prefix, pid, phash))
                visuals: list[Visual] = []
                visual_skipped: list[str] = []
                if visual_images > 0 and scale in shown_visual:
                    say(f"visual comparisons for {pid}@{phash} x{scale}")
                    raw = frame[
                        (frame["protocol"] == pid)
                        & (frame["protocol_hash"] == phash)
                        & (frame["scale"] == scale)
                    ].merge(
                        group[
                            ["model", "weights_sha256", "ensemble", "precision", "label"]
                        ].drop_duplicates(
                            subset=["model", "weights_sha256", "ensemble", "precision"]
                        ),
                        on=["model", "weights_sha256", "ensemble", "precision"],
                        how="left",
                    )
                    visuals, visual_skipped = _visuals(
                        raw, crop_entries, crop_store.root, img, visual_images, prefix
                    )
                scale_sections.append(
                    ScaleSection(
                        scale, datasets, rows, paper, plots, visuals, visual_skipped, hardware
                    )
                )
            sections.append(
                ProtocolSection(
                    str(pid), str(phash), _safe_name(f"p-{pid}-{phash}"),
                    known.title if known and is_known else "", is_known, scale_sections,
                    known.preview_note if known and is_known else "",
                )
            )  # fmt: skip

    ablation_pairs = {
        (str(r["model"]), int(r["scale"]))
        for r in records
        if r.get("ablation") not in (None, "", {}) and _record_params(r) is None
    }
    ablation_costs = efficiency_table(ablation_pairs, profiles, cost_fn=cost_fn)
    ablation = _ablation_tables(records, ablation_costs)
    for t in ablation:
        if (t["protocol"], t["protocol_hash"]) not in protocols:
            protocols.append((t["protocol"], t["protocol_hash"]))

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("srbench", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from srbench.training.zoo import read_training_records

    training = read_training_records(results_dir)
    verdict_rows, verdict_sentences, verdict_figures = _verdict_rows(main_records, img)
    return env.get_template("report.html.j2").render(
        title=title,
        training={
            "rows": _training_rows(training),
            "figures": _learning_curves(training, img),
        },
        efficiency=_efficiency_rows(profiles, {str(r["model"]) for r in main_records}),
        verdict={
            "rows": verdict_rows,
            "sentences": verdict_sentences,
            "figures": verdict_figures,
        },
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        results_dir=str(results_dir),
        sections=sections,
        ablation=ablation,
        footer=_footer(records, profiles, protocols),
        cost_size=COST_SIZE,
        empty=not records,
    )
