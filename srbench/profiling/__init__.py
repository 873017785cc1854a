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

Modules: :mod:`~srbench.profiling.sizes` (size conventions, LR shapes),
:mod:`~srbench.profiling.ops` (fvcore handles and categories), :mod:`~srbench.profiling.costs`
(parameters, MACs, the extrapolation), :mod:`~srbench.profiling.latency` (latency, peak memory),
:mod:`~srbench.profiling.records` (one model x scale into records). Precision modes are
:mod:`srbench.precision`'s. Library code: nothing here prints. Errors a user can fix raise
:class:`~srbench.errors.ProfilingError`.
"""

from __future__ import annotations

from srbench.profiling.costs import MacCount, count_macs, param_counts, trainable_params
from srbench.profiling.latency import measure_latency
from srbench.profiling.ops import MAC_CATEGORIES, NON_MAC_CATEGORIES, OP_COSTS
from srbench.profiling.records import SCHEMA, profile_model
from srbench.profiling.sizes import DEFAULT_SIZES, SizeSpec, input_channels, lr_shape, parse_size

__all__ = [
    "DEFAULT_SIZES",
    "MAC_CATEGORIES",
    "NON_MAC_CATEGORIES",
    "OP_COSTS",
    "SCHEMA",
    "MacCount",
    "SizeSpec",
    "count_macs",
    "input_channels",
    "lr_shape",
    "measure_latency",
    "param_counts",
    "parse_size",
    "profile_model",
    "trainable_params",
]
