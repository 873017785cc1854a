"""Pareto analysis of the result store: quality (any metric of :data:`srbench.schema.METRICS`,
better in its own direction) against a cost.

Everything here is computed from the store (``records.jsonl``) and the profile records
(``profile.jsonl``, written by ``srbench profile``) -- never typed by hand. Points are compared
only within one dataset, one scale and one protocol (id *and* hash): numbers measured under
different protocols are never put on one plot.

Costs (lower is better):

* ``params``: trainable parameters of the model at that scale;
* ``macs``: multiply-accumulates of one forward pass producing a 1280x720 output (``720p``, the
  literature's convention: LR = round(1280/s) x round(720/s)); all MACs the forward runs, the
  bicubic pre-upsampling of SRCNN/VDSR/IDN included (``network_macs`` leaves it out);
* ``latency_ms``: median latency at 720p, fp32, batch 1, from ``srbench profile`` records only;
* ``memory_bytes``: peak CUDA memory of that forward pass, from ``srbench profile`` records only.

Parameters and MACs come from the profile records when they exist and are otherwise counted with
:mod:`srbench.profiling` (deterministic, no weights needed). Latency and memory are measurements:
when no profile record has them they are missing, never estimated, and points measured on
different hardware are not put on one latency plot.

Library code: nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from srbench.errors import SRBenchError
from srbench.kinds import KINDS, weights_kind
from srbench.plotting import place_labels, save_figure, zero_cost_axis
from srbench.results import PROFILE_FILE, read_jsonl, summarise
from srbench.schema import MetricSpec, metric, metric_names
from srbench.shown_costs import shown_costs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COST_SIZE = "720p"  # the 1280x720-output convention of the efficient-SR literature

COSTS = {
    "params": "trainable parameters",
    "macs": "MACs per 1280x720 output (all, incl. bicubic pre-upsampling)",
    "network_macs": "network MACs per 1280x720 output (excl. bicubic pre-upsampling)",
    "latency_ms": "latency (ms, 1280x720 output, fp32, batch 1)",
    "memory_bytes": "peak CUDA memory (bytes, 1280x720 output)",
}
LOG_COSTS = ("params", "macs", "network_macs")
COST_COLUMNS = (*COSTS, "latency_hardware", "latency_device", "latency_threads", "cost_source")
GROUP_COLUMNS = ("protocol", "protocol_hash", "dataset", "scale")
# One point per (model, weights, ensemble, precision) inside a group.
POINT_COLUMNS = ("model", "weights_sha256", "ensemble", "precision")


# ------------------------------------------------------------------------------------------------
# The front
# ------------------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def expected_images(dataset: str) -> int | None:
    """Images a complete run of a standard benchmark scores; None for any other folder."""
    from srbench.data import BENCHMARK_KEYS, get_benchmark

    return get_benchmark(dataset).count if dataset in BENCHMARK_KEYS else None


def mean_problem(dataset: str, images: Any, verified: Any = None) -> str | None:
    """Why a summary row's mean is not its benchmark's number (None when it is): a mean of a
    standard benchmark is over one verified copy of its images, exactly its image count.
    ``verified``: how many of the ``images`` verified (None: not known, as in a baseline)."""
    expected = expected_images(dataset)
    if expected is None:
        return None
    if int(images) != expected:
        return f"{int(images)}/{expected} images"
    if verified is not None and _finite(verified) and int(verified) != expected:
        return f"{expected - int(verified)} of {expected} images not the verified benchmark copy"
    return None


def drop_partial(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The summary rows whose mean is their benchmark's number, and a note naming the others.

    A mean over part of a benchmark (a run still in progress) or over an unverified copy is not
    the benchmark's number (:func:`mean_problem`), so figures never place it; tables show why.
    """
    if table.empty or "images" not in table.columns:
        return table, []
    verified = table["verified"] if "verified" in table.columns else [None] * len(table)
    problems = [
        mean_problem(d, n, v)
        for d, n, v in zip(table["dataset"], table["images"], verified, strict=True)
    ]
    bad = pd.Series([p is not None for p in problems], index=table.index)
    if not bad.any():
        return table, []
    named = ", ".join(
        f"{row.label} {row.dataset} ({problem})"
        for row, problem in zip(table.itertuples(), problems, strict=True)
        if problem
    )
    return table[~bad], [f"not the benchmark's number, not plotted: {named}"]


