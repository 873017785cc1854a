"""Efficiency numbers: parameters, multiply-accumulates (MACs), latency and peak memory.

How every number is made is written up in ``docs/efficiency.md``; in short:

* **Parameters**: ``trainable_params`` counts parameters with ``requires_grad``; frozen parameters
  and buffers (EDSR's mean shift) are reported separately, as the module holds them.
* **MACs** (multiply-accumulates, what fvcore calls "flops"; FLOPs = 2 x MACs) come from
  ``fvcore.nn.FlopCountAnalysis`` with srbench's own operator handles (:data:`OP_COSTS`):
  convolutions (transposed ones counted per *input* pixel: ``in * out/groups * k * k``), matrix
  products (the fixed MATLAB-bicubic matrices of ``imresize_torch`` are reported apart as
  *bicubic MACs*; every other product is *network MACs*), elementwise ops (counted as operations,
  not MACs, and never added to the MACs) and data movement (zero cost, e.g. pixel shuffle). fvcore's
  own ignore list is replaced by these handles, so an op without a handle is listed in
  ``uncounted_ops`` rather than silently dropped.
* Tracing runs the model once. At large sizes the count is made at small probe sizes and
  extrapolated, but only where it is *verified exact*: every category must fit
  ``a*h*w + b*h^2*w + c*h*w^2`` (``h, w`` = LR size) exactly on three probes and reproduce two more
  probes, and the extrapolated MACs at the requested size must equal
  ``torch.utils.flop_counter.FlopCounterMode`` run on the ``meta`` device at that size (which costs
  nothing). If either check fails, the model is traced at the requested size instead.
* **Latency**: batch 1; warm-up, then N timed forward passes (or until a time budget is spent);
  median, interquartile range, min and mean in milliseconds. CPU: ``time.perf_counter`` with the
  thread count recorded; CUDA: CUDA events, synchronised. **Peak memory** on CUDA only
  (``reset_peak_memory_stats`` / ``max_memory_allocated``); on CPU the process's peak resident
  memory over one forward (Linux ``VmHWM`` after ``clear_refs``), with its baseline apart.

Library code: nothing here prints. Errors a user can fix raise :class:`ProfilingError`.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import os
import re
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import ProfilingError, SRBenchError
from srbench.provenance import environment
from srbench.registry import ModelCard, create_model, get_card

__all__ = [
    "DEFAULT_SIZES",
    "MAC_CATEGORIES",
    "OP_COSTS",
    "PRECISIONS",
    "SCHEMA",
    "MacCount",
    "PrecisionMode",
    "SizeSpec",
    "count_macs",
    "count_params",
    "input_channels",
    "lr_shape",
    "measure_latency",
    "parse_size",
    "profile_model",
    "resolve_device",
    "resolve_precision",
]

SCHEMA = "srbench.profile/1"
DEFAULT_SIZES = ("720p", "256")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")

# ------------------------------------------------------------------------------------------------
# Sizes
# ------------------------------------------------------------------------------------------------


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


@dataclass(frozen=True)
class SizeSpec:
    """A declared input size: either an HR output size or an LR input size (width x height).

    ``"720p"`` is the literature's 1280x720 HR output: LR = round(1280/s) x round(720/s), so x3
    uses LR 427x240 (HR 1281x720). ``"256"`` is a 256x256 LR input (NTIRE efficient-SR
    convention). ``"lr:WxH"`` / ``"WxH"`` give an LR size, ``"hr:WxH"`` an HR output size.
    """

    label: str
    kind: str  # "hr" (output size given) or "lr" (input size given)
    width: int
    height: int

    def lr_hw(self, scale: int) -> tuple[int, int]:
        """LR (height, width) for ``scale``."""
        if self.kind == "lr":
            return self.height, self.width
        return _round_half_up(self.height / scale), _round_half_up(self.width / scale)

    def describe(self, scale: int) -> str:
        h, w = self.lr_hw(scale)
        if self.kind == "lr":
            return f"LR {w}x{h} -> HR {w * scale}x{h * scale}"
        exact = w * scale == self.width and h * scale == self.height
        text = f"HR {self.width}x{self.height} -> LR {w}x{h}"
        if not exact:
            text += (
                f" (LR = round({self.width}/{scale}) x round({self.height}/{scale}); "
                f"the output is {w * scale}x{h * scale})"
            )
        return text


_WXH = re.compile(r"^\s*(-?\d+)\s*[x×*]\s*(-?\d+)\s*$", re.IGNORECASE)


def parse_size(text: str) -> SizeSpec:
    """Parse ``720p``, ``1080p``, ``256``, ``WxH`` (LR), ``lr:WxH`` or ``hr:WxH``."""
    raw = str(text).strip().lower()
    if not raw:
        raise ProfilingError("empty size; use e.g. 720p, 256, lr:320x180 or hr:1280x720")
    m = re.fullmatch(r"(-?\d+)p", raw)
    if m:
        height = int(m.group(1))
        if height <= 0:
            raise ProfilingError(f"size {text!r}: the height must be positive")
        return SizeSpec(raw, "hr", _round_half_up(height * 16 / 9), height)
    if re.fullmatch(r"-?\d+", raw):
        side = int(raw)
        if side <= 0:
            raise ProfilingError(f"size {text!r}: the side must be positive")
        return SizeSpec(raw, "lr", side, side)
    kind = "lr"
    body = raw
    if raw.startswith(("lr:", "hr:")):
        kind, body = raw[:2], raw[3:]
    m = _WXH.match(body)
    if not m:
        raise ProfilingError(
            f"cannot read size {text!r}; use 720p, 256 (LR 256x256), WxH or lr:WxH (LR input), "
            "hr:WxH (HR output)"
        )
    width, height = int(m.group(1)), int(m.group(2))
    if width <= 0 or height <= 0:
        raise ProfilingError(f"size {text!r}: width and height must be positive")
    return SizeSpec(raw, kind, width, height)


def input_channels(card: ModelCard) -> int:
    """Channels of the profiled input: 1 for Y models and for any-channel models, 3 for RGB."""
    return 3 if card.input_channels == "rgb" else 1


def lr_shape(card: ModelCard, scale: int, size: SizeSpec) -> tuple[int, int, int, int]:
    """The (N, C, h, w) LR input for ``size``, checked against the model's constraints."""
    h, w = size.lr_hw(scale)
    multiple = max(1, int(card.input_multiple))
    minimum = max(multiple, card.min_input_size)
    where = f"{card.name} x{scale}, size {size.label} ({size.describe(scale)})"
    if h < minimum or w < minimum:
        raise ProfilingError(
            f"{where}: the LR input must be at least {minimum}x{minimum} pixels for this model"
        )
    if h % multiple or w % multiple:
        raise ProfilingError(
            f"{where}: LR width and height must be multiples of {multiple} (the card's "
            "input_multiple); pick another size"
        )
    return 1, input_channels(card), h, w


# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------


def count_params(model: nn.Module) -> dict[str, Any]:
    """Trainable parameters, and frozen values (frozen parameters and buffers) as held."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = {n: p.numel() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.numel() for n, b in model.named_buffers()}
    return {
        "trainable_params": trainable,
        "frozen_params": sum(frozen.values()),
        "buffer_values": sum(buffers.values()),
        "frozen_values": sum(frozen.values()) + sum(buffers.values()),
        "frozen_detail": {**frozen, **buffers},
    }


# ------------------------------------------------------------------------------------------------
# MACs (fvcore with srbench's handles)
# ------------------------------------------------------------------------------------------------

# Inputs up to this many LR pixels are traced directly by count_macs(method="auto").
_SMALL_PIXELS = 64 * 64

# Categories in MAC units that torch's FlopCounterMode also counts (it counts 2 x MACs).
MAC_CATEGORIES = ("conv", "conv_transpose", "matmul", "bicubic", "linear", "einsum")
# Categories that are not MACs actually run (never added to network/bicubic MACs):
# "conv_transpose_per_output" is the literature's count of a transposed convolution -- its k x k
# kernel charged once per *output* pixel, as if it were a convolution at the HR size (that is how
# FSRCNN's 6.0 G at x2 720p arises) -- kept beside the true count (once per input pixel).
NON_MAC_CATEGORIES = ("elementwise", "conv_transpose_per_output")

_ELEMENTWISE_OPS = (
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "abs", "pow",
    "exp", "sqrt", "rsqrt", "relu", "relu_", "leaky_relu", "leaky_relu_", "elu", "elu_", "gelu",
    "silu", "silu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardtanh", "hardtanh_", "prelu",
    "softplus", "clamp", "clamp_", "clamp_min", "clamp_max", "maximum", "minimum",
)  # fmt: skip
# Pure data movement, shape bookkeeping and constants: no arithmetic, zero cost.
_ZERO_COST_OPS = (
    "pixel_shuffle", "pixel_unshuffle", "lift_fresh", "cat", "stack", "slice", "select",
    "narrow", "view", "reshape", "flatten", "permute", "transpose", "t", "contiguous", "squeeze",
    "unsqueeze", "unsqueeze_", "expand", "expand_as", "chunk", "split", "split_with_sizes",
    "unbind", "size", "Int", "ScalarImplicit", "to", "type_as", "detach", "clone", "copy_",
    "dropout", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "pad", "zeros",
    "zeros_like", "ones", "ones_like", "empty", "full", "full_like", "new_zeros", "new_empty",
    "new_full", "arange", "roll", "repeat", "index", "gather",
)  # fmt: skip
_CONSTANT_PASS_THROUGH = {
    f"aten::{op}"
    for op in (
        "lift_fresh", "t", "transpose", "permute", "to", "contiguous", "view", "reshape",
        "detach", "clone", "type_as", "expand", "unsqueeze", "squeeze",
    )
}  # fmt: skip

# Documented cost of every op srbench gives a handle (docs/efficiency.md repeats this table).
OP_COSTS: dict[str, str] = {
    "aten::_convolution": "conv: out_pixels * out_ch * in_ch/groups * k*k MACs; transposed: "
    "in_pixels (LR) * in_ch * out_ch/groups * k*k MACs (category conv_transpose; the literature's "
    "per-output-pixel count is kept beside it as conv_transpose_per_output, not added)",
    "aten::matmul / mm / bmm / addmm": "batch * n * k * m MACs (broadcast batch included); "
    "category 'bicubic' when one operand is a traced constant (imresize_torch's fixed weight "
    "matrices, counted as the dense products actually run), else 'matmul'",
    "aten::linear": "fvcore: batch * in * out MACs",
    "aten::einsum": "fvcore's einsum handle",
    **{f"aten::{op}": "elementwise: 1 operation per output element (not MACs)" for op in
       _ELEMENTWISE_OPS},
    **{f"aten::{op}": "zero cost (data movement / shape / constant)" for op in _ZERO_COST_OPS},
}  # fmt: skip


def _import_fvcore() -> None:
    """Import fvcore.nn, hiding the FutureWarning its import triggers (torch.jit.script)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import fvcore.nn  # noqa: F401


