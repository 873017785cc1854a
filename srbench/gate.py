"""The metrics gate: a fresh run compared with a committed baseline, metric by metric.

A baseline (``results/baseline.json``, written only by ``srbench baseline update``) holds, per
(model, weights_sha256, protocol, protocol_hash, dataset, scale) -- plus ``ensemble`` and
``precision``, so that ``+`` variants never collide with plain runs -- the mean PSNR and SSIM, the
number of images, the parameters and MACs (at a 1280x720 output) and, where ``srbench profile``
measured it, the latency with the hardware it was measured on; and the environment that made it.

:func:`compare` checks a current set of entries against it with direction-aware tolerances:

* each metric of :data:`srbench.schema.METRICS` (PSNR 0.01 dB, SSIM 0.0002: its
  ``gate_tolerance``): getting worse -- lower where higher is better, higher where lower is
  better -- by more than the tolerance is a regression; getting better by more than it is
  "improved" (reported, not a failure); within the tolerance it is "ok"; "skipped: not measured"
  where either side has no value (a metric newer than the baseline);
* parameters, MACs and the number of images: exact; any change is a failure ("changed").
* latency: relative, ``latency_rel`` (+10%) slower is a regression, 10% faster "improved"; only
  compared when the device name and the thread count are the same as the baseline's, else
  "skipped: different hardware"; "skipped: not measured" when either side has no latency.
* a baseline entry with no current result is "missing" (a failure); a current result not in the
  baseline is "new" (reported only).

Library code: nothing here prints (``srbench.cli.gate`` draws the table).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from srbench.errors import SRBenchError
from srbench.pareto import CostFn, counted_costs, efficiency_table, load_profiles
from srbench.results import ResultStore, summarise
from srbench.schema import ENTRY_FIELDS, MetricSpec, is_ablation, metric_specs

SCHEMA = "srbench.baseline/1"
ENTRY_KEY = ENTRY_FIELDS
EXACT = ("images", "params", "macs")  # compared exactly, after the metrics
LATENCY = "latency_rel"
FAILING = ("regressed", "changed", "missing")


@dataclass(frozen=True)
class Tolerances:
    """How much worse a metric may get before the gate fails: per metric (absolute; its spec's
    ``gate_tolerance`` unless given) and the latency (relative)."""

    metrics: dict[str, float] = field(default_factory=dict)
    latency_rel: float = 0.10

    def __post_init__(self) -> None:
        given = dict(self.metrics)
        object.__setattr__(
            self,
            "metrics",
            {m.name: float(given.pop(m.name, m.gate_tolerance)) for m in metric_specs()},
        )
        if given:
            raise SRBenchError(f"tolerance for unknown metric(s): {', '.join(sorted(given))}")
        for name, value in self.as_dict().items():
            problem = _tolerance_problem(value)
            if problem:
                raise SRBenchError(f"tolerance {name} is {problem}")

    def of(self, metric: str) -> float:
        return self.metrics[metric] if metric != LATENCY else self.latency_rel

    def as_dict(self) -> dict[str, float]:
        """As a baseline file holds them: ``{"psnr_db": .., "ssim": .., "latency_rel": ..}``."""
        return {**self.metrics, LATENCY: self.latency_rel}

    def replaced(self, name: str, value: float) -> Tolerances:
        """These tolerances with ``name`` (a metric or ``latency_rel``) set to ``value``."""
        if name == LATENCY:
            return Tolerances(self.metrics, float(value))
        if name not in self.metrics:
            raise SRBenchError(f"no metric {name!r} to set a tolerance for")
        return Tolerances({**self.metrics, name: float(value)}, self.latency_rel)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return (*(m.name for m in metric_specs()), LATENCY)

    @classmethod
    def from_dict(cls, data: Any, where: str = "baseline") -> Tolerances:
        """Tolerances from a baseline's ``tolerances`` object; anything but a finite,
        non-negative number would disable (NaN, inf, -1) or crash the gate, so it is refused.
        A metric the baseline has no tolerance for (newer than it) gets its spec's."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SRBenchError(f"{where}: tolerances is {type(data).__name__}, not an object")
        known = cls.names()
        for name, value in data.items():
            problem = _tolerance_problem(value) if name in known else None
            if problem:
                raise SRBenchError(
                    f"{where}: tolerance {name} is {problem}; fix it or re-create the baseline "
                    "with `srbench baseline update`"
                )
        metrics = {k: float(v) for k, v in data.items() if k in known and k != LATENCY}
        return cls(metrics, float(data.get(LATENCY, cls.latency_rel)))