def pareto_front(
    points: Sequence[tuple[float, float]], *, higher_is_better: bool = True
) -> list[bool]:
    """Which ``(cost, quality)`` points are non-dominated (lower cost and better quality win:
    higher, or lower where ``higher_is_better`` is False).

    A point is dominated when another has cost <= and quality at least as good with at least one
    strict. Equal points (duplicates) do not dominate each other: all of them are on the front; a
    point with the same cost and worse quality is dominated. Points with a missing or non-finite
    coordinate are never on the front and dominate nothing. Order is preserved.
    """
    sign = 1.0 if higher_is_better else -1.0
    pts = [(float(c), sign * float(q)) if _finite(c) and _finite(q) else None for c, q in points]
    on_front: list[bool] = []
    for i, p in enumerate(pts):
        if p is None:
            on_front.append(False)
            continue
        c, q = p
        dominated = any(
            o is not None and o[0] <= c and o[1] >= q and (o[0] < c or o[1] > q)
            for j, o in enumerate(pts)
            if j != i
        )
        on_front.append(not dominated)
    return on_front


def quality_spec(quality: str) -> MetricSpec:
    """The metric a plot's ``quality`` names; an unknown one is a one-line error."""
    if quality not in metric_names():
        raise SRBenchError(f"unknown quality {quality!r}; choose from {', '.join(metric_names())}")
    return metric(quality)


# ------------------------------------------------------------------------------------------------
# Costs
# ------------------------------------------------------------------------------------------------


def load_profiles(results_dir: str | Path) -> list[dict]:
    """The ``srbench profile`` records stored next to the result store (``profile.jsonl``)."""
    return [r for r in read_jsonl(Path(results_dir) / PROFILE_FILE) if "model" in r]


@cache
def counted_costs(model: str, scale: int, size: str = COST_SIZE) -> dict[str, Any]:
    """Parameters and MACs of a registered model, counted by :mod:`srbench.profiling`."""
    from srbench.profiling import count_macs, lr_shape, parse_size, trainable_params
    from srbench.registry import create_model, get_card

    card = get_card(model)
    net = create_model(card.name, scale).eval()
    macs = count_macs(net, lr_shape(card, scale, parse_size(size)), card=card)
    return {
        "params": trainable_params(net),
        "macs": macs.total_macs,
        "network_macs": macs.network_macs,
    }


CostFn = Callable[[str, int], dict[str, Any]]


def profile_hardware(record: dict) -> dict[str, Any]:
    """The machine a profile record was measured on: device name, type and thread count."""
    env = record.get("env") or {}
    return {
        "device": env.get("gpu_name") or env.get("cpu_model") or record.get("device") or "unknown",
        "device_type": record.get("device_type", "?"),
        "threads": record.get("threads", env.get("torch_threads")),
    }


def _hardware(record: dict) -> str:
    hw = profile_hardware(record)
    return f"{hw['device']} ({hw['device_type']}, {hw['threads']} threads)"


def architecture_name(model: str) -> str:
    """The registered architecture a stored model name runs: ``idn.official`` -> ``idn``
    (``drn_s@ref``, the reference store's ``drn_s``, -> ``drn_s``)."""
    return model.split("@", 1)[0].split(".", 1)[0]


