"""Costs of one forward pass: parameters, and MACs (fvcore, extrapolated where verified exact).

How the MACs are made is in :mod:`srbench.profiling`'s docstring; the per-op costs are
:data:`srbench.profiling.ops.OP_COSTS`.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from srbench.errors import ProfilingError
from srbench.profiling.ops import MAC_CATEGORIES, NON_MAC_CATEGORIES, SMALL_PIXELS, fvcore_trace
from srbench.registry import ModelCard


def trainable_params(model: nn.Module) -> int:
    """Parameters with ``requires_grad``: the parameter count tables and records report."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def param_counts(model: nn.Module) -> dict[str, Any]:
    """Trainable parameters, and frozen values (frozen parameters and buffers) as held."""
    trainable = trainable_params(model)
    frozen = {n: p.numel() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.numel() for n, b in model.named_buffers()}
    return {
        "trainable_params": trainable,
        "frozen_params": sum(frozen.values()),
        "buffer_values": sum(buffers.values()),
        "frozen_values": sum(frozen.values()) + sum(buffers.values()),
        "frozen_detail": {**frozen, **buffers},
    }


@dataclass
class MacCount:
    """MACs of one forward pass at one input shape (batch 1)."""

    input_shape: tuple[int, int, int, int]
    by_category: dict[str, int]
    ops: dict[str, int]
    uncounted_ops: dict[str, int]
    method: str
    flop_counter_check: dict[str, Any]

    @property
    def bicubic_macs(self) -> int:
        return self.by_category.get("bicubic", 0)

    @property
    def network_macs(self) -> int:
        skip = {"bicubic", *NON_MAC_CATEGORIES}
        return sum(v for k, v in self.by_category.items() if k not in skip)

    @property
    def total_macs(self) -> int:
        return self.network_macs + self.bicubic_macs

    @property
    def literature_macs(self) -> int:
        """:attr:`total_macs` with every transposed convolution counted per output pixel (the
        efficient-SR literature's convention); equal to it for models without one."""
        return (
            self.total_macs
            - self.by_category.get("conv_transpose", 0)
            + self.by_category.get("conv_transpose_per_output", 0)
        )

    @property
    def elementwise_ops(self) -> int:
        return self.by_category.get("elementwise", 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "units": "MACs = multiply-accumulates (fvcore 'flops'); FLOPs = 2 x MACs",
            "input_shape": list(self.input_shape),
            "network_macs": self.network_macs,
            "bicubic_macs": self.bicubic_macs,
            "total_macs": self.total_macs,
            "literature_macs": self.literature_macs,
            "network_flops": 2 * self.network_macs,
            "bicubic_flops": 2 * self.bicubic_macs,
            "total_flops": 2 * self.total_macs,
            "elementwise_ops": self.elementwise_ops,
            "by_category": dict(sorted(self.by_category.items())),
            "ops": dict(sorted(self.ops.items())),
            "uncounted_ops": dict(sorted(self.uncounted_ops.items())),
            "method": self.method,
            "flop_counter_check": self.flop_counter_check,
        }


def _basis(h: int, w: int) -> tuple[int, ...]:
    return h * w, h * h * w, h * w * w


def _output_basis(h: int, w: int) -> tuple[int, ...]:
    # A transposed conv's output side is s*h + const: its pixel count is a*h*w + b*h + c*w + d.
    return h * w, h, w, 1


# The polynomial in the LR size (h, w) each category is fitted to (default: _basis).
_CATEGORY_BASIS: dict[str, Callable[[int, int], tuple[int, ...]]] = {
    "conv_transpose_per_output": _output_basis,
}


