"""How the report writes numbers and names: one place for every cell's text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from srbench.data import benchmark_order
from srbench.errors import SRBenchError
from srbench.schema import MetricSpec


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


def fmt_metric(spec: MetricSpec, value: Any, signed: bool = False) -> str:
    """A value of ``spec`` with its decimals ("–" where not measured)."""
    return fmt(value, spec.decimals, signed)


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


def ordered_datasets(names: Sequence[str]) -> list[str]:
    return sorted(set(names), key=benchmark_order)


def card_or_none(model: str):
    from srbench.registry import get_card

    try:
        return get_card(model)
    except SRBenchError:
        return None


def short_sha(sha: Any) -> str:
    sha = str(sha)
    return sha if sha in ("none", "random-init") else sha[:12]


def safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))[:80]