def efficiency_table(
    models_scales: Iterable[tuple[str, int]],
    profiles: Sequence[dict] = (),
    *,
    size: str = COST_SIZE,
    precision: str = "fp32",
    cost_fn: CostFn | None = None,
) -> pd.DataFrame:
    """Per (model, scale): params, MACs, latency, memory and where each came from.

    Everything comes from profile records (``srbench profile``; ``srbench run`` adds counting-only
    ones); parameters and MACs missing there are counted with ``cost_fn`` when one is given
    (``None``, the default: left missing -- later stages read the store, they do not re-count).
    """
    rows = []
    for model, scale in sorted(set(models_scales), key=lambda x: (str(x[0]), int(x[1]))):
        row: dict[str, Any] = {"model": model, "scale": int(scale)}
        row.update({c: math.nan for c in COSTS})
        row["latency_hardware"] = row["latency_device"] = row["latency_threads"] = None
        # Costs belong to the architecture: `idn.official` costs what `idn` costs.
        counts, timing = shown_costs(
            profiles, architecture_name(model), int(scale), size, precision=precision
        )
        prof, timed = counts.record, timing.record
        source = []
        if prof is not None:
            row["params"] = prof.get("trainable_params", math.nan)
            row["macs"] = prof.get("total_macs", math.nan)
            row["network_macs"] = prof.get("network_macs", math.nan)
            source.append("srbench profile")
        if timed is not None:
            row["latency_ms"] = float(timed["latency_median_ms"])
            row["latency_hardware"] = _hardware(timed)
            hw = profile_hardware(timed)
            row["latency_device"], row["latency_threads"] = hw["device"], hw["threads"]
            peak: Any = (timed.get("peak_memory") or {}).get("peak_allocated_bytes")
            if _finite(peak):
                row["memory_bytes"] = float(peak)
        source += [note for note in (counts.note, timing.note) if note]
        if cost_fn is not None and not all(_finite(row[c]) for c in ("params", "macs")):
            try:
                counted = cost_fn(model, int(scale))
            except Exception as exc:  # unknown model, unsupported scale: said, not fatal
                source.append(f"not counted: {type(exc).__name__}: {exc}".splitlines()[0])
            else:
                for column, value in counted.items():
                    if column in COSTS and not _finite(row.get(column)):
                        row[column] = value
                source.append("counted (srbench.profiling)")
        row["cost_source"] = "; ".join(source) or "none"
        rows.append(row)
    columns = ["model", "scale", *COST_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def summary_table(
    frame: pd.DataFrame,
    profiles: Sequence[dict] = (),
    *,
    cost_fn: CostFn | None = None,
) -> pd.DataFrame:
    """Per-model means (:func:`srbench.results.summarise`) joined with their costs and a label."""
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP_COLUMNS, *POINT_COLUMNS, *metric_names(), "label"])
    summary = summarise(frame) if "image" in frame.columns else frame.copy()
    for column in POINT_COLUMNS:
        if column not in summary.columns:
            summary[column] = None
    pairs = {(m, int(s)) for m, s in zip(summary["model"], summary["scale"], strict=True)}
    costs = efficiency_table(pairs, profiles, cost_fn=cost_fn)
    summary = summary.drop(columns=[c for c in COST_COLUMNS if c in summary.columns])
    summary["scale"] = summary["scale"].astype(int)
    out = summary.merge(costs, on=["model", "scale"], how="left")
    out["label"] = point_labels(out)
    out["weights_kind"] = [
        weights_kind(m, s) for m, s in zip(out["model"], out["weights_sha256"], strict=True)
    ]
    return out


def draw_fronts(
    ax: Any, costs: Sequence[float], xs: Sequence[float], qualities: Sequence[float],
    kinds: Sequence[str], right: float, size: float, *, higher_is_better: bool = True,
) -> None:  # fmt: skip
    """A Pareto front per weights kind (:data:`srbench.kinds.KINDS`), each with its own marker
    and colour: srbench's short training and the authors' weights are never one front."""
    for kind, (legend, marker, colour) in KINDS.items():
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if not idx:
            continue
        points = [(costs[i], qualities[i]) for i in idx]
        flags = pareto_front(points, higher_is_better=higher_is_better)
        on = [i for i, f in zip(idx, flags, strict=True) if f]
        off = [i for i, f in zip(idx, flags, strict=True) if not f]
        if len(idx) > 1:
            front = sorted((xs[i], qualities[i]) for i in on)
            fx, fq = zip(*front, strict=True)
            ax.step([*fx, right], [*fq, fq[-1]], where="post", color=colour, lw=1.2, alpha=0.8,
                    zorder=1)  # fmt: skip
        ax.scatter([xs[i] for i in on], [qualities[i] for i in on], color=colour, marker=marker,
                   s=size, zorder=3, label=f"{legend}: on its front")  # fmt: skip
        if off:
            ax.scatter([xs[i] for i in off], [qualities[i] for i in off], facecolors="none",
                       edgecolors=colour, marker=marker if marker not in "x+" else "o", s=size,
                       zorder=2, label=f"{legend}: dominated")  # fmt: skip


def budget_labels(frame: pd.DataFrame) -> list[str]:
    """The frame's ``label`` column, where srbench's own plain-name files at a scale were not
    all trained alike (DRN-S shipping its 16k ladder file beside the zoo's 1k ones) each with
    its budget tag (``drn_s (zoo16k)``, ``srcnn (zoo1k_cosine)``): one front never hides two
    budgets in a figure (tables have a budget column)."""
    from srbench.kinds import training_tag

    tags = [
        None if "." in str(m) else training_tag(str(m), int(s), str(w))
        for m, s, w in zip(frame["model"], frame["scale"], frame["weights_sha256"], strict=True)
    ]
    per_scale: dict[int, set[str]] = {}
    for scale, tag in zip(frame["scale"], tags, strict=True):
        per_scale.setdefault(int(scale), set()).update([tag] if tag else [])
    return [
        f"{label} ({tag})" if tag and len(per_scale[int(scale)]) > 1 else str(label)
        for label, scale, tag in zip(frame["label"], frame["scale"], tags, strict=True)
    ]