def _shape(value: Any) -> list[int] | None:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(value)


def _is_traced_constant(value: Any) -> bool:
    """True when a traced value is a constant tensor (possibly transposed, viewed or cast)."""
    for _ in range(16):
        node = value.node()
        kind = node.kind()
        if kind == "prim::Constant":
            return True
        if kind not in _CONSTANT_PASS_THROUGH:
            return False
        inputs = list(node.inputs())
        if not inputs:
            return False
        value = inputs[0]
    return False


def _matmul_macs(a: list[int], b: list[int]) -> int:
    a = [1, *a] if len(a) == 1 else list(a)
    b = [*b, 1] if len(b) == 1 else list(b)
    n, k, m = a[-2], a[-1], b[-1]
    batch = torch.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return math.prod(batch) * n * k * m


def _matmul_handle(first: int) -> Callable[[list[Any], list[Any]], Counter]:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        x, y = inputs[first], inputs[first + 1]
        a, b = _shape(x), _shape(y)
        if a is None or b is None:
            raise ProfilingError("matmul with an operand of unknown shape while counting MACs")
        category = "bicubic" if _is_traced_constant(x) or _is_traced_constant(y) else "matmul"
        return Counter({category: _matmul_macs(a, b)})

    return handle


def _conv_handle(transposed_arg: int | None, transposed: bool = False) -> Callable:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        from fvcore.nn.jit_handles import conv_flop_count

        is_t = bool(inputs[transposed_arg].toIValue()) if transposed_arg is not None else transposed
        x, w, out = _shape(inputs[0]), _shape(inputs[1]), _shape(outputs[0])
        macs = conv_flop_count(x, w, out, is_t)
        if not is_t:
            return Counter({"conv": int(macs)})
        assert w is not None and out is not None
        per_output = out[0] * math.prod(w) * math.prod(out[2:])
        return Counter({"conv_transpose": int(macs), "conv_transpose_per_output": per_output})

    return handle


