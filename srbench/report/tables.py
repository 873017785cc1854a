"""The report's tables: per protocol and scale every model's means with its costs and the
papers' numbers, the ablations, the trained zoo and the efficiency table -- every metric column
from :data:`srbench.schema.METRICS`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from srbench.kinds import KINDS, PAPER_KINDS, training_budget, weights_kind
from srbench.pareto import (
    COST_SIZE,
    architecture_name,
    mean_problem,
    profile_hardware,
)
from srbench.report.page import Cell, PaperRow, Row
from srbench.report.text import (
    _num,
    card_or_none,
    fmt_int,
    fmt_macs,
    fmt_metric,
    fmt_ms,
    ordered_datasets,
    short_sha,
)
from srbench.schema import headline, is_ablation, metric_specs
from srbench.shown_costs import Shown, shown_costs


def _means(rows: pd.DataFrame) -> list[str]:
    """Every metric's mean over ``rows`` (per-image records); "–" where one is not measured on
    all of them."""
    out = []
    for spec in metric_specs():
        values = rows[spec.name] if spec.name in rows.columns else pd.Series(dtype=float)
        complete = len(values) == len(rows) and values.notna().all()
        out.append(fmt_metric(spec, values.mean() if complete else None))
    return out


def _paper_row(label: str, dataset: str, r: Any, published: Any, note: str) -> PaperRow:
    """The paper's number beside the measured one, per metric the card publishes."""
    metrics = []
    for spec in metric_specs():
        paper = getattr(published, spec.name, None)  # a card publishes the metrics it has
        measured = getattr(r, spec.name)
        delta = None if paper is None or _num(measured) is None else float(measured) - paper
        metrics.append(
            (fmt_metric(spec, paper), fmt_metric(spec, measured), fmt_metric(spec, delta, True))
        )
    return PaperRow(label, dataset, metrics, published.source, note)


def scale_rows(
    group: pd.DataFrame, datasets: list[str], standard: dict[tuple, bool]
) -> tuple[list[Row], list[PaperRow], list[str]]:
    """The rows of one protocol and scale's table, its paper-vs-measured rows and the latency
    hardware its footnotes number."""
    rows: list[Row] = []
    paper_rows: list[PaperRow] = []
    hardware: list[str] = []
    protocol = str(group["protocol"].iloc[0])
    scale = int(group["scale"].iloc[0])
    top = headline()
    for key, sub in group.groupby(["model", "weights_sha256", "ensemble", "precision"], sort=True):
        by_dataset = {r.dataset: r for r in sub.itertuples()}
        first = sub.iloc[0]
        cells = []
        deltas = []
        kind = weights_kind(str(key[0]), str(key[1]))
        # Only the paper's own weights (or none) are compared with its numbers.
        card = card_or_none(str(key[0])) if kind in PAPER_KINDS else None
        for dataset in datasets:
            r = by_dataset.get(dataset)
            if r is None:
                cells.append(Cell())
                continue
            problem = mean_problem(dataset, r.images, getattr(r, "verified", None))
            if problem:  # not the benchmark's number: refused, the reason shown instead
                cells.append(Cell([], str(int(r.images)), [problem]))
                continue
            flags = []
            if not standard.get((key, dataset), True):
                flags.append("unverified images (not the standard benchmark)")
            values = [fmt_metric(spec, getattr(r, spec.name)) for spec in metric_specs()]
            cells.append(Cell(values, str(int(r.images)), flags))
            published = card.published_for(dataset, scale) if card is not None else None
            if published is None or published.protocol != protocol:
                continue
            paper_rows.append(_paper_row(str(first.label), dataset, r, published, "; ".join(flags)))
            if (
                _num(getattr(r, top.name)) is not None
                and getattr(published, top.name, None) is not None
            ):
                gap = float(getattr(r, top.name)) - getattr(published, top.name)
                deltas.append(f"{dataset} {fmt_metric(top, gap, signed=True)}")
        hw = first.get("latency_hardware")
        hw = hw if isinstance(hw, str) and hw else ""
        if hw and hw not in hardware:
            hardware.append(hw)
        weights = str(key[1])
        rows.append(
            Row(
                label=str(first.label),
                model=str(key[0]),
                weights=short_sha(weights),
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


def _tag_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def record_params(record: dict) -> Any:
    for name in ("params", "trainable_params"):
        if _num(record.get(name)) is not None:
            return record[name]
    return None


def ablation_tables(records: list[dict], costs: pd.DataFrame) -> list[dict[str, Any]]:
    """One table per (ablation, protocol): a row per (variant, model, weights), in store order,
    and a column per dataset and scale.

    Records written by ``srbench ablate`` carry ``ablation`` (the study), ``variant``,
    ``model_overrides`` and ``params``; the parameters shown are the records' own (a variant built
    with overrides has other counts than its registered name), else the registered model's,
    marked as such.
    """
    rows = [r for r in records if is_ablation(r)]
    if not rows:
        return []
    frame = pd.DataFrame.from_records(rows)
    frame["study"] = [_tag_text(r.get("ablation")) for r in rows]
    frame["variant_label"] = [
        _tag_text(r.get("variant", r.get("ablation_variant"))) or "-" for r in rows
    ]
    frame["overrides"] = [_tag_text(r.get("model_overrides")) for r in rows]
    frame["record_params"] = [record_params(r) for r in rows]
    frame["order"] = range(len(frame))
    tables = []
    keys = ["variant_label", "model", "weights_sha256"]
    for (study, protocol, phash), sub in frame.groupby(
        ["study", "protocol", "protocol_hash"], sort=True
    ):
        columns = [
            (d, int(s))
            for s in sorted(sub["scale"].unique())
            for d in ordered_datasets(list(sub[sub["scale"] == s]["dataset"].unique()))
        ]
        parts = sorted(sub.groupby(keys, sort=False), key=lambda kv: kv[1]["order"].min())
        body = []
        for (variant, model, sha), part in parts:
            cells = []
            for d, s in columns:
                hit = part[(part["dataset"] == d) & (part["scale"] == s)]
                if hit.empty:
                    cells.append(Cell())
                    continue
                cells.append(Cell(_means(hit), str(len(hit))))
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
                 "weights": short_sha(sha), "params": params, "cells": cells}
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


def training_rows(training: list[dict]) -> list[dict[str, str]]:
    spec = headline()  # the validation during training measures it on Set5
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
                "set5": " / ".join(
                    f"{v[spec.name]:.{spec.decimals}f}" for v in val.values() if spec.name in v
                )
                or "-",
                "run": t["zoo_run"],
            }
        )
    return rows