def point_labels(frame: pd.DataFrame) -> list[str]:
    """Model names; ``+`` for self-ensemble; the weights' short hash where a model has several
    at one scale (one file per scale, as IDN's, is not "several")."""
    by = ["model", "scale"] if "scale" in frame.columns else ["model"]
    per_model = frame.groupby(by)["weights_sha256"].nunique(dropna=False).to_dict()
    labels = []
    for row in frame.itertuples():
        label = str(row.model) + ("+" if bool(getattr(row, "ensemble", False)) else "")
        key = (row.model, row.scale) if len(by) == 2 else row.model
        if per_model.get(key, 1) > 1:
            label += f" [{str(row.weights_sha256)[:8]}]"
        precision = getattr(row, "precision", "fp32")
        if precision not in (None, "fp32") and not pd.isna(precision):
            label += f" ({precision})"
        if str(row.weights_sha256) == "random-init":
            label += " (random weights)"
        labels.append(label)
    return labels


# ------------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------------


def _select_protocol(
    frame: pd.DataFrame, protocol: str | None, protocol_hash: str | None
) -> tuple[pd.DataFrame, str, str]:
    if protocol is not None:
        frame = frame[frame["protocol"] == protocol]
    if protocol_hash is not None:
        frame = frame[frame["protocol_hash"] == protocol_hash]
    found = sorted(
        {(str(p), str(h)) for p, h in zip(frame["protocol"], frame["protocol_hash"], strict=True)}
    )
    if len(found) > 1:
        labels = ", ".join(f"{p}@{h}" for p, h in found)
        raise SRBenchError(
            f"the results hold several protocols ({labels}); pick one (protocol=..., "
            "protocol_hash=...): numbers from different protocols are never plotted together"
        )
    if not found:
        raise SRBenchError("no results for the requested protocol")
    return frame, found[0][0], found[0][1]


def plot_stem(
    protocol: str, protocol_hash: str, dataset: str, scale: int, quality: str, cost: str
) -> str:
    return f"pareto_{protocol}-{protocol_hash}_{dataset}_x{scale}_{quality}_vs_{cost}"


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))


def pareto_plot(
    frame: pd.DataFrame,
    dataset: str,
    scale: int,
    quality: str = "psnr_db",
    cost: str = "params",
    out_dir: str | Path = Path("reports"),
    *,
    protocol: str | None = None,
    protocol_hash: str | None = None,
    profiles: Sequence[dict] = (),
    cost_fn: CostFn | None = None,
    stem: str | None = None,
) -> dict[str, Path]:
    """Plot ``quality`` against ``cost`` for one dataset, scale and protocol; PNG and SVG.

    ``frame``: the store (:func:`srbench.results.load_results`) or a :func:`summary_table`.
    Every point is labelled with its model; the front is a step line; params and MACs use a log
    x-axis (a zero-cost point such as bicubic's 0 parameters sits at the axis' left end, on a
    tick labelled 0). Returns ``{"png": path, "svg": path}``. Raises :class:`SRBenchError` when
    there is nothing to plot or the frame mixes protocols and none was chosen.
    """
    spec = quality_spec(quality)
    if cost not in COSTS:
        raise SRBenchError(f"unknown cost {cost!r}; choose from {', '.join(COSTS)}")
    if frame.empty:
        raise SRBenchError("the result store is empty: nothing to plot")
    table = summary_table(frame, profiles, cost_fn=cost_fn) if "image" in frame.columns else frame
    table = table[(table["dataset"] == dataset) & (table["scale"].astype(int) == int(scale))]
    if table.empty:
        raise SRBenchError(f"no results for {dataset} x{scale}")
    table, protocol, protocol_hash = _select_protocol(table, protocol, protocol_hash)
    usable, note = _plotted_points(table, quality, cost)
    if usable.empty:
        raise SRBenchError(
            f"no point has both {quality} and {cost} for {dataset} x{scale} "
            f"({protocol}@{protocol_hash})"
            + (
                "; latency and memory come from `srbench profile`"
                if cost in ("latency_ms", "memory_bytes")
                else ""
            )
        )
    title = f"{dataset} x{scale}: {spec.axis_label()} vs {cost}  [{protocol}@{protocol_hash}]"
    fig = _draw_pareto(usable, spec, cost, title, note)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = _safe(stem or plot_stem(protocol, protocol_hash, dataset, int(scale), quality, cost))
    return save_figure(fig, {"png": out_dir / f"{stem}.png", "svg": out_dir / f"{stem}.svg"})