def _elementwise_handle(inputs: list[Any], outputs: list[Any]) -> Counter:
    shape = _shape(outputs[0])
    if not shape:  # 0-dim: scalar shape arithmetic recorded by the tracer (e.g. h * scale)
        return Counter()
    return Counter({"elementwise": math.prod(shape)})


def _zero_handle(inputs: list[Any], outputs: list[Any]) -> Counter:
    return Counter()


@dataclass
class _Trace:
    counts: Counter  # category -> count
    ops: Counter  # op kind -> occurrences (every op that has a handle)
    uncounted: Counter  # op kind -> occurrences (no handle: listed, not counted)


def _fvcore_trace(model: nn.Module, x: torch.Tensor) -> _Trace:
    # Tracing runs the model once. Small inputs run on one thread: on a busy machine the thread
    # pool's synchronisation costs more than these tiny kernels (5x faster on 2 loaded cores).
    with _threads(1 if x.shape[-1] * x.shape[-2] <= _SMALL_PIXELS else None):
        return _fvcore_trace_impl(model, x)


def _fvcore_trace_impl(model: nn.Module, x: torch.Tensor) -> _Trace:
    _import_fvcore()
    from fvcore.nn import FlopCountAnalysis

    seen: Counter = Counter()

    def recorded(kind: str, handle: Callable) -> Callable:
        def wrapper(inputs: list[Any], outputs: list[Any]) -> Any:
            seen[kind] += 1
            return handle(inputs, outputs)

        return wrapper

    handles: dict[str, Callable] = {
        "aten::_convolution": _conv_handle(6),
        "aten::convolution": _conv_handle(6),
        "aten::matmul": _matmul_handle(0),
        "aten::mm": _matmul_handle(0),
        "aten::bmm": _matmul_handle(0),
        "aten::addmm": _matmul_handle(1),
        "aten::baddbmm": _matmul_handle(1),
    }
    for d in (1, 2, 3):
        handles[f"aten::conv{d}d"] = _conv_handle(None, False)
        handles[f"aten::conv_transpose{d}d"] = _conv_handle(None, True)
    handles.update({f"aten::{op}": _elementwise_handle for op in _ELEMENTWISE_OPS})
    handles.update({f"aten::{op}": _zero_handle for op in _ZERO_COST_OPS})

    analysis = FlopCountAnalysis(model, (x,))
    # Through fvcore's public API only: an op given a handle here is counted even where fvcore
    # would skip it silently (relu, clamp, cat, ...), so every op srbench knows gets its
    # documented cost; any other op is reported by ``unsupported_ops()``. fvcore's own default
    # handles (linear, einsum, norms, interpolation) stay as they are. The total is checked
    # against torch.utils.flop_counter in the tests.
    analysis.set_op_handle(**{k: recorded(k, h) for k, h in handles.items()})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_op = analysis.by_operator()
        uncounted = Counter(analysis.unsupported_ops())
    counts = Counter({k: int(v) for k, v in by_op.items() if v})
    return _Trace(counts=counts, ops=seen, uncounted=uncounted)


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