def _tolerance_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r}, not a number"
    if not (math.isfinite(value) and value >= 0):
        return f"{value!r}, not a finite number >= 0"
    return None


@dataclass
class MetricResult:
    metric: str
    baseline: Any
    current: Any
    delta: float | None
    tolerance: str
    status: str  # ok, improved, regressed, changed, skipped: ...
    note: str = ""


@dataclass
class EntryResult:
    key: dict[str, Any]
    status: str  # ok, improved, regressed, changed, missing, new
    metrics: list[MetricResult] = field(default_factory=list)
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILING


@dataclass
class GateResult:
    entries: list[EntryResult]
    tolerances: Tolerances
    baseline_environment: dict[str, Any]
    current_environment: dict[str, Any]

    @property
    def failed(self) -> bool:
        return any(e.failed for e in self.entries)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.status] = out.get(e.status, 0) + 1
        return out


# ------------------------------------------------------------------------------------------------
# Entries from the store
# ------------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe scalars: numpy types to Python, NaN to None."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def entry_key(entry: dict[str, Any]) -> tuple:
    return (
        str(entry.get("model")),
        str(entry.get("weights_sha256")),
        str(entry.get("protocol")),
        str(entry.get("protocol_hash")),
        str(entry.get("dataset")),
        int(entry.get("scale", 0)),
        bool(entry.get("ensemble", False)),
        str(entry.get("precision") or "fp32"),
    )


def _filtered(frame: pd.DataFrame, column: str, values: Iterable[Any] | None) -> pd.DataFrame:
    if values is None or frame.empty:
        return frame
    values = list(values)
    if column == "scale":
        return frame[frame[column].astype(int).isin([int(v) for v in values])]
    return frame[frame[column].isin(values)]


def current_entries(
    results_dir: str | Path,
    *,
    models: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    scales: Sequence[int] | None = None,
    protocols: Sequence[str] | None = None,
    profiles: Sequence[dict] | None = None,
    cost_fn: CostFn | None = counted_costs,
    current_code: bool = False,
) -> list[dict[str, Any]]:
    """One entry per key from the store: mean PSNR/SSIM, images, params, MACs, latency.

    Parameters and MACs are counted on the code as it is now (``cost_fn``), so an architecture
    change shows; latency comes only from ``srbench profile`` records (``profile.jsonl``).
    Records that carry an ``ablation`` tag are left out; ``current_code``: so are records the
    code as it is now did not make (``srbench check --run`` re-runs those).
    """
    records = [
        r
        for r in ResultStore(Path(results_dir)).shown_records()
        if not is_ablation(r) and (not current_code or _by_current_code(r))
    ]
    if not records:
        return []
    frame = pd.DataFrame.from_records(records)
    for column, default in (("ensemble", False), ("precision", "fp32")):
        if column not in frame.columns:
            frame[column] = default
    frame = _filtered(frame, "model", models)
    frame = _filtered(frame, "dataset", datasets)
    frame = _filtered(frame, "scale", scales)
    frame = _filtered(frame, "protocol", protocols)
    if frame.empty:
        return []
    summary = summarise(frame)
    pairs = {(str(m), int(s)) for m, s in zip(summary["model"], summary["scale"], strict=True)}
    counted = efficiency_table(pairs, (), cost_fn=cost_fn).set_index(["model", "scale"])
    profiles = list(load_profiles(results_dir) if profiles is None else profiles)
    measured = efficiency_table(pairs, profiles, cost_fn=None).set_index(["model", "scale"])
    hardware = _record_hardware(frame)
    entries = []
    for row in summary.itertuples():
        key = (str(row.model), int(row.scale))
        cost = counted.loc[key]
        lat = measured.loc[key]
        latency = _clean(lat["latency_ms"])
        entries.append(
            {
                "model": str(row.model),
                "weights_sha256": str(row.weights_sha256),
                "protocol": str(row.protocol),
                "protocol_hash": str(row.protocol_hash),
                "dataset": str(row.dataset),
                "scale": int(row.scale),
                "ensemble": bool(row.ensemble),
                "precision": str(row.precision),
                **{m.name: _clean(getattr(row, m.name)) for m in metric_specs()},
                "images": int(row.images),
                "verified": int(row.verified),
                "params": _int_or_none(cost["params"]),
                "macs": _int_or_none(cost["macs"]),
                "latency_ms": latency,
                "latency_hardware": (
                    {
                        "device": _clean(lat["latency_device"]),
                        "threads": _clean(lat["latency_threads"]),
                    }
                    if latency is not None
                    else None
                ),
                "measured_on": hardware.get(entry_key_pair(row), []),
            }
        )
    entries.sort(key=entry_key)
    return entries