def efficiency_rows(profiles: Sequence[dict], models: set[str]) -> list[dict[str, Any]]:
    """Per scale, a row per architecture measured in the store: every cost from the profile
    records (the record :mod:`srbench.shown_costs` shows: of the code as it is now; the fp32
    timing made as `srbench run` runs, per device type), never re-counted."""
    archs = sorted({architecture_name(m) for m in models})
    scales = sorted({int(r.get("scale", 0)) for r in profiles if r.get("model") in archs})
    out = []
    for scale in scales:
        rows = []
        for arch in archs:
            hd, cpu = shown_costs(profiles, arch, scale, COST_SIZE, device_type="cpu")
            if hd.record is None and not hd.note:  # never profiled: no row
                continue
            gpu = shown_costs(profiles, arch, scale, COST_SIZE, device_type="cuda")[1]
            small = shown_costs(profiles, arch, scale, "256")[0].record or {}
            rows.append(_efficiency_row(arch, hd, cpu, gpu, small))
        if rows:
            out.append({"scale": scale, "rows": rows})
    return out


def _efficiency_row(arch: str, hd: Shown, cpu: Shown, gpu: Shown, small: dict) -> dict[str, Any]:
    counts, cpu_rec, gpu_rec = hd.record or {}, cpu.record, gpu.record
    literature = counts.get("literature_macs")
    cpu_lat = (cpu_rec or {}).get("latency") or {}
    gpu_mem = ((gpu_rec or {}).get("peak_memory") or {}).get("peak_allocated_bytes")
    cpu_mem = ((cpu_rec or {}).get("peak_memory") or {}).get("peak_rss_bytes")
    return {
        "model": arch,
        "params": fmt_int(counts.get("trainable_params")),
        "macs": fmt_macs(counts.get("total_macs")),
        "literature_macs": fmt_macs(literature)
        if literature not in (None, counts.get("total_macs"))
        else "",
        "macs_256": fmt_macs(small.get("total_macs")),
        "cpu_ms": (
            f"{fmt_ms(cpu_lat.get('median_ms'))} (IQR {fmt_ms(cpu_lat.get('iqr_ms'))},"
            f" {cpu_lat.get('repeats')} runs, {cpu_rec.get('threads')} threads)"
            if cpu_rec
            else "not measured"
        )
        + (f"; {cpu.reason}" if cpu.reason else ""),
        "cpu_hw": profile_hardware(cpu_rec)["device"] if cpu_rec else "",
        "cpu_memory": f"{float(cpu_mem) / 2**20:,.0f} MiB" if cpu_mem else "not measured",
        "gpu_ms": (fmt_ms(gpu_rec["latency_median_ms"]) if gpu_rec else "not measured")
        + (f"; {gpu.reason}" if gpu.reason else ""),
        "gpu_memory": f"{float(gpu_mem) / 2**20:.0f} MiB" if gpu_mem else "not measured",
        "counts_note": hd.note,
    }
