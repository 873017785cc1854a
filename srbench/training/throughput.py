"""Training throughput: the full loop's patches/s next to the bare model step's."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srbench.data import HRImage
from srbench.precision import training_precision
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
    from timm.optim import create_optimizer_v2

    dev = torch.device(device)
    if isinstance(model, str):
        card = get_card(model)
        torch.manual_seed(0)
        net = create_model(card.name, scale, **(overrides or {}))
        name, channels = card.name, card.input_channels
    else:
        net = model
        own_card = getattr(model, "srbench_card", None)
        name = own_card.name if own_card else type(model).__name__
        channels = own_card.input_channels if own_card else "rgb"
    n_channels = 1 if channels == "y" else 3
    prec = training_precision(precision, dev)
    net = net.to(dev).train()
    if prec.channels_last:
        net = net.to(memory_format=torch.channels_last)
    nets = {"loop": net, "bare": copy.deepcopy(net)}
    compiled: dict[str, Any] = {k: torch.compile(v) if compile else v for k, v in nets.items()}
    optimizers = {k: create_optimizer_v2(v, opt="adam", lr=lr) for k, v in nets.items()}
    steps_fn = {
        k: TrainStep(compiled[k], optimizers[k], F.l1_loss, device=dev, precision=prec)
        for k in nets
    }

    if training_set is None:
        if images is None:
            side = max(96, 2 * patch * scale)
            images = synthetic_images(8, side)
        training_set = build_training_set(
            images, scale, "y" if n_channels == 1 else "rgb", device=dev
        )
    else:
        training_set = training_set.to(dev)
    sampler = PatchSampler(training_set, patch, batch, seed=0)
    gen = torch.Generator(device=dev).manual_seed(0)
    lr_fixed = torch.rand((batch, n_channels, patch, patch), generator=gen, device=dev)
    hr_fixed = torch.rand(
        (batch, n_channels, patch * scale, patch * scale), generator=gen, device=dev
    )

    def run_loop(n: int) -> None:
        for _ in range(n):
            lr_b, hr_b = sampler.sample()
            steps_fn["loop"](lr_b, hr_b)

    def run_bare(n: int) -> None:
        for _ in range(n):
            steps_fn["bare"](lr_fixed, hr_fixed)

    runners = {"loop": run_loop, "bare": run_bare}
    for kind in ("loop", "bare"):
        runners[kind](warmup)
    _sync(dev)
    times: dict[str, list[float]] = {"loop": [], "bare": []}
    for _ in range(repeats):
        for kind in ("loop", "bare"):
            _sync(dev)
            t0 = time.perf_counter()
            runners[kind](steps)
            _sync(dev)
            times[kind].append(time.perf_counter() - t0)
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