def count_macs(
    model: nn.Module,
    shape: Sequence[int],
    *,
    method: str = "auto",
    card: ModelCard | None = None,
) -> MacCount:
    """MACs of ``model`` on an input of ``shape`` (N, C, h, w), counted by fvcore.

    ``method``: ``"trace"`` traces at ``shape`` (runs the model once: slow on CPU for big inputs),
    ``"extrapolate"`` counts at small probe sizes and extrapolates where verified exact (see the
    module docstring), ``"auto"`` traces small inputs (<= 64x64 LR) and extrapolates larger ones.
    A failed verification falls back to tracing at ``shape``; ``method`` in the result says which.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) <= 0:
        raise ProfilingError(f"input shape must be (N, C, h, w) with positive sizes, got {shape}")
    if method not in ("auto", "trace", "extrapolate"):
        raise ProfilingError(f"unknown MAC counting method {method!r} (auto, trace, extrapolate)")
    model = model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    n, c, h, w = shape
    if card is None:
        card = getattr(model, "srbench_card", None)

    def make(hh: int, ww: int) -> torch.Tensor:
        return torch.rand(n, c, hh, ww, generator=torch.Generator().manual_seed(0)).to(device)

    def traced(note: str) -> MacCount:
        t = _fvcore_trace(model, make(h, w))
        counts = dict(t.counts)
        check = _mac_check(_flop_counter_macs(model, shape), counts)
        return MacCount(shape, counts, dict(t.ops), dict(t.uncounted), note, check)

    probes = _probe_sizes(card, c)
    if method == "trace" or (method == "auto" and h * w <= _SMALL_PIXELS):
        return traced(f"fvcore trace at LR {w}x{h}")

    traces = [_fvcore_trace(model, make(ph, pw)) for ph, pw in probes]
    categories = sorted(set().union(*(t.counts for t in traces)))
    counts: dict[str, int] = {}
    failure = None
    for cat in categories:
        basis = _CATEGORY_BASIS.get(cat, _basis)
        rows = [basis(ph, pw) for ph, pw in probes]
        k = len(rows[0])
        values = [t.counts.get(cat, 0) for t in traces]
        # Fit on the first k probes that determine the polynomial, verify on the others.
        coef, fit = None, ()
        for fit in itertools.combinations(range(len(rows)), k):
            coef = _solve([rows[i] for i in fit], [values[i] for i in fit])
            if coef is not None:
                break
        checks = [i for i in range(len(rows)) if i not in fit]
        if coef is None or not checks or any(_predict(coef, rows[i]) != values[i] for i in checks):
            failure = f"category {cat!r} does not fit its polynomial in h, w on the probes"
            break
        at_target = _predict(coef, basis(h, w))
        if at_target.denominator != 1:
            failure = f"category {cat!r} extrapolates to a non-integer count"
            break
        counts[cat] = int(at_target)
    uncounted = Counter()
    for t in traces:
        uncounted |= t.uncounted
    if failure is None:
        check = _mac_check(_flop_counter_macs(model, shape), counts)
        if check.get("status") == "ok" and not check["matches"]:
            failure = "extrapolated MACs differ from FlopCounterMode at the requested size"
    if failure is not None:
        return traced(f"fvcore trace at LR {w}x{h} (extrapolation refused: {failure})")
    sizes = ", ".join(f"{pw}x{ph}" for ph, pw in probes)
    return MacCount(
        shape,
        counts,
        dict(traces[0].ops),
        dict(uncounted),
        f"fvcore at LR probes {sizes}; every category fitted exactly to a*h*w + b*h^2*w + "
        f"c*h*w^2 on three probes (per-output transposed-conv counts: a*h*w + b*h + c*w + d on "
        f"four), verified on the others, extrapolated to LR {w}x{h}",
        check,
    )


# ------------------------------------------------------------------------------------------------
# Devices and precision modes
# ------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device) -> torch.device:
    """The requested device, where it exists; a GPU request on a machine without one is not an
    error here (profiling then reports parameters and MACs, and latency as "not measured")."""
    from srbench.devices import DeviceError
    from srbench.devices import resolve_device as resolve

    try:
        return resolve(device)
    except DeviceError:
        dev = torch.device(str(device).strip().lower()) if "cuda" in str(device).lower() else None
        if dev is None:
            raise
        return dev


@dataclass(frozen=True)
class PrecisionMode:
    name: str  # fp32, tf32, fp16, bf16
    label: str  # what tables show, e.g. "bf16-autocast (cpu)"
    autocast_dtype: torch.dtype | None
    channels_last: bool
    tf32: bool

    @contextlib.contextmanager
    def applied(self, device: torch.device) -> Iterator[None]:
        """TF32 flags set (and restored) and autocast entered for the duration."""
        stack = contextlib.ExitStack()
        if device.type == "cuda":
            old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = self.tf32
            torch.backends.cudnn.allow_tf32 = self.tf32

            def restore() -> None:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old

            stack.callback(restore)
        if self.autocast_dtype is not None:
            stack.enter_context(torch.autocast(device.type, dtype=self.autocast_dtype))
        with stack:
            yield


def resolve_precision(precision: str, device: torch.device) -> PrecisionMode:
    """The precision mode for ``device``; ProfilingError for a mode the device cannot run."""
    name = str(precision).strip().lower()
    if name not in PRECISIONS:
        raise ProfilingError(
            f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})"
        )
    if device.type == "cpu":
        if name == "fp32":  # in the layout `srbench run` evaluates in (srbench.inference)
            return PrecisionMode("fp32", "fp32, channels_last", None, True, False)
        if name == "bf16":
            return PrecisionMode("bf16", "bf16-autocast (cpu)", torch.bfloat16, True, False)
        if name == "tf32":
            raise ProfilingError(
                "precision 'tf32' needs a CUDA GPU (TF32 is a tensor-core mode); on cpu use fp32 "
                "or bf16"
            )
        raise ProfilingError(
            "precision 'fp16' (float16 autocast) is not supported on cpu; use fp32 or bf16 there"
        )
    if name == "fp32":
        return PrecisionMode("fp32", "fp32 (TF32 off)", None, False, False)
    if name == "tf32":
        return PrecisionMode("tf32", "tf32 (fp32 with TF32 matmul/conv)", None, False, True)
    if name == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ProfilingError(f"precision 'bf16' is not supported by this GPU ({device})")
    dtype = torch.float16 if name == "fp16" else torch.bfloat16
    return PrecisionMode(name, f"{name}-autocast, channels_last", dtype, True, False)


# ------------------------------------------------------------------------------------------------
# Latency and memory
# ------------------------------------------------------------------------------------------------


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not available on every platform
        return None


def _summary(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median_ms": statistics.median(ordered),
        "iqr_ms": q3 - q1,
        "q1_ms": q1,
        "q3_ms": q3,
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def measure_latency(
    model: nn.Module,
    x: torch.Tensor,
    *,
    precision: PrecisionMode,
    repeats: int = 10,
    warmup: int = 2,
    budget_s: float | None = None,
    cudnn_benchmark: bool = False,
    min_repeats: int = 3,
) -> dict[str, Any]:
    """Time ``model(x)`` (batch 1) on ``x``'s device; returns the latency and memory record.

    Stops after ``repeats`` timed passes, or earlier once ``budget_s`` seconds of timed passes
    have been spent (never before ``min(min_repeats, repeats)`` passes).
    """
    if repeats < 1 or warmup < 0:
        raise ProfilingError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if budget_s is not None and not budget_s > 0:
        raise ProfilingError(f"the time budget must be positive, got {budget_s}")
    device = x.device
    cuda = device.type == "cuda"
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    old_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cudnn_benchmark
    times: list[float] = []
    stopped_by = "repeats"
    load_before = _load_average()
    memory: dict[str, Any]
    try:
        with torch.inference_mode(), precision.applied(device):
            try:
                for _ in range(warmup):
                    model(x)
                if cuda:
                    torch.cuda.synchronize(device)
                spent = 0.0
                for i in range(repeats):
                    if cuda:
                        start_ev = torch.cuda.Event(enable_timing=True)
                        end_ev = torch.cuda.Event(enable_timing=True)
                        start_ev.record()
                        model(x)
                        end_ev.record()
                        end_ev.synchronize()
                        elapsed = start_ev.elapsed_time(end_ev)
                    else:
                        start = time.perf_counter()
                        model(x)
                        elapsed = (time.perf_counter() - start) * 1e3
                    times.append(elapsed)
                    spent += elapsed / 1e3
                    if (
                        budget_s is not None
                        and spent >= budget_s
                        and i + 1 >= min(min_repeats, repeats)
                    ):
                        stopped_by = "budget" if i + 1 < repeats else "repeats"
                        break
                if cuda:
                    torch.cuda.synchronize(device)
                    torch.cuda.reset_peak_memory_stats(device)
                    before = torch.cuda.memory_allocated(device)
                    model(x)
                    torch.cuda.synchronize(device)
                    peak = torch.cuda.max_memory_allocated(device)
                    memory = {
                        "status": "measured",
                        "method": "torch.cuda.reset_peak_memory_stats + max_memory_allocated "
                        "over one forward pass",
                        "peak_allocated_bytes": int(peak),
                        "allocated_before_bytes": int(before),
                        "peak_increase_bytes": int(peak - before),
                    }
                else:
                    memory = _cpu_peak_rss(lambda: model(x))
            except torch.cuda.OutOfMemoryError as exc:
                raise ProfilingError(f"out of GPU memory at input {tuple(x.shape)}") from exc
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ProfilingError(
                    f"forward pass failed at input {tuple(x.shape)} with {precision.label}: {first}"
                ) from exc
    finally:
        torch.backends.cudnn.benchmark = old_benchmark
    return {
        "status": "measured",
        "timer": "cuda events (synchronised)" if cuda else "time.perf_counter",
        **_summary(times),
        "times_ms": times,
        "repeats": len(times),
        "repeats_requested": repeats,
        "warmup": warmup,
        "budget_s": budget_s,
        "stopped_by": stopped_by,
        "threads": torch.get_num_threads(),
        # 1-minute load average before/after timing: other processes disturb CPU timings.
        "load_average_1min": [load_before, _load_average()],
        "batch": int(x.shape[0]),
        "memory": memory,
    }


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    raise OSError(f"no {field} in /proc/self/status")


def _cpu_peak_rss(forward: Callable[[], Any]) -> dict[str, Any]:
    """Peak resident memory of the process over one CPU forward pass: Linux resets the
    high-water mark (``VmHWM``) on ``echo 5 > /proc/self/clear_refs``. The peak includes the
    process's baseline (Python, torch, the weights), reported apart; memory the allocator kept
    from the warm-up passes is reused, so ``peak_increase_bytes`` is a lower bound."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_bytes("VmRSS")
    except OSError as exc:
        return {"status": "not measured", "reason": f"no Linux peak-RSS reset here ({exc})"}
    forward()
    peak = _status_bytes("VmHWM")
    return {
        "status": "measured",
        "method": "Linux VmHWM over one forward pass after clear_refs=5 (process peak RSS)",
        "peak_rss_bytes": peak,
        "rss_before_bytes": before,
        "peak_increase_bytes": max(0, peak - before),
    }


