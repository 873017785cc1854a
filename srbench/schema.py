"""The result record: its fields, its key, its metrics -- defined here and nowhere else.

A record is one measured (model, weights, scale, dataset, image, protocol) with its scores and
provenance, one JSON line in ``results/records.jsonl``. Every stage that writes, reads, compares
or draws records takes the names below from this module.

The key decides when a stored result may be reused instead of recomputed: only when the image
(its pixel fingerprint ``hr_sha256``), the weights (``weights_sha256``), the protocol (id and
hash), the inference variant (ensemble, precision, the requested ``tiling``), the kind of device
it ran on (``device_type``: ``cpu``, ``cuda``), whether the image verified as the standard
benchmark image (``standard_benchmark``) and the code that computed it
(``scorer_version`` and ``code_sha256``: the model's architecture code, the scorer, the protocol
and a plugin's version, :mod:`srbench.codehash`) are all the same. Records written before a field
existed are read with its documented default (:data:`KEY_DEFAULTS`), so old stores load
unchanged; a record whose code is unknown is shown with that provenance but never reused.

Reports, the gate and the verdict show one result per (entry, image) -- :func:`shown_records`:
of one code version (today's where stored) and one device type per entry, a verified copy of
the image before an unverified one, an untiled result before a tiled one, then the last
written.

Every metric has the range its values can take (``valid``); a value outside it (SSIM 1.7, PSNR
``Infinity`` or -5 dB) is refused on write and skipped, with its line number, on read.

A metric lives in one place: its function (``srbench/metrics.py``) and its :class:`MetricSpec`
in :data:`METRICS` below. The spec says which way is better, what the metric needs (the ``y`` or
``rgb`` view of the SR and HR images; a protocol that cannot provide it skips the metric and
says so), its unit, its display and its gate tolerance; records, summaries, the gate, the
verdict, the Pareto front, the report, the README tables and the printers all read it from
here. A record written before a metric existed has no value for it: the metric reads as "not
measured" there (:func:`measured`), never as an invalid record. ``docs/metrics.md`` tells how
to add one.

Metric conventions (BasicSR's ``metrics/README.md`` style, one place per fact):

===========  ====  ==================  =========================================================
metric       unit  higher is better    computed on
===========  ====  ==================  =========================================================
psnr_db      dB    yes                 uint8-rounded SR vs HR, BT.601 Y (studio range, float64),
                                       ``scale`` px border cropped, peak 255; mean over images
ssim         1     yes                 same Y and crop; Gaussian 11x11, sigma 1.5, K1 0.01,
                                       K2 0.03, valid window (MATLAB ``ssim_index``)
===========  ====  ==================  =========================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Bump when a change to the scoring or inference code changes stored numbers: records made by
# another version are then recomputed, never reused. (1: everything up to this schema.)
SCORER_VERSION = 1


# What a metric can be computed on (a protocol lists the views it provides): float64 tensors
# with values in [0, 255] -- "y": the scored Y channel (H x W); "rgb": the RGB image (3 x H x W).
VIEWS = ("y", "rgb")


@dataclass(frozen=True)
class MetricSpec:
    name: str  # record field
    label: str  # for tables and axes
    unit: str  # "" for unitless
    higher_is_better: bool
    gate_tolerance: float  # absolute: how much worse the gate lets a mean get
    decimals: int  # in tables
    function: str  # "module:function" computing it: f(sr, hr, crop=scale) -> per-image tensor
    valid: tuple[float, float]  # the finite closed range a value can exist in
    needs: str = "y"  # the view (VIEWS) its function takes

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot be this metric (None when it can)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return f"{self.name} is {value!r}, not a number"
        low, high = self.valid
        if not low <= value <= high:
            return f"{self.name} is {value!r}, outside [{low:g}, {high:g}]"
        return None

    def compute(self, sr, hr, crop: int) -> float:
        """The metric of one image pair of its view (``needs``: float64 tensors in [0, 255])."""
        import importlib

        module, _, name = self.function.partition(":")
        return float(getattr(importlib.import_module(module), name)(sr, hr, crop=crop)[0])

    def better(self, delta: float) -> float:
        """``delta`` (new - old, A - B) signed so that positive is better."""
        return delta if self.higher_is_better else -delta

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def header(self) -> str:
        """Table header: ``PSNR dB``, ``SSIM``."""
        return f"{self.label} {self.unit}".strip()

    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def fmt(self, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "-"
        return f"{value:.{self.decimals}f}"


# The highest PSNR two different 8-bit images can have: Y = 16 + (65.481 R + 128.553 G +
# 24.966 B) / 255 on uint8 R, G, B, and 65.481, 128.553, 24.966 are 219/1000 x (299, 587, 114)
# (coprime), so two Y values differ by a multiple of 219/255000 (integer Y: by 1); one such
# difference in an image of 2^32 pixels is the smallest MSE. Identical images (+inf) have no
# finite mean, so no stored PSNR exceeds this; the lowest is 0 dB (every pixel 0 vs 255).
PSNR_MAX_DB = 10 * math.log10(255.0**2 * 2**32 / (219 / 255000) ** 2)

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("psnr_db", "PSNR", "dB", True, 0.01, 2, "srbench.metrics:psnr", (0.0, PSNR_MAX_DB)),
    MetricSpec("ssim", "SSIM", "", True, 0.0002, 4, "srbench.metrics:ssim", (-1.0, 1.0)),
)
# The first spec is the headline: the one-sentence verdicts, the forest and strip plots and the
# report's Pareto figures speak of it.
PSNR, SSIM = METRICS[:2]


def metric_specs() -> tuple[MetricSpec, ...]:
    """Every metric, read when called (a test may register one: ``monkeypatch`` ``METRICS``)."""
    return METRICS


def metric_names() -> tuple[str, ...]:
    return tuple(m.name for m in METRICS)


def headline() -> MetricSpec:
    return METRICS[0]


def metric(name: str) -> MetricSpec:
    for spec in METRICS:
        if spec.name == name:
            return spec
    from srbench.errors import SRBenchError

    raise SRBenchError(f"unknown metric {name!r} (known: {', '.join(metric_names())})")


def measured(record: dict, spec: MetricSpec) -> bool:
    """Whether ``record`` has a value for ``spec`` (one written before the metric existed, or
    under a protocol that cannot feed it, has none: "not measured")."""
    value = record.get(spec.name)
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# What a result is *of*: one model, weights, variant and protocol (the gate's, report's and
# Pareto plot's group); with the image identity added it is the store's key.
ENTRY_FIELDS = (
    "model",
    "weights_sha256",
    "protocol",
    "protocol_hash",
    "dataset",
    "scale",
    "ensemble",
    "precision",
)
KEY_FIELDS = (
    *ENTRY_FIELDS,
    "image",
    "hr_sha256",
    "standard_benchmark",
    "scorer_version",
    "tiling",
    "code_sha256",
    "device_type",
)
# The code of a record made before code_sha256 existed is unknown: equal to no computed hash,
# so a fresh run recomputes it. Tiling before it was keyed: "none" unless the record says tiled
# (then its tile size and overlap are unknown).
UNKNOWN_CODE = "unknown"
UNTILED = "none"
KEY_DEFAULTS: dict[str, Any] = {
    "ensemble": False,
    "precision": "fp32",
    "scorer_version": 1,
    "tiling": lambda record: "unknown" if record.get("tiled") is True else UNTILED,
    "code_sha256": UNKNOWN_CODE,
    # Every record written before the field was keyed says where it ran; one that does not
    # predates srbench's GPU support (the CPU).
    "device_type": "cpu",
}


def tiling_label(tile: int | None, overlap: int | None) -> str:
    """The ``tiling`` key field of a run that asked for ``tile`` (None: whole images)."""
    return UNTILED if not tile else f"{tile}/{overlap}"


# Field -> accepted types; a record missing one of these, or with another type, is invalid and
# never enters a table (it is reported with its line number).
REQUIRED: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "weights_sha256": (str,),
    "scale": (int,),
    "dataset": (str,),
    "image": (str,),
    "protocol": (str,),
    "protocol_hash": (str,),
}


def _field(record: dict, name: str) -> Any:
    """A key field, with a field an old record lacks read as its default -- absent from a JSON
    line, or NaN in a DataFrame row built from records of several code versions."""
    value = record.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        default = KEY_DEFAULTS.get(name)
        return default(record) if callable(default) else default
    return value


def record_key(record: dict) -> tuple:
    return tuple(_field(record, f) for f in KEY_FIELDS)


def entry_key(record: dict) -> tuple:
    return tuple(_field(record, f) for f in ENTRY_FIELDS)


def field_value(record: dict, name: str) -> Any:
    """A key field of ``record``, read as its default where an old record lacks it."""
    return _field(record, name)


def is_ablation(record: dict) -> bool:
    """Whether ``record`` is a variant of an ablation study (``srbench ablate``: stored under the
    registered name with an ``ablation`` tag): never a model's own number."""
    tag = record.get("ablation")
    return tag not in (None, "", {}) and not (isinstance(tag, float) and math.isnan(tag))


