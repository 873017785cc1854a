"""MACs per operator: srbench's fvcore handles, the categories they count into, and one trace.

Through fvcore's public API only (:class:`fvcore.nn.FlopCountAnalysis` with ``set_op_handle``):
an op given a handle here is counted even where fvcore would skip it silently (relu, clamp, cat,
...), so every op srbench knows gets its documented cost (:data:`OP_COSTS`); any other op is
reported by ``unsupported_ops()`` and listed, never dropped silently.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from srbench.errors import ProfilingError

# Inputs up to this many LR pixels are traced directly by count_macs(method="auto").
SMALL_PIXELS = 64 * 64

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
class Trace:
    """What one fvcore trace counted."""

    counts: Counter  # category -> count
    ops: Counter  # op kind -> occurrences (every op that has a handle)
    uncounted: Counter  # op kind -> occurrences (no handle: listed, not counted)


def fvcore_trace(model: nn.Module, x: torch.Tensor) -> Trace:
    """Count ``model(x)`` with srbench's handles (runs the model once)."""
    # Tracing runs the model once. Small inputs run on one thread: on a busy machine the thread
    # pool's synchronisation costs more than these tiny kernels (5x faster on 2 loaded cores).
    with _threads(1 if x.shape[-1] * x.shape[-2] <= SMALL_PIXELS else None):
        return _fvcore_trace_impl(model, x)


def _fvcore_trace_impl(model: nn.Module, x: torch.Tensor) -> Trace:
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
    return Trace(counts=counts, ops=seen, uncounted=uncounted)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
