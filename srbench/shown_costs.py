"""Which stored profile record stands for a model's counts and for its latency: one rule for
the Pareto table, the report's efficiency section and the gate.

A profile record carries the keys of the code it measured (:mod:`srbench.cost_cache`):
``cost_key`` (the model code, the counting code, torch and fvcore: what parameters and MACs
depend on) and ``latency_key`` (the model code, the timing code and torch: what a latency
depends on; a fix to the MAC counter leaves it). Of one model's records at one size, the newest
of the code as it is now is shown; where there is none, the newest one written before srbench
keyed profiles (its code unknown: shown, and said so) -- as long as no record at that size
with a key came after it; a record of other known code never is -- the model changed since (``srbench run`` counts again, ``srbench
profile`` times again). A model whose code cannot be read here (a plugin no longer installed)
has no code as it is now: its newest record is shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from srbench.cost_cache import current_keys


@dataclass(frozen=True)
class Shown:
    record: dict[str, Any] | None
    what: str  # "counts" or "latency"
    reason: str = ""  # why the record is not one of today's code, or why none is shown

    @property
    def note(self) -> str:
        return f"{self.what}: {self.reason}" if self.reason else ""


def timed_as_run(record: dict, precision: str = "fp32") -> bool:
    """Whether a profile record holds a latency measured at ``precision`` -- for fp32, in the
    layout, precision and threads `srbench run` evaluates with (``as_run``; older profiles timed
    fp32 on the CPU in NCHW, 1.36-1.44x slower than run, and are not used for latency)."""
    lat = record.get("latency") or {}
    return (
        record.get("precision", "fp32") == precision
        and lat.get("status") == "measured"
        and _finite(record.get("latency_median_ms"))
        and (precision != "fp32" or record.get("as_run") is True)
    )


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _shown(
    records: Sequence[tuple[int, dict]], field: str, now: str | None, what: str, keyed_after: int
) -> Shown:
    """``records``: (position, record) candidates in file order; ``keyed_after``: the position
    of the model's last record at this size that carries a key (-1: none does)."""
    if not records or now is None:
        return Shown(records[-1][1] if records else None, what)
    for _, record in reversed(records):
        if record.get(field) == now:
            return Shown(record, what)
    position, newest = records[-1]
    if position > keyed_after:  # nothing after it says which code: from before profiles had keys
        return Shown(newest, what, "code not recorded (made before profiles were keyed)")
    again = "srbench run" if what == "counts" else "srbench profile"
    return Shown(None, what, f"only of other code than today's, not shown (re-run `{again}`)")


def shown_costs(
    profiles: Sequence[dict],
    model: str,
    scale: int,
    size: str,
    *,
    precision: str = "fp32",
    device_type: str | None = None,
) -> tuple[Shown, Shown]:
    """(counts, latency) of ``model`` x``scale`` at ``size`` from ``profiles`` (file order): the
    counts from any record, the latency from one timed at ``precision`` as `srbench run` runs
    it (on ``device_type``, or any device)."""
    mine = [
        r
        for r in profiles
        if r.get("model") == model and r.get("scale") == scale and r.get("size") == size
    ]
    keyed_after = max((i for i, r in enumerate(mine) if r.get("cost_key")), default=-1)
    timed = [
        (i, r)
        for i, r in enumerate(mine)
        if timed_as_run(r, precision) and device_type in (None, r.get("device_type"))
    ]
    cost_now, latency_now = current_keys(model, scale, size) if mine else (None, None)
    return (
        _shown(list(enumerate(mine)), "cost_key", cost_now, "counts", keyed_after),
        _shown(timed, "latency_key", latency_now, "latency", keyed_after),
    )