def shown_records(
    records: list[dict], current: Callable[[str], str | None] | None = None
) -> list[dict]:
    """One record per (entry, image), for tables and means: only results of one code version
    and one kind of device per entry, so a mean never mixes either. The code: as it is now
    (``current``: model name -> its ``code_sha256``, None if unknown) where the entry has results
    of it, else the code of its newest record (a re-run after a code change that stopped
    part-way shows as k/N images, not as the old code's mean). The device: of that code's
    results, the device type with the most images, the newest on a tie (a partial GPU run does
    not hide a complete CPU one). Then per image the verified copy before an unverified one (a
    mean is over one copy of a benchmark), an untiled result before a tiled one, then the last
    written (``records`` in file order)."""
    # entry -> (code, device) -> [its images, (time, file order) of its newest record]
    versions: dict[tuple, dict[tuple, list]] = {}
    for order, record in enumerate(records):
        when = record.get("time_utc")
        stamp = (when if isinstance(when, str) else "", order)
        version = (_field(record, "code_sha256"), _field(record, "device_type"))
        seen = versions.setdefault(entry_key(record), {}).setdefault(version, [set(), stamp])
        seen[0].add(record.get("image"))
        seen[1] = max(seen[1], stamp)
    now: dict[str, str | None] = {}  # model -> its code as it is now, asked once per model
    shown: dict[tuple, tuple] = {}  # entry -> the (code, device) it shows
    for entry, found in versions.items():
        model = str(entry[0])
        if current is not None and model not in now:
            now[model] = current(model)
        codes = {code for code, _ in found}
        code = now.get(model)
        if code not in codes:
            code = max(found, key=lambda v: found[v][1])[0]
        shown[entry] = max(
            (v for v in found if v[0] == code), key=lambda v: (len(found[v][0]), found[v][1])
        )
    best: dict[tuple, tuple[tuple, dict]] = {}
    for order, record in enumerate(records):
        entry = entry_key(record)
        if (_field(record, "code_sha256"), _field(record, "device_type")) != shown[entry]:
            continue
        rank = (
            _field(record, "standard_benchmark") is not False,
            _field(record, "tiling") == UNTILED,
            order,
        )
        key = (*entry, record.get("image"))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, record)
    return [record for _, record in best.values()]


def invalid_reason(record: Any) -> str | None:
    """Why a stored line is not a usable record (None when it is)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for name, types in REQUIRED.items():
        if name not in record:
            return f"no {name!r}"
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{name!r} is {type(value).__name__}, not {types[0].__name__}"
    present = [spec for spec in METRICS if record.get(spec.name) is not None]
    if not present:
        return f"no metric ({', '.join(metric_names())})"
    for spec in present:
        value = record[spec.name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{spec.name!r} is {type(value).__name__}, not int"
        problem = spec.problem(value)
        if problem:
            return problem
    return None