def _plotted_points(table: pd.DataFrame, quality: str, cost: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows of one dataset/scale/protocol that get a point, and the figure's footnotes
    (partial means, missing costs, latencies measured on other hardware)."""
    if "label" not in table.columns:
        table = table.assign(label=point_labels(table))
    if cost not in table.columns:
        table = table.assign(**{cost: math.nan})
    table, note = drop_partial(table)
    usable = table[table[cost].map(_finite) & table[quality].map(_finite)]
    missing = sorted(set(table["label"]) - set(usable["label"]))
    if missing:
        note.append(f"no {cost} for: {', '.join(missing)}")
    if cost == "latency_ms" and not usable.empty:
        # Latencies are only comparable on one machine: keep the most common hardware.
        hardware = str(usable["latency_hardware"].value_counts().index[0])
        other = sorted(set(usable[usable["latency_hardware"] != hardware]["label"]))
        if other:
            note.append(f"measured on other hardware, not shown: {', '.join(other)}")
        usable = usable[usable["latency_hardware"] == hardware]
        note.append(f"hardware: {hardware}")
    return usable, note


def _draw_pareto(
    usable: pd.DataFrame, spec: MetricSpec, cost: str, title: str, note: list[str]
) -> Figure:
    """The labelled points and their front(s); params and MACs on a log x-axis, where a
    zero-cost point (bicubic) sits on a tick labelled 0 at the left end."""
    # A Figure of its own, not pyplot: the caller's matplotlib backend is left alone.
    from matplotlib.figure import Figure

    costs = [float(v) for v in usable[cost]]
    qualities = [float(v) for v in usable[spec.name]]
    labels = budget_labels(usable)
    kinds = [
        weights_kind(m, s) for m, s in zip(usable["model"], usable["weights_sha256"], strict=True)
    ]
    log_x = cost in LOG_COSTS
    xs = list(costs)
    zero_x = 1.0  # where zero-cost points sit on a log axis
    if log_x:
        positive = [c for c in costs if c > 0]
        zero_x = 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1.0
        xs = [c if c > 0 else zero_x for c in costs]

    fig = Figure(figsize=(7.5, 5.0), dpi=110)
    ax = fig.subplots()
    right = max(xs) * (1.6 if log_x else 1.05) if max(xs) > 0 else 1.0
    draw_fronts(ax, costs, xs, qualities, kinds, right, 36, higher_is_better=spec.higher_is_better)
    if log_x:
        ax.set_xscale("log")
        if any(c <= 0 for c in costs):
            zero_cost_axis(ax, zero_x, max(xs))
    ax.set_xlabel(COSTS[cost] + (" (log scale)" if log_x else "") + " -- lower is better")
    ax.set_ylabel(f"{spec.axis_label()} -- {spec.direction}")
    ax.set_title(title, fontsize=10)
    if note:
        fig.text(0.01, 0.01, "; ".join(note), fontsize=7, color="dimgray", wrap=True)
    ax.grid(True, which="major", alpha=0.3)
    if not log_x:
        ax.margins(x=0.12)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    place_labels(ax, xs, qualities, labels, fontsize=8)
    return fig


def plot_all(
    frame: pd.DataFrame,
    out_dir: str | Path,
    *,
    quality: str = "psnr_db",
    cost: str = "params",
    profiles: Sequence[dict] = (),
    cost_fn: CostFn | None = None,
) -> list[tuple[dict[str, Any], dict[str, Path] | str]]:
    """One plot per (protocol, hash, dataset, scale): ``[(group, paths or why not), ...]``."""
    if frame.empty:
        return []
    table = summary_table(frame, profiles, cost_fn=cost_fn) if "image" in frame.columns else frame
    out = []
    for key, _ in table.groupby(list(GROUP_COLUMNS), sort=True):
        group = dict(zip(GROUP_COLUMNS, key, strict=True))
        try:
            paths: dict[str, Path] | str = pareto_plot(
                table, group["dataset"], int(group["scale"]), quality, cost, out_dir,
                protocol=group["protocol"], protocol_hash=group["protocol_hash"],
            )  # fmt: skip
        except SRBenchError as exc:
            paths = str(exc)
        out.append((group, paths))
    return out