# ------------------------------------------------------------------------------------------------
# One model, one scale: every size and precision
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    if n < 1:
        raise ProfilingError(f"threads must be >= 1, got {n}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _run_threads(n: int | None) -> Iterator[dict[str, object]]:
    """torch's threads as ``srbench run`` would set them now (``n``, or the machine's idle
    cores), restored afterwards; yields the thread fields a profile record carries."""
    from srbench.threads import ThreadPolicy, restored_threads

    if n is not None and n < 1:
        raise ProfilingError(f"threads must be >= 1, got {n}")
    policy = ThreadPolicy(n)
    with restored_threads():
        policy.update()
        yield policy.provenance()


def _measured_as(mode: PrecisionMode, dev: torch.device, threads: dict[str, object]) -> dict:
    """How a profile record's latency was measured, in the terms of `srbench run`'s evaluation:
    the report takes latencies only from records whose layout and precision are run's."""
    from srbench.inference import memory_format, memory_format_name

    layout = torch.channels_last if mode.channels_last else torch.contiguous_format
    return {
        "memory_format": memory_format_name(layout),
        "as_run": mode.name == "fp32" and layout == memory_format(dev),
        "thread_policy": threads["thread_policy"],
        "idle_cores": threads["idle_cores"],
    }


def profile_model(
    name: str,
    scale: int,
    *,
    device: str | torch.device = "cpu",
    sizes: Sequence[str | SizeSpec] = DEFAULT_SIZES,
    precisions: Sequence[str] = ("fp32",),
    repeats: int = 10,
    warmup: int = 2,
    budget_s: float | None = None,
    threads: int | None = None,
    cudnn_benchmark: bool = False,
    measure: bool = True,
    mac_method: str = "auto",
) -> list[dict[str, Any]]:
    """Profile one registered model at one scale: one record per (size, precision).

    Every argument is checked before any work starts (bad sizes and precisions raise
    :class:`ProfilingError`). ``device="cuda"`` on a machine without CUDA still counts parameters
    and MACs, and records latency and memory as ``"not measured"``. ``measure=False`` skips timing.
    """
    try:
        card = get_card(name)
    except SRBenchError as exc:
        raise ProfilingError(str(exc)) from exc
    if scale not in card.scales:
        supported = ", ".join(f"x{s}" for s in card.scales)
        raise ProfilingError(
            f"model {card.name!r} does not support x{scale} (supported: {supported})"
        )
    dev = resolve_device(device)
    cuda_missing = dev.type == "cuda" and not torch.cuda.is_available()
    if measure and (repeats < 1 or warmup < 0):
        raise ProfilingError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if budget_s is not None and not budget_s > 0:
        raise ProfilingError(f"the time budget must be positive, got {budget_s}")
    specs = [s if isinstance(s, SizeSpec) else parse_size(s) for s in sizes]
    if not specs:
        raise ProfilingError("no sizes given")
    shapes = [lr_shape(card, scale, s) for s in specs]
    if not precisions:
        raise ProfilingError("no precisions given")
    modes = [resolve_precision(p, dev) for p in precisions]

    model = create_model(card.name, scale).eval()
    params = count_params(model)
    records: list[dict[str, Any]] = []
    with _run_threads(threads) as thread_fields:
        env = environment("cpu" if cuda_missing or dev.type == "cpu" else dev)
        if not cuda_missing:
            model = model.to(dev)
        for spec, shape in zip(specs, shapes, strict=True):
            _, c, h, w = shape
            macs = count_macs(model, shape, method=mac_method, card=card)
            x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
            for mode in modes:
                if not measure:
                    latency: dict[str, Any] = {"status": "not measured", "reason": "not requested"}
                elif cuda_missing:
                    latency = {
                        "status": "not measured",
                        "reason": "no CUDA device on this machine (torch.cuda.is_available() is "
                        "False); no CPU number is reported under a GPU label",
                        "memory": {"status": "not measured", "reason": "no CUDA device"},
                    }
                else:
                    latency = measure_latency(
                        copy.deepcopy(model) if mode.channels_last else model,
                        x.to(dev),
                        precision=mode,
                        repeats=repeats,
                        warmup=warmup,
                        budget_s=budget_s,
                        cudnn_benchmark=cudnn_benchmark,
                    )
                memory = latency.pop("memory", {"status": "not measured", "reason": "no timing"})
                records.append(
                    {
                        "schema": SCHEMA,
                        "model": card.name,
                        "scale": scale,
                        "size": spec.label,
                        "size_kind": spec.kind,
                        "size_description": spec.describe(scale),
                        "lr_height": h,
                        "lr_width": w,
                        "hr_height": h * scale,
                        "hr_width": w * scale,
                        "input_shape": list(shape),
                        "channels": c,
                        "device": str(dev),
                        "device_type": dev.type,
                        "precision": mode.name,
                        "precision_label": mode.label,
                        "autocast_dtype": str(mode.autocast_dtype).replace("torch.", "")
                        if mode.autocast_dtype
                        else None,
                        "channels_last": mode.channels_last,
                        **_measured_as(mode, dev, thread_fields),
                        "tf32": mode.tf32,
                        "cudnn_benchmark": cudnn_benchmark if dev.type == "cuda" else None,
                        **{k: v for k, v in params.items()},
                        "network_macs": macs.network_macs,
                        "bicubic_macs": macs.bicubic_macs,
                        "total_macs": macs.total_macs,
                        "literature_macs": macs.literature_macs,
                        "macs": macs.to_dict(),
                        "latency": latency,
                        "latency_median_ms": latency.get("median_ms"),
                        "peak_memory": memory,
                        "threads": torch.get_num_threads(),
                        "env": env,
                        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    }
                )
    return records
