"""Building the report: the store's records into the page model, rendered through Jinja2
(``autoescape=True``) into ``index.html`` beside a new ``img/<build>/`` folder."""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from srbench.crops import CropStore
from srbench.files import atomic_write, writable_target
from srbench.pareto import COST_SIZE, CostFn, efficiency_table, load_profiles, summary_table
from srbench.protocols import PROTOCOLS
from srbench.report.page import Plot, ProtocolSection, ScaleSection, Visual
from srbench.report.plots import budget_section, learning_curves, scale_plot, verdict_rows
from srbench.report.tables import (
    ablation_tables,
    efficiency_rows,
    record_params,
    scale_rows,
    training_rows,
)
from srbench.report.text import ordered_datasets, safe_name
from srbench.report.visuals import IMG_DIR, VISUAL_IMAGES, visuals
from srbench.results import ResultStore
from srbench.schema import UNKNOWN_CODE, is_ablation, metric_specs

_MARKER = ".srbench-report"  # only an img/ folder holding this file is ever cleared


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


def _metric_columns() -> list[dict[str, Any]]:
    """What the template says of each metric: its header, direction and gate tolerance."""
    return [
        {
            "name": m.name,
            "label": m.label,
            "axis": m.axis_label(),
            "direction": m.direction,
            "tie": f"{m.gate_tolerance:g}{' ' + m.unit if m.unit else ''} {m.label}",
        }
        for m in metric_specs()
    ]


def _standard_flags(frame: pd.DataFrame) -> dict[tuple, bool]:
    """Per (point, dataset): whether every image is the verified benchmark copy."""
    standard: dict[tuple, bool] = {}
    if not frame.empty and "standard_benchmark" in frame.columns:
        for r in frame.itertuples():
            key = ((r.model, r.weights_sha256, bool(r.ensemble), r.precision), r.dataset)
            value = r.standard_benchmark  # missing (NaN) in old records: not flagged
            ok = not (isinstance(value, (bool, np.bool_)) and not value)
            standard[key] = standard.get(key, True) and bool(ok)
    return standard


def _plots(group: pd.DataFrame, datasets: list[str], costs: Sequence[str], img: Path,
           prefix: str, pid: str, phash: str) -> list[Plot]:  # fmt: skip
    plots = []
    random = group["weights_sha256"] == "random-init"
    plotted = group[~random]
    if random.any():
        names = ", ".join(sorted(set(group[random]["label"])))
        plots.append(
            Plot("Pareto plots", None, None, "", f"random-weight results left out: {names}")
        )
    for cost in costs if not plotted.empty else ():  # only random weights: no plot
        if cost in ("latency_ms", "memory_bytes") and not plotted[cost].notna().any():
            continue
        plots.append(scale_plot(plotted, datasets, cost, img, prefix, pid, phash))
    return plots


def _scale_visuals(frame: pd.DataFrame, group: pd.DataFrame, pid: str, phash: str, scale: int,
                   crops: tuple[list[dict], Path], img: Path, count: int,
                   prefix: str) -> tuple[list[Visual], list[str]]:  # fmt: skip
    point = ["model", "weights_sha256", "ensemble", "precision"]
    raw = frame[
        (frame["protocol"] == pid) & (frame["protocol_hash"] == phash) & (frame["scale"] == scale)
    ].merge(group[[*point, "label"]].drop_duplicates(subset=point), on=point, how="left")
    return visuals(raw, crops[0], crops[1], img, count, prefix)


def _sections(
    frame: pd.DataFrame, table: pd.DataFrame, img: Path, *, costs: Sequence[str],
    crops: tuple[list[dict], Path], visual_images: int, visual_scales: Sequence[int] | None,
    say: Callable[[str], None],
) -> tuple[list[ProtocolSection], list[tuple[str, str]]]:  # fmt: skip
    """A section per protocol (id and hash), a subsection per scale."""
    sections: list[ProtocolSection] = []
    protocols: list[tuple[str, str]] = []
    if table.empty:
        return sections, protocols
    standard = _standard_flags(frame)
    for (pid, phash), ptable in table.groupby(["protocol", "protocol_hash"], sort=True):
        pid, phash = str(pid), str(phash)
        protocols.append((pid, phash))
        known = PROTOCOLS.get(pid)
        if known is not None and known.hash != phash:
            known = None  # another definition under a known id: described as unknown
        scales = sorted(int(s) for s in ptable["scale"].unique())
        shown_visual = set(visual_scales) if visual_scales is not None else set(scales)
        scale_sections = []
        for scale in scales:
            group = ptable[ptable["scale"] == scale]
            datasets = ordered_datasets(list(group["dataset"].unique()))
            rows, paper, hardware = scale_rows(group, datasets, standard)
            prefix = safe_name(f"{pid}-{phash}_x{scale}")
            plots = _plots(group, datasets, costs, img, prefix, pid, phash)
            shown: tuple[list[Visual], list[str]] = ([], [])
            if visual_images > 0 and scale in shown_visual:
                say(f"visual comparisons for {pid}@{phash} x{scale}")
                shown = _scale_visuals(
                    frame, group, pid, phash, scale, crops, img, visual_images, prefix
                )
            scale_sections.append(
                ScaleSection(scale, datasets, rows, paper, plots, *shown, hardware)
            )
        sections.append(
            ProtocolSection(
                pid, phash, safe_name(f"p-{pid}-{phash}"), known.title if known else "",
                known is not None, scale_sections, known.preview_note if known else "",
            )
        )  # fmt: skip
    return sections, protocols


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

    from srbench.training.ladder import read_ladder_records
    from srbench.training.zoo import read_training_records

    store = ResultStore(Path(results_dir))
    records = store.shown_records() + list(extra_records)
    profiles = list(load_profiles(results_dir) if profiles is None else profiles)
    main_records = [r for r in records if not is_ablation(r)]
    frame = pd.DataFrame.from_records(main_records) if main_records else pd.DataFrame()
    for column in ("ensemble", "precision"):
        if not frame.empty and column not in frame.columns:
            frame[column] = False if column == "ensemble" else "fp32"
    table = summary_table(frame, profiles, cost_fn=cost_fn) if not frame.empty else pd.DataFrame()

    crop_store = CropStore(results_dir)
    if visual_images is None:
        visual_images = VISUAL_IMAGES
    crop_entries = crop_store.entries() if visual_images > 0 else []
    sections, protocols = _sections(
        frame, table, img, costs=costs, crops=(crop_entries, crop_store.root),
        visual_images=visual_images, visual_scales=visual_scales,
        say=progress or (lambda _msg: None),
    )  # fmt: skip

    ablation_pairs = {
        (str(r["model"]), int(r["scale"]))
        for r in records
        if is_ablation(r) and record_params(r) is None
    }
    ablation = ablation_tables(records, efficiency_table(ablation_pairs, profiles, cost_fn=cost_fn))
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
    training = read_training_records(results_dir)
    verdict_table, verdict_sentences, verdict_figures = verdict_rows(main_records, img)
    return env.get_template("report.html.j2").render(
        title=title,
        metrics=_metric_columns(),
        training={"rows": training_rows(training), "figures": learning_curves(training, img)},
        efficiency=efficiency_rows(profiles, {str(r["model"]) for r in main_records}),
        verdict={"rows": verdict_table, "sentences": verdict_sentences, "figures": verdict_figures},
        budget=budget_section(main_records, read_ladder_records(results_dir), img),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        results_dir=str(results_dir),
        sections=sections,
        ablation=ablation,
        footer=_footer(records, profiles, protocols),
        cost_size=COST_SIZE,
        empty=not records,
    )
