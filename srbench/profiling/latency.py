"""Latency and peak memory of one forward pass (batch 1).

CPU: ``time.perf_counter`` with the thread count recorded; CUDA: CUDA events, synchronised. Peak
memory on CUDA: ``reset_peak_memory_stats`` / ``max_memory_allocated``; on the CPU the process's
peak resident memory over one forward (Linux ``VmHWM`` after ``clear_refs``), its baseline apart.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import ProfilingError
from srbench.precision import Precision


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


def _one_pass_ms(forward: Callable[[], Any], cuda: bool) -> float:
    if cuda:
        start_ev = torch.cuda.Event(enable_timing=True)
        end_ev = torch.cuda.Event(enable_timing=True)
        start_ev.record()
        forward()
        end_ev.record()
        end_ev.synchronize()
        return start_ev.elapsed_time(end_ev)
    start = time.perf_counter()
    forward()
    return (time.perf_counter() - start) * 1e3


def _timed_passes(
    forward: Callable[[], Any], cuda: bool, repeats: int, budget_s: float | None, min_repeats: int
) -> tuple[list[float], str]:
    """Times of up to ``repeats`` passes in ms, and what stopped them (repeats or budget)."""
    times: list[float] = []
    spent = 0.0
    for i in range(repeats):
        elapsed = _one_pass_ms(forward, cuda)
        times.append(elapsed)
        spent += elapsed / 1e3
        if budget_s is not None and spent >= budget_s and i + 1 >= min(min_repeats, repeats):
            return times, "budget" if i + 1 < repeats else "repeats"
    return times, "repeats"


def measure_latency(
    model: nn.Module,
    x: torch.Tensor,
    *,
    precision: Precision,
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

    def forward() -> Any:
        return model(x)

    old_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cudnn_benchmark
    load_before = _load_average()
    try:
        with torch.inference_mode(), precision.applied(device):
            try:
                for _ in range(warmup):
                    forward()
                if cuda:
                    torch.cuda.synchronize(device)
                times, stopped_by = _timed_passes(forward, cuda, repeats, budget_s, min_repeats)
                memory = _cuda_peak(forward, device) if cuda else _cpu_peak_rss(forward)
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


def _cuda_peak(forward: Callable[[], Any], device: torch.device) -> dict[str, Any]:
    """The CUDA allocator's peak over one forward pass."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    forward()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {
        "status": "measured",
        "method": "torch.cuda.reset_peak_memory_stats + max_memory_allocated over one forward pass",
        "peak_allocated_bytes": int(peak),
        "allocated_before_bytes": int(before),
        "peak_increase_bytes": int(peak - before),
    }


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    # A kernel control file, not a file srbench makes: written in place, never atomically.
    with open("/proc/self/clear_refs", "w") as control:
        control.write("5")


def _cpu_peak_rss(forward: Callable[[], Any]) -> dict[str, Any]:
    """Peak resident memory of the process over one CPU forward pass: Linux resets the
    high-water mark (``VmHWM``) on ``echo 5 > /proc/self/clear_refs``. The peak includes the
    process's baseline (Python, torch, the weights), reported apart; memory the allocator kept
    from the warm-up passes is reused, so ``peak_increase_bytes`` is a lower bound."""
    try:
        _reset_peak_rss()
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
