"""Training throughput: the full loop's patches/s next to the bare model step's."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from srbench.data import HRImage
from srbench.precision import Precision, training_precision
from srbench.registry import create_model, get_card
from srbench.training.data import PatchSampler, TrainingSet, build_training_set, synthetic_images
from srbench.training.steps import TrainStep


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_benchmark(
    model: str | nn.Module,
    scale: int = 2,
    batch: int = 16,
    patch: int = 48,
    precision: str = "auto",
    steps: int = 20,
    warmup: int = 5,
    *,
    repeats: int = 3,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    images: Sequence[HRImage] | None = None,
    training_set: TrainingSet | None = None,
    compile: bool = False,
    lr: float = 1e-4,
) -> dict[str, Any]:
    """Patches/s of the full training loop (patch sampling + step) and of the bare model step.

    The bare step is forward, L1, backward and an Adam update on random tensors already on the
    device; the loop step samples its batch from an in-memory training set first (``images`` or
    ``training_set``, else small synthetic images). Both use separate copies of the same model
    and the same precision, and are measured in the same process, interleaved: ``repeats`` runs
    of ``steps`` timed steps each after ``warmup`` untimed ones; the medians are reported with
    ``ratio = loop / bare`` (1.0: sampling costs nothing).
    """
    dev = torch.device(device)
    net, name, n_channels = _bench_model(model, scale, overrides)
    prec = training_precision(precision, dev)
    net = net.to(dev).train()
    if prec.channels_last:
        net = net.to(memory_format=torch.channels_last)
    # separate copies of the same model, each with its own optimizer
    step = {
        kind: _train_step(copy.deepcopy(net) if kind == "bare" else net, compile, lr, dev, prec)
        for kind in ("loop", "bare")
    }
    if training_set is None:
        if images is None:
            images = synthetic_images(8, max(96, 2 * patch * scale))
        training_set = build_training_set(
            images, scale, "y" if n_channels == 1 else "rgb", device=dev
        )
    sampler = PatchSampler(training_set.to(dev), patch, batch, seed=0)
    gen = torch.Generator(device=dev).manual_seed(0)
    lr_fixed = torch.rand((batch, n_channels, patch, patch), generator=gen, device=dev)
    hr_fixed = torch.rand(
        (batch, n_channels, patch * scale, patch * scale), generator=gen, device=dev
    )

    def run_loop(n: int) -> None:
        for _ in range(n):
            step["loop"](*sampler.sample())

    def run_bare(n: int) -> None:
        for _ in range(n):
            step["bare"](lr_fixed, hr_fixed)

    times = _time_interleaved({"loop": run_loop, "bare": run_bare}, steps, warmup, repeats, dev)
    rates = {k: [steps * batch / t for t in v] for k, v in times.items()}
    loop_rate = statistics.median(rates["loop"])
    bare_rate = statistics.median(rates["bare"])
    return {
        "model": name,
        "scale": scale,
        "batch": batch,
        "patch": patch,
        "precision": prec.name,
        "precision_reason": prec.reason,
        "device": str(dev),
        "compile": compile,
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "loop_patches_per_s": loop_rate,
        "bare_patches_per_s": bare_rate,
        "ratio": loop_rate / bare_rate,
        "loop_patches_per_s_runs": rates["loop"],
        "bare_patches_per_s_runs": rates["bare"],
        "loop_ms_per_step": 1e3 * statistics.median(times["loop"]) / steps,
        "bare_ms_per_step": 1e3 * statistics.median(times["bare"]) / steps,
    }


def _bench_model(
    model: str | nn.Module, scale: int, overrides: dict[str, Any] | None
) -> tuple[nn.Module, str, int]:
    """The network to time, its name and its input channels (1 for a Y-channel model)."""
    if isinstance(model, str):
        card = get_card(model)
        torch.manual_seed(0)
        net = create_model(card.name, scale, **(overrides or {}))
        return net, card.name, 1 if card.input_channels == "y" else 3
    own_card = getattr(model, "srbench_card", None)
    name = own_card.name if own_card else type(model).__name__
    channels = own_card.input_channels if own_card else "rgb"
    return model, name, 1 if channels == "y" else 3


def _train_step(
    net: nn.Module, compile: bool, lr: float, dev: torch.device, prec: Precision
) -> TrainStep:
    from timm.optim import create_optimizer_v2

    optimizer = create_optimizer_v2(net, opt="adam", lr=lr)
    # torch.compile of a Module returns a Module (OptimizedModule); its stub says a callable
    runner = cast(nn.Module, torch.compile(net)) if compile else net
    return TrainStep(runner, optimizer, F.l1_loss, device=dev, precision=prec)


def _time_interleaved(
    runners: dict[str, Callable[[int], None]],
    steps: int,
    warmup: int,
    repeats: int,
    dev: torch.device,
) -> dict[str, list[float]]:
    """Seconds per run of ``steps`` steps for each runner: ``warmup`` untimed steps each, then
    ``repeats`` rounds with the runners taking turns (so drift in the machine hits all alike)."""
    for run in runners.values():
        run(warmup)
    _sync(dev)
    times: dict[str, list[float]] = {kind: [] for kind in runners}
    for _ in range(repeats):
        for kind, run in runners.items():
            _sync(dev)
            t0 = time.perf_counter()
            run(steps)
            _sync(dev)
            times[kind].append(time.perf_counter() - t0)
    return times
