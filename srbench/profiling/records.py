"""One model at one scale: every size and precision profiled into ``srbench.profile/1`` records."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import torch

from srbench.cost_cache import cost_key, latency_key
from srbench.devices import requested_device
from srbench.errors import ProfilingError, SRBenchError
from srbench.precision import Precision, inference_precision
from srbench.profiling.costs import MacCount, count_macs, param_counts
from srbench.profiling.latency import measure_latency
from srbench.profiling.sizes import DEFAULT_SIZES, SizeSpec, lr_shape, parse_size
from srbench.provenance import environment
from srbench.registry import ModelCard, create_model, get_card

SCHEMA = "srbench.profile/1"


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


def _measured_as(mode: Precision, dev: torch.device, threads: dict[str, object]) -> dict:
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


def _card(name: str, scale: int) -> ModelCard:
    try:
        card = get_card(name)
    except SRBenchError as exc:
        raise ProfilingError(str(exc)) from exc
    if scale not in card.scales:
        supported = ", ".join(f"x{s}" for s in card.scales)
        raise ProfilingError(
            f"model {card.name!r} does not support x{scale} (supported: {supported})"
        )
    return card


_NO_CUDA = {
    "status": "not measured",
    "reason": "no CUDA device on this machine (torch.cuda.is_available() is False); no CPU number "
    "is reported under a GPU label",
    "memory": {"status": "not measured", "reason": "no CUDA device"},
}


def _record(
    spec: SizeSpec,
    shape: tuple[int, int, int, int],
    mode: Precision,
    macs: MacCount,
    latency: dict[str, Any],
    run: dict[str, Any],
) -> dict[str, Any]:
    """One ``srbench.profile/1`` record; ``run`` holds what every record of the call shares
    (card, scale, dev, params, env, thread_fields, cudnn_benchmark)."""
    _, c, h, w = shape
    card, scale, dev = run["card"], run["scale"], run["dev"]
    memory = latency.pop("memory", {"status": "not measured", "reason": "no timing"})
    return {
        "schema": SCHEMA,
        "model": card.name,
        "scale": scale,
        "size": spec.label,
        "size_kind": spec.kind,
        "size_description": spec.describe(scale),
        # The code the counts and the latency were made by (srbench.shown_costs: the report shows
        # only today's, and says so of records made before profiles carried these keys).
        "cost_key": cost_key(card.name, scale, spec.label),
        "latency_key": latency_key(card.name, scale, spec.label),
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
        **_measured_as(mode, dev, run["thread_fields"]),
        "tf32": mode.tf32,
        "cudnn_benchmark": run["cudnn_benchmark"] if dev.type == "cuda" else None,
        **run["params"],
        "network_macs": macs.network_macs,
        "bicubic_macs": macs.bicubic_macs,
        "total_macs": macs.total_macs,
        "literature_macs": macs.literature_macs,
        "macs": macs.to_dict(),
        "latency": latency,
        "latency_median_ms": latency.get("median_ms"),
        "peak_memory": memory,
        "threads": torch.get_num_threads(),
        "env": run["env"],
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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
    card = _card(name, scale)
    dev = requested_device(device)
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
    modes = [inference_precision(p, dev) for p in precisions]

    model = create_model(card.name, scale).eval()
    run: dict[str, Any] = {"card": card, "scale": scale, "dev": dev, "params": param_counts(model)}
    run["cudnn_benchmark"] = cudnn_benchmark
    records: list[dict[str, Any]] = []
    with _run_threads(threads) as thread_fields:
        run["thread_fields"] = thread_fields
        run["env"] = environment("cpu" if cuda_missing or dev.type == "cpu" else dev)
        if not cuda_missing:
            model = model.to(dev)
        for spec, shape in zip(specs, shapes, strict=True):
            macs = count_macs(model, shape, method=mac_method, card=card)
            x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
            for mode in modes:
                if not measure:
                    latency: dict[str, Any] = {"status": "not measured", "reason": "not requested"}
                elif cuda_missing:
                    latency = copy.deepcopy(_NO_CUDA)
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
                records.append(_record(spec, shape, mode, macs, latency, run))
    return records