def _solve(rows: list[tuple[int, ...]], values: list[int]) -> list[Fraction] | None:
    """Exact solution of the square system ``rows @ x = values`` (None when singular)."""
    n = len(rows)
    m = [[Fraction(v) for v in row] + [Fraction(values[i])] for i, row in enumerate(rows)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if m[r][col] != 0), None)
        if pivot is None:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col and m[r][col] != 0:
                f = m[r][col] / m[col][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def _predict(coef: list[Fraction], row: tuple[int, ...]) -> Fraction:
    return sum((k * v for k, v in zip(coef, row, strict=True)), Fraction(0))


def _probe_sizes(card: ModelCard | None, channels: int) -> list[tuple[int, int]]:
    multiple = max(1, int(card.input_multiple)) if card else 1
    minimum = max(multiple, card.min_input_size) if card else 1
    unit = multiple * math.ceil(max(4, math.ceil(minimum / 2)) / multiple)
    return [(unit * a, unit * b) for a, b in ((2, 3), (3, 2), (3, 4), (4, 3), (5, 2))]


def _flop_counter_macs(model: nn.Module, shape: tuple[int, ...]) -> dict[str, Any]:
    """FlopCounterMode on the meta device at ``shape``: FLOPs (2 x MACs) of conv/mm, no compute."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        meta_model = copy.deepcopy(model).to("meta")
        x = torch.zeros(shape, device="meta")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            meta_model(x)
        return {"status": "ok", "flops": int(counter.get_total_flops())}
    except Exception as exc:  # a model that cannot run on meta: the check is skipped, and said
        return {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def _mac_check(flop_check: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    expected = 2 * sum(counts.get(k, 0) for k in MAC_CATEGORIES)
    if flop_check.get("status") != "ok":
        return flop_check
    return {
        **flop_check,
        "compared": "FlopCounterMode FLOPs vs 2 x fvcore MACs of " + "+".join(MAC_CATEGORIES),
        "fvcore_flops": expected,
        "matches": flop_check["flops"] == expected,
    }


def _fit(probes: list[tuple[int, int]], values: list[int], target: tuple[int, int], cat: str):
    """``cat``'s count at the LR size ``target`` = (h, w), extrapolated from its ``values`` on
    the probes; a string saying why not where the fit is not exact."""
    basis = _CATEGORY_BASIS.get(cat, _basis)
    rows = [basis(ph, pw) for ph, pw in probes]
    k = len(rows[0])
    # Fit on the first k probes that determine the polynomial, verify on the others.
    coef: list[Fraction] | None = None
    fit: tuple[int, ...] = ()
    for fit in itertools.combinations(range(len(rows)), k):
        coef = _solve([rows[i] for i in fit], [values[i] for i in fit])
        if coef is not None:
            break
    checks = [i for i in range(len(rows)) if i not in fit]
    if coef is None or not checks or any(_predict(coef, rows[i]) != values[i] for i in checks):
        return f"category {cat!r} does not fit its polynomial in h, w on the probes"
    at_target = _predict(coef, basis(*target))
    if at_target.denominator != 1:
        return f"category {cat!r} extrapolates to a non-integer count"
    return int(at_target)


def count_macs(
    model: nn.Module,
    shape: Sequence[int],
    *,
    method: str = "auto",
    card: ModelCard | None = None,
) -> MacCount:
    """MACs of ``model`` on an input of ``shape`` (N, C, h, w), counted by fvcore.

    ``method``: ``"trace"`` traces at ``shape`` (runs the model once: slow on CPU for big inputs),
    ``"extrapolate"`` counts at small probe sizes and extrapolates where verified exact (see
    :mod:`srbench.profiling`), ``"auto"`` traces small inputs (<= 64x64 LR) and extrapolates larger
    ones. A failed verification falls back to tracing at ``shape``; ``method`` in the result says
    which.
    """
    dims = tuple(int(s) for s in shape)
    if len(dims) != 4 or min(dims) <= 0:
        raise ProfilingError(f"input shape must be (N, C, h, w) with positive sizes, got {dims}")
    if method not in ("auto", "trace", "extrapolate"):
        raise ProfilingError(f"unknown MAC counting method {method!r} (auto, trace, extrapolate)")
    model = model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    n, c, h, w = dims
    if card is None:
        card = getattr(model, "srbench_card", None)

    def make(hh: int, ww: int) -> torch.Tensor:
        return torch.rand(n, c, hh, ww, generator=torch.Generator().manual_seed(0)).to(device)

    def traced(note: str) -> MacCount:
        t = fvcore_trace(model, make(h, w))
        counts = dict(t.counts)
        check = _mac_check(_flop_counter_macs(model, dims), counts)
        return MacCount((n, c, h, w), counts, dict(t.ops), dict(t.uncounted), note, check)

    probes = _probe_sizes(card, c)
    if method == "trace" or (method == "auto" and h * w <= SMALL_PIXELS):
        return traced(f"fvcore trace at LR {w}x{h}")

    traces = [fvcore_trace(model, make(ph, pw)) for ph, pw in probes]
    counts: dict[str, int] = {}
    failure = None
    for cat in sorted(set().union(*(t.counts for t in traces))):
        fitted = _fit(probes, [t.counts.get(cat, 0) for t in traces], (h, w), cat)
        if isinstance(fitted, str):
            failure = fitted
            break
        counts[cat] = fitted
    uncounted: Counter[str] = Counter()
    for t in traces:
        uncounted |= t.uncounted
    check: dict[str, Any] = {}
    if failure is None:
        check = _mac_check(_flop_counter_macs(model, dims), counts)
        if check.get("status") == "ok" and not check["matches"]:
            failure = "extrapolated MACs differ from FlopCounterMode at the requested size"
    if failure is not None:
        return traced(f"fvcore trace at LR {w}x{h} (extrapolation refused: {failure})")
    sizes = ", ".join(f"{pw}x{ph}" for ph, pw in probes)
    return MacCount(
        (n, c, h, w),
        counts,
        dict(traces[0].ops),
        dict(uncounted),
        f"fvcore at LR probes {sizes}; every category fitted exactly to a*h*w + b*h^2*w + "
        f"c*h*w^2 on three probes (per-output transposed-conv counts: a*h*w + b*h + c*w + d on "
        f"four), verified on the others, extrapolated to LR {w}x{h}",
        check,
    )
