"""The result record: its fields, its key, its metrics -- defined here and nowhere else.

A record is one measured (model, weights, scale, dataset, image, protocol) with its scores and
provenance, one JSON line in ``results/records.jsonl``. Every stage that writes, reads, compares
or draws records takes the names below from this module.

The key decides when a stored result may be reused instead of recomputed: only when the image
(its pixel fingerprint ``hr_sha256``), the weights (``weights_sha256``), the protocol (id and
hash), the inference variant (ensemble, precision), whether the image verified as the standard
benchmark image (``standard_benchmark``) and the scoring code (``scorer_version``) are all the
same. Records written before a field existed are read with its documented default
(:data:`KEY_DEFAULTS`), so old stores load unchanged.

Metric conventions (BasicSR's ``metrics/README.md`` style, one place per fact):

===========  ====  ==================  =========================================================
metric       unit  higher is better    computed on
===========  ====  ==================  =========================================================
psnr_db      dB    yes                 uint8-rounded SR vs HR, BT.601 Y (studio range, float64),
                                       ``scale`` px border cropped, peak 255; mean over images
ssim         1     yes                 same Y and crop; Gaussian 11x11, sigma 1.5, K1 0.01,
                                       K2 0.03, valid window (MATLAB ``ssim_index``)
===========  ====  ==================  =========================================================

Gate tolerances are per metric (``gate_tolerance``), never one number for all. Adding a metric is
its function (``srbench/metrics.py``), its spec here, and its tests: the protocols score every
spec, records, summaries, the gate and the verdict carry every spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Bump when a change to the scoring or inference code changes stored numbers: records made by
# another version are then recomputed, never reused. (1: everything up to this schema.)
SCORER_VERSION = 1


@dataclass(frozen=True)
class MetricSpec:
    name: str  # record field
    label: str  # for tables and axes
    unit: str  # "" for unitless
    higher_is_better: bool
    gate_tolerance: float  # absolute: how much worse the gate lets a mean get
    decimals: int  # in tables
    function: str  # "module:function" computing it: f(sr_y, hr_y, crop=scale) -> per-image tensor

    def compute(self, sr_y, hr_y, crop: int) -> float:
        """The metric of one image pair (float64 Y tensors, values in [0, 255])."""
        import importlib

        module, _, name = self.function.partition(":")
        return float(getattr(importlib.import_module(module), name)(sr_y, hr_y, crop=crop)[0])

    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def fmt(self, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "-"
        return f"{value:.{self.decimals}f}"


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("psnr_db", "PSNR", "dB", True, 0.01, 2, "srbench.metrics:psnr"),
    MetricSpec("ssim", "SSIM", "", True, 0.0002, 4, "srbench.metrics:ssim"),
)
METRIC_NAMES = tuple(m.name for m in METRICS)
PSNR, SSIM = METRICS


def metric(name: str) -> MetricSpec:
    for spec in METRICS:
        if spec.name == name:
            return spec
    from srbench.errors import SRBenchError

    raise SRBenchError(f"unknown metric {name!r} (known: {', '.join(METRIC_NAMES)})")


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
)
KEY_DEFAULTS: dict[str, Any] = {
    "ensemble": False,
    "precision": "fp32",
    "scorer_version": 1,
}

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
    "psnr_db": (int, float),
    "ssim": (int, float),
}


def _field(record: dict, name: str) -> Any:
    """A key field, with a field an old record lacks read as its default -- absent from a JSON
    line, or NaN in a DataFrame row built from records of several code versions."""
    value = record.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return KEY_DEFAULTS.get(name)
    return value


def record_key(record: dict) -> tuple:
    return tuple(_field(record, f) for f in KEY_FIELDS)


def entry_key(record: dict) -> tuple:
    return tuple(_field(record, f) for f in ENTRY_FIELDS)


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
    for spec in METRICS:
        if math.isnan(float(record[spec.name])):  # +inf PSNR is a perfect reconstruction
            return f"{spec.name!r} is NaN"
    return None