def _by_current_code(record: dict) -> bool:
    """Whether ``record`` was made by the model, scorer and protocol code as it is now (never,
    for a plugin no longer installed)."""
    from srbench.results import current_code

    now = current_code(str(record["model"]))
    return now is not None and record.get("code_sha256") == now


def entry_key_pair(row: Any) -> tuple:
    return (str(row.model), str(row.weights_sha256), str(row.dataset), int(row.scale))


def _record_hardware(frame: pd.DataFrame) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = {}
    fields = [c for c in ("device", "device_type", "torch_threads") if c in frame.columns]
    if not fields:
        return out
    for row in frame.itertuples():
        hw = {f: _clean(getattr(row, f)) for f in fields}
        items = out.setdefault(entry_key_pair(row), [])
        if hw not in items:
            items.append(hw)
    return out


def _int_or_none(value: Any) -> int | None:
    value = _clean(value)
    if value is None:
        return None
    return round(float(value))


def environment_summary(results_dir: str | Path) -> dict[str, Any]:
    """Distinct machines and versions the store's records were measured with."""
    records = ResultStore(Path(results_dir)).latest_records()

    def distinct(*fields: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        for r in records:
            item = {f: r.get(f) for f in fields}
            if item not in seen:
                seen.append(item)
        return seen

    return {
        "hardware": distinct("device", "device_type", "torch_threads"),
        "versions": distinct("srbench_version", "git_commit", "torch_version"),
    }


# ------------------------------------------------------------------------------------------------
# Baseline files
# ------------------------------------------------------------------------------------------------


def make_baseline(
    entries: Sequence[dict[str, Any]],
    *,
    environment: dict[str, Any] | None = None,
    tolerances: Tolerances | None = None,
) -> dict[str, Any]:
    if not entries:
        raise SRBenchError("no results to put in a baseline: run `srbench run` first")
    from srbench.provenance import environment as machine

    return {
        "schema": SCHEMA,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tolerances": (tolerances or Tolerances()).as_dict(),
        "environment": {"records": environment or {}, "written_by": machine("cpu")},
        "entries": sorted((dict(e) for e in entries), key=entry_key),
    }


def write_baseline(path: str | Path, baseline: dict[str, Any]) -> Path:
    from srbench.files import atomic_write

    path = Path(path)
    atomic_write(path, json.dumps(baseline, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


def read_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SRBenchError(
            f"{path}: no baseline file; write one with `srbench baseline update --baseline {path}`"
        )
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise SRBenchError(f"{path}: not a readable baseline ({exc})") from None
    if (
        not isinstance(data, dict)
        or data.get("schema") != SCHEMA
        or not isinstance(data.get("entries"), list)
    ):
        raise SRBenchError(
            f"{path}: not an srbench baseline (expected schema {SCHEMA!r}); re-create it with "
            "`srbench baseline update`"
        )
    from srbench.results import migrate_record

    data["entries"] = [migrate_record(e) for e in data["entries"]]
    if not data["entries"]:
        raise SRBenchError(
            f"{path}: the baseline has no entries, so it would pass anything; re-create it with "
            "`srbench baseline update`"
        )
    for index, entry in enumerate(data["entries"]):
        where = f"{path}: entry {index} ({entry.get('model')} x{entry.get('scale')} {entry.get('dataset')})"
        missing = [k for k in ENTRY_KEY[:6] if k not in entry]
        if missing:
            raise SRBenchError(f"{where} lacks {', '.join(missing)}")
        for spec in metric_specs():
            problem = spec.problem(entry[spec.name]) if entry.get(spec.name) is not None else None
            if problem:
                raise SRBenchError(
                    f"{where}: {problem}, a value that cannot exist, so the gate could not "
                    "judge it; re-create the baseline with `srbench baseline update`"
                )
        images = entry.get("images")
        if images is not None and (
            isinstance(images, bool) or not isinstance(images, int) or images < 1
        ):
            raise SRBenchError(
                f"{where}: images is {images!r}, not a positive count; re-create the baseline "
                "with `srbench baseline update`"
            )
    _check_tolerance_types(path, data.get("tolerances"))
    Tolerances.from_dict(data.get("tolerances"), str(path))
    return data


def _check_tolerance_types(path: Path, tolerances: Any) -> None:
    """Each tolerance a JSON number (a string or a list would end in a traceback later)."""
    if tolerances is None:
        return
    if not isinstance(tolerances, dict):
        raise SRBenchError(
            f"{path}: tolerances is {tolerances!r}, not an object of numbers; re-create the "
            "baseline with `srbench baseline update`"
        )
    units = {m.name: m.unit or "units" for m in metric_specs()}
    for name in Tolerances.names():
        value = tolerances.get(name, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SRBenchError(
                f"{path}: tolerance {name} is {value!r}, not a number; write a number of "
                f"{units.get(name, 'units')} (e.g. {Tolerances().of(name)}) "
                "or re-create the baseline with `srbench baseline update`"
            )


# ------------------------------------------------------------------------------------------------
# Comparison
# ------------------------------------------------------------------------------------------------

_EPS = 1e-9


def _quality(spec: MetricSpec, base: Any, cur: Any, tol: float) -> MetricResult:
    text = f"{'-' if spec.higher_is_better else '+'}{tol:g}"
    if base is None or cur is None:
        return MetricResult(spec.name, base, cur, None, text, "skipped: not measured")
    delta = float(cur) - float(base)
    gain = spec.better(delta)
    if gain < -tol - _EPS:
        status = "regressed"
    elif gain > tol + _EPS:
        status = "improved"
    else:
        status = "ok"
    return MetricResult(spec.name, base, cur, delta, text, status)


def _exact(metric: str, base: Any, cur: Any) -> MetricResult:
    if base is None and cur is None:
        return MetricResult(metric, base, cur, None, "exact", "skipped: not measured")
    if base is None or cur is None or int(base) != int(cur):
        delta = None if base is None or cur is None else float(int(cur) - int(base))
        return MetricResult(metric, base, cur, delta, "exact", "changed")
    return MetricResult(metric, base, cur, 0.0, "exact", "ok")


def _same_hardware(a: dict | None, b: dict | None) -> bool:
    if not a or not b:
        return False
    return str(a.get("device")) == str(b.get("device")) and str(a.get("threads")) == str(
        b.get("threads")
    )


def _latency(base: dict, cur: dict, rel: float) -> MetricResult:
    text = f"+{rel:.0%}"
    b, c = base.get("latency_ms"), cur.get("latency_ms")
    if b is None or c is None:
        return MetricResult("latency_ms", b, c, None, text, "skipped: not measured")
    if not _same_hardware(base.get("latency_hardware"), cur.get("latency_hardware")):
        hb, hc = base.get("latency_hardware") or {}, cur.get("latency_hardware") or {}
        note = (
            f"baseline {hb.get('device')} / {hb.get('threads')} threads, "
            f"now {hc.get('device')} / {hc.get('threads')} threads"
        )
        return MetricResult("latency_ms", b, c, None, text, "skipped: different hardware", note)
    ratio = float(c) / float(b) - 1.0 if float(b) > 0 else math.inf
    if ratio > rel + _EPS:
        status = "regressed"
    elif ratio < -rel - _EPS:
        status = "improved"
    else:
        status = "ok"
    return MetricResult("latency_ms", b, c, ratio, text, status)


def _verdict(metrics: Sequence[MetricResult]) -> str:
    statuses = {m.status for m in metrics}
    for status in ("changed", "regressed", "improved"):
        if status in statuses:
            return status
    return "ok"


def compare(
    baseline: dict[str, Any],
    current: Sequence[dict[str, Any]],
    *,
    tolerances: Tolerances | None = None,
    current_environment: dict[str, Any] | None = None,
) -> GateResult:
    """Compare current entries with a baseline (:func:`read_baseline`), entry by entry."""
    tol = tolerances or Tolerances.from_dict(baseline.get("tolerances"))
    now = {entry_key(e): e for e in current}
    results: list[EntryResult] = []
    for base in sorted(baseline["entries"], key=entry_key):
        key = entry_key(base)
        key_dict = dict(zip(ENTRY_KEY, key, strict=True))
        cur = now.pop(key, None)
        if cur is None:
            results.append(EntryResult(key_dict, "missing", note=_why_missing(key, current)))
            continue
        metrics = [
            *(
                _quality(m, base.get(m.name), cur.get(m.name), tol.of(m.name))
                for m in metric_specs()
            ),
            *(_exact(name, base.get(name), cur.get(name)) for name in EXACT),
            _latency(base, cur, tol.latency_rel),
        ]
        results.append(EntryResult(key_dict, _verdict(metrics), metrics))
    for key in sorted(now):
        results.append(EntryResult(dict(zip(ENTRY_KEY, key, strict=True)), "new"))
    return GateResult(results, tol, baseline.get("environment") or {}, current_environment or {})


def _why_missing(key: tuple, current: Sequence[dict[str, Any]]) -> str:
    model, sha, protocol, phash, dataset, scale = key[:6]
    same = [
        e
        for e in current
        if e["model"] == model and e["dataset"] == dataset and int(e["scale"]) == scale
        and e["protocol"] == protocol
    ]  # fmt: skip
    hashes = sorted({e["protocol_hash"] for e in same if e["protocol_hash"] != phash})
    shas = sorted({e["weights_sha256"] for e in same if e["weights_sha256"] != sha})
    if hashes:
        return f"the store has {protocol} results under other protocol hashes: {', '.join(hashes)}"
    if shas:
        return f"the store has results with other weights: {', '.join(s[:12] for s in shas)}"
    return "no current result (run it, or use --run)"


def missing_runs(
    baseline: dict[str, Any], current: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What to run so that every baseline entry has a current result: one job per
    (protocol, ensemble, model) with its datasets and scales."""
    have = {entry_key(e) for e in current}
    jobs: dict[tuple, dict[str, Any]] = {}
    for entry in baseline["entries"]:
        if entry_key(entry) in have:
            continue
        job = jobs.setdefault(
            (entry["protocol"], bool(entry.get("ensemble", False)), entry["model"]),
            {"protocol": entry["protocol"], "ensemble": bool(entry.get("ensemble", False)),
             "model": entry["model"], "datasets": [], "scales": []},
        )  # fmt: skip
        if entry["dataset"] not in job["datasets"]:
            job["datasets"].append(entry["dataset"])
        if int(entry["scale"]) not in job["scales"]:
            job["scales"].append(int(entry["scale"]))
    return list(jobs.values())
