"""The training loop: recipe -> model, data, optimizer, schedule, EMA -> checkpoints and weights.

:func:`iter_train` is a generator of :class:`TrainEvent` (it never prints); :func:`train` runs it
to the end. A run lives in ``<output_dir>/<run name>/``:

* ``recipe.yaml`` -- the resolved recipe;
* ``train_log.jsonl`` -- one line per log interval (``kind: "train"``: iteration, per-step losses,
  mean loss, learning rate, patches/s) and per validation (``kind: "val"``: PSNR/SSIM per
  dataset, with the protocol);
* ``checkpoint.pt`` -- one ``torch.save`` of model, EMA, optimizer and scheduler states, the patch
  samplers' and torch's RNG states, the iteration, the recipe hash and the training seconds so
  far; written atomically and read back with ``torch.load(weights_only=True)``;
* ``weights.safetensors`` (``srbench.weights.save_weights``: usable by ``srbench run --weights``
  for models without constructor overrides) and ``run.json`` at the end. With EMA enabled, the
  final weights and the validations are the EMA model's.

A loss above ``DIVERGED_LOSS`` sends the run back to its last periodic checkpoint at half the rate
(:mod:`~srbench.training.divergence`, at most three times; each listed in ``run.json`` as
``lr_backoffs``).

Resuming (``resume=True``) restores all of that, so the losses and weights after a resume equal
those of an uninterrupted run (bit for bit on CPU; the tests check it).

Precision: ``auto`` picks by the device's capabilities (``srbench.precision``: bf16
autocast + channels_last where the hardware multiplies bf16, fp32 + channels_last on AVX-512, plain
fp32 otherwise); master weights stay fp32. ``compile`` wraps the (DDP) model in ``torch.compile``.

``init_from`` starts a run from a finished run's weights (x3/x4 from x2: tensors whose shape
differs, the upsampler, keep their fresh initialisation and are listed in ``run.json``);
``multiscale: [2, 3, 4]`` trains one network for several scales (VDSR), one scale per iteration
in turn, each with its own patch sampler.

The pieces live beside it: :mod:`~srbench.training.steps` (loss, optimizer, schedule, one step),
:mod:`~srbench.training.checkpoint` (the run folder's checkpoint and log),
:mod:`~srbench.training.divergence` (what a diverged run does),
:mod:`~srbench.training.throughput` (patches/s) and :mod:`~srbench.training.evaluate`
(validation through the runner's loop).
"""

from __future__ import annotations

import functools
import gc
import json
import statistics
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.data import HRImage
from srbench.files import atomic_write
from srbench.precision import Precision, training_precision
from srbench.profiling import trainable_params
from srbench.registry import ModelCard, get_card
from srbench.training import distributed
from srbench.training.build import (
    build_models,
    build_samplers,
    check_start,
    prepare_training_set,
    train_steps,
)
from srbench.training.checkpoint import (
    CHECKPOINT_FILE,
    LOG_FILE,
    RAW_WEIGHTS_FILE,
    WEIGHTS_FILE,
    TrainingError,
    TrainingParts,
    append_log,
    is_branch_point,
    keep_as_rewind,
    load_checkpoint,
    read_checkpoint,
    read_log,
    save_checkpoint,
    snapshot_name,
    trim_log,
)
from srbench.training.data import (
    TrainingSet,
)
from srbench.training.divergence import DIVERGED_LOSS, Diverged, back_off
from srbench.training.evaluate import Validation
from srbench.training.naming import run_name
from srbench.training.recipe import Recipe, check_model, dump_recipe
from srbench.training.segments import cpu_seconds, machine_of, rounded, this_segment
from srbench.training.steps import (
    TrainStep,
    WSDScheduler,
    build_optimizer,
    build_scheduler,
    make_loss,
)
from srbench.training.throughput import train_benchmark

# Where these names were defined before the loop was split (callers import them from here).
__all__ = [
    "CHECKPOINT_FILE",
    "LOG_FILE",
    "RAW_WEIGHTS_FILE",
    "WEIGHTS_FILE",
    "TrainEvent",
    "TrainStep",
    "TrainingError",
    "WSDScheduler",
    "build_optimizer",
    "build_scheduler",
    "is_branch_point",
    "iter_train",
    "make_loss",
    "prepare_training_set",
    "read_checkpoint",
    "read_log",
    "save_checkpoint",
    "train",
    "train_benchmark",
]


@dataclass
class TrainEvent:
    """What the loop tells its caller. ``kind``: start, log, validate, checkpoint, backoff (a
    divergence: the run goes back to its last checkpoint at a lower rate, then starts again), done."""

    kind: str
    iteration: int
    total: int
    info: dict[str, Any] = field(default_factory=dict)


def iter_train(
    recipe: Recipe,
    *,
    output_dir: str | Path = "runs",
    data_root: str | Path | None = None,
    device: str = "cpu",
    resume: bool = False,
    compile: bool | None = None,
    stop_after: int | None = None,
    images: Sequence[HRImage] | None = None,
    training_set: TrainingSet | None = None,
    snapshots: Sequence[int] = (),
    snapshot_dir: str | Path | None = None,
    stop: threading.Event | None = None,
) -> Iterator[TrainEvent]:
    """Train ``recipe`` (see the module docstring); yields events, never prints.

    ``stop_after``: stop (with a checkpoint) after that many iterations in total, as if
    interrupted -- ``resume=True`` continues it. ``stop``: once set (e.g. by a signal handler),
    the run stops the same way after the iteration under way: nothing trained is lost.
    ``images``/``training_set``: use these instead of the recipe's folders. Under ``torchrun``
    (or :func:`distributed.spawn_local`) this trains with DDP. ``snapshots``: iterations after which a copy of the checkpoint is kept as
    ``<snapshot_dir>/it<iteration>.pt`` (branch points of a budget ladder, ``training.ladder``).
    """
    check_model(recipe)
    from srbench.devices import resolve_device

    resolve_device(device)  # a one-line error for a device this machine lacks
    ctx = distributed.setup(device)
    try:
        setup = functools.partial(
            _setup,
            recipe,
            ctx=ctx,
            output_dir=Path(output_dir),
            data_root=data_root,
            device=distributed.rank_device(device, ctx),
            compile=recipe.compile if compile is None else compile,
            stop_after=stop_after,
            images=images,
            training_set=training_set,
            snapshots=frozenset(snapshots),
            snapshot_dir=Path(snapshot_dir) if snapshot_dir is not None else None,
        )
        run = yield from _segments(setup, resume, stop)
        if run.last < run.total:
            info = {"finished": False, "run_dir": str(run.run_dir)}
            yield TrainEvent("done", run.last, run.total, info)
            return
        yield from _finish(run)
    finally:
        distributed.teardown(ctx)


def _segments(
    setup: Callable[..., _Run], resume: bool, stop: threading.Event | None
) -> Generator[TrainEvent, None, _Run]:
    """Set up and train until the run's last iteration; after a divergence, back off
    (:func:`back_off`) and set up again from the checkpoint it went back to. Returns the run."""
    backoff: dict[str, Any] | None = None
    init_info: dict[str, Any] = {}  # the first setup's (init_from), kept across backoffs
    while True:
        run = setup(resume=resume or backoff is not None)
        if backoff is not None:
            run.init_info = init_info  # a resume's setup no longer knows where it started
            if run.ctx.is_main:  # after _setup trimmed the log to the restart
                append_log(run.run_dir, {"kind": "backoff", "iteration": run.start, **backoff})
        init_info = run.init_info
        yield TrainEvent("start", run.start, run.total, run.start_info())
        try:
            yield from _steps(run, stop)
            return run
        except Diverged as diverged:
            backoff = back_off(run, diverged)
            total = run.total
            del run  # before the next setup builds a second model, optimizer and data
            gc.collect()
            yield TrainEvent("backoff", diverged.iteration, total, backoff)


def train(recipe: Recipe, **kwargs: Any) -> dict[str, Any]:
    """Run :func:`iter_train` to the end; returns the ``done`` info plus every step's loss
    (from where it started, or from where a divergence went back to if earlier)."""
    losses: list[float] = []
    validations: list[dict] = []
    info: dict[str, Any] = {}
    base: int | None = None  # losses[i] is iteration base + i + 1
    for event in iter_train(recipe, **kwargs):
        if event.kind == "start" and base is None:
            base = event.iteration
        if event.kind == "log":
            losses.extend(event.info["losses"])
        elif event.kind == "backoff":  # the steps after the checkpoint it goes back to are undone
            base = min(base or 0, event.info["restored"])
            del losses[event.info["restored"] - base :]
        elif event.kind == "validate":
            validations.append({"iteration": event.iteration, **event.info})
        elif event.kind in ("start", "done"):
            info.update(event.info)
    info["losses"] = losses
    info["validations"] = validations
    return info


# ----------------------------------------------------------------------------------------------
# Setup: model, optimizer, schedule, EMA, data, restored state
# ----------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """One run's state: built by :func:`_setup`, advanced by :func:`_steps`."""

    recipe: Recipe
    ctx: distributed.DistContext
    card: ModelCard
    name: str
    run_dir: Path
    device: torch.device
    precision: Precision
    scales: tuple[int, ...]
    parts: TrainingParts  # model (the first scale's), optimizer, schedule, samplers, EMA
    models: dict[int, nn.Module]  # per scale; they share the first one's parameters
    steps: dict[int, TrainStep]
    validation: Validation
    start: int  # the iteration it starts (or resumes) at
    last: int  # the iteration it stops after (``stop_after``, or where a stop request came)
    train_seconds: float  # before this segment (a resumed run's earlier segments)
    snapshots: frozenset[int]
    snapshot_dir: Path | None
    data_info: dict[str, Any]  # for the start event
    init_info: dict[str, Any]  # init_from: where from, what was copied (start event, run.json)
    lr_scale: float = 1.0  # the schedule's factor after divergences (BACKOFF_FACTOR each)
    backoffs: tuple[dict[str, Any], ...] = ()  # each divergence: where, loss, restored, lr_scale
    on_disk: int | None = None  # the iteration checkpoint.pt holds
    earlier: tuple[dict[str, Any], ...] = ()  # the segments before this one (checkpoint's)
    machine: str = ""  # where this segment trains (machine_of)
    clock: tuple[float, float] = (0.0, 0.0)  # perf_counter, process_time at the segment's start
    spent: tuple[float, float] | None = None  # its wall and CPU seconds, once its loop ended

    def segments(self, iteration: int) -> tuple[dict[str, Any], ...]:
        """Which iterations up to ``iteration`` trained where and how, in how many wall and CPU
        seconds (:mod:`srbench.training.segments`): the checkpoint's earlier segments, then this
        one (a resumed or branched run may have trained elsewhere, e.g. a trunk on a GPU or on a
        CPU with bf16 arithmetic)."""
        where = (self.machine, str(self.device), self.precision.name)
        this = this_segment(self.start, iteration, where, self.clock, self.spent)
        return (*self.earlier, this) if iteration > self.start else self.earlier

    def precision_label(self) -> str:
        """``bf16``, or ``bf16+fp32`` when its segments trained in different precisions."""
        found = {str(x["precision"]) for x in self.segments(self.total) if x["precision"]}
        return "+".join(sorted(found)) or self.precision.name

    def periodic(self, iteration: int) -> bool:
        """Whether ``iteration`` is on the recipe's checkpoint grid (a divergence's rewind point)."""
        interval = self.recipe.checkpoint_interval
        return interval > 0 and iteration % interval == 0

    @property
    def total(self) -> int:
        return self.recipe.iterations

    @property
    def batch(self) -> int:
        return self.recipe.data.batch_size

    def start_info(self) -> dict[str, Any]:
        return {
            "run_name": self.name,
            "run_dir": str(self.run_dir),
            "model": self.card.name,
            "scale": self.recipe.scale,
            "scales": list(self.scales),
            "params": trainable_params(self.parts.model),
            **self.data_info,
            "device": str(self.device),
            "precision": self.precision.name,
            "precision_reason": self.precision.reason,
            "world_size": self.ctx.world_size,
            "per_rank_batch": self.batch // self.ctx.world_size,
            "resumed_from": self.start if self.start else None,
            "recipe_hash": self.recipe.hash,
            "lr_scale": self.lr_scale,
            **self.init_info,
        }

    def write_checkpoint(
        self, iteration: int, train_seconds: float, path: Path | None = None
    ) -> None:
        """``path`` (a snapshot), else checkpoint.pt -- whose periodic state moves to
        :data:`REWIND_FILE` first when a stop's checkpoint, off the grid, replaces it."""
        if path is None:
            if not self.periodic(iteration) and self.on_disk and self.periodic(self.on_disk):
                keep_as_rewind(self.run_dir)
            self.on_disk = iteration
        save_checkpoint(
            self.run_dir,
            iteration=iteration,
            recipe=self.recipe,
            parts=self.parts,
            train_seconds=train_seconds,
            path=path,
            lr_scale=self.lr_scale,
            backoffs=self.backoffs,
            segments=self.segments(iteration),
        )


def _setup(
    recipe: Recipe,
    *,
    ctx: distributed.DistContext,
    output_dir: Path,
    data_root: str | Path | None,
    device: torch.device,
    resume: bool,
    compile: bool,
    stop_after: int | None,
    images: Sequence[HRImage] | None,
    training_set: TrainingSet | None,
    snapshots: frozenset[int],
    snapshot_dir: Path | None,
) -> _Run:
    card = get_card(recipe.model)  # type: ignore[arg-type]
    name = run_name(recipe)
    run_dir = output_dir / name
    precision = training_precision(recipe.precision, device)
    scales = recipe.train_scales()
    state = check_start(recipe, ctx, run_dir, training_set, resume, snapshots, snapshot_dir)

    # Model, optimizer, schedule and EMA: the same on every rank (same seed).
    model, models, init_info = build_models(
        recipe, card, scales, device, precision, state, output_dir
    )
    optimizer = build_optimizer(model, recipe)
    scheduler = build_scheduler(optimizer, recipe)
    ema = None
    if recipe.ema.enabled:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema.decay, use_warmup=recipe.ema.warmup)

    # Data: decoded once, LR made once per scale, held on the device.
    t_data = time.perf_counter()
    samplers, data_info = build_samplers(
        recipe, card, scales, ctx, device, data_root=data_root, images=images,
        training_set=training_set,
    )  # fmt: skip
    data_info["data_seconds"] = time.perf_counter() - t_data

    parts = TrainingParts(model, optimizer, scheduler, samplers, ema)
    start, train_seconds, lr_scale, backoffs = 0, 0.0, 1.0, ()
    earlier: tuple[dict[str, Any], ...] = ()
    if resume and state is not None:
        start = load_checkpoint(run_dir, state, recipe=recipe, parts=parts)
        train_seconds = float(state.get("train_seconds", 0.0))
        lr_scale = float(state.get("lr_scale", 1.0))
        backoffs = tuple(state.get("backoffs", ()))
        earlier = tuple(state.get("segments", ()))
        if start and not earlier:  # written before checkpoints listed their segments
            earlier = (
                {"from": 0, "to": start, "machine": None, "device": None, "precision": None},
            )
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "recipe.yaml", dump_recipe(recipe))
        if start:
            trim_log(run_dir, start)
        elif (run_dir / LOG_FILE).exists():
            (run_dir / LOG_FILE).unlink()
    distributed.barrier(ctx)

    steps = train_steps(recipe, ctx, model, models, optimizer, device, precision, compile)
    validation = Validation(recipe, ctx, card, models, ema, run_dir, device, data_root)
    last = recipe.iterations if stop_after is None else min(stop_after, recipe.iterations)
    return _Run(
        recipe, ctx, card, name, run_dir, device, precision, scales, parts, models, steps,
        validation, start, last, train_seconds, snapshots, snapshot_dir, data_info, init_info,
        lr_scale, backoffs, start if state is not None and resume else None, earlier,
        machine_of(device),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------


def _stop_requested(run: _Run, stop: threading.Event | None) -> bool:
    """Whether ``stop`` is set on any rank (decided together: the ranks meet at barriers)."""
    if stop is None:
        return False
    flag = torch.tensor([float(stop.is_set())], device=run.device)
    return bool(distributed.mean_across(run.ctx, flag).item() > 0)


def _steps(run: _Run, stop: threading.Event | None = None) -> Iterator[TrainEvent]:
    """Iterations ``run.start`` to ``run.last``: log, validate, checkpoint and snapshot on the
    recipe's intervals; a ``stop`` request makes the current iteration the last."""
    recipe, ctx, total = run.recipe, run.ctx, run.total
    losses: list[torch.Tensor] = []
    tick, tick_cpu = time.perf_counter(), time.process_time()
    segment_start = tick
    run.clock, run.spent = (tick, tick_cpu), None
    interval_start = run.start
    for it in range(run.start, run.last):
        run.parts.scheduler.step_update(it)
        if run.lr_scale != 1.0:
            for group in run.parts.optimizer.param_groups:
                group["lr"] *= run.lr_scale
        s = run.scales[it % len(run.scales)]
        lr_patch, hr_patch = run.parts.samplers[s].sample()
        loss = run.steps[s](lr_patch, hr_patch)
        # the mean over the ranks, so that every rank backs off together
        mean_loss = distributed.mean_across(ctx, loss.detach().reshape(1)).item()
        if not mean_loss <= DIVERGED_LOSS:  # NaN too
            elapsed = run.train_seconds + time.perf_counter() - segment_start
            raise Diverged(it + 1, mean_loss, elapsed, run.segments(it + 1))
        losses.append(loss)
        if run.parts.ema is not None:
            run.parts.ema.update(run.parts.model, step=it + 1)
        done = it + 1
        if done < run.last and _stop_requested(run, stop):
            run.last = done  # log and checkpoint here, then end as ``stop_after`` does
        if done % recipe.log_interval == 0 or done == run.last:
            values = distributed.mean_across(ctx, torch.stack(losses)).tolist()
            elapsed = time.perf_counter() - tick
            info: dict[str, Any] = {
                "losses": values,
                "loss": statistics.fmean(values),
                "lr": run.parts.optimizer.param_groups[0]["lr"],
                "patches_per_s": (done - interval_start) * run.batch / max(elapsed, 1e-9),
                "seconds": elapsed,
                "cpu_seconds": time.process_time() - tick_cpu,
            }
            if ctx.is_main:
                append_log(run.run_dir, {"kind": "train", "iteration": done, **info})
            yield TrainEvent("log", done, total, info)
            losses = []
        # Decided identically on every rank (they meet at the barrier below).
        do_val = run.validation.due(done)
        periodic = recipe.checkpoint_interval > 0 and done % recipe.checkpoint_interval == 0
        do_checkpoint = (periodic or done == run.last) and done != total
        if do_val and ctx.is_main:
            yield TrainEvent("validate", done, total, run.validation(done))
        targets: list[Path | None] = []  # where this iteration's training state goes
        if done in run.snapshots and run.snapshot_dir is not None:
            targets.append(run.snapshot_dir / snapshot_name(done))
        if do_checkpoint:
            targets.append(None)  # the run's own checkpoint.pt
        for target in targets if ctx.is_main else []:
            run.write_checkpoint(
                done, run.train_seconds + time.perf_counter() - segment_start, target
            )
        if do_checkpoint and ctx.is_main:
            yield TrainEvent("checkpoint", done, total, {"path": str(run.run_dir)})
        paused = do_val or do_checkpoint
        if paused:
            distributed.barrier(ctx)
        if paused or done % recipe.log_interval == 0:
            tick, tick_cpu = time.perf_counter(), time.process_time()
            interval_start = done
        if done == run.last:
            break
    run.spent = (time.perf_counter() - run.clock[0], time.process_time() - run.clock[1])
    run.train_seconds += run.spent[0]


# ----------------------------------------------------------------------------------------------
# The end: final checkpoint, weights, validation, run.json
# ----------------------------------------------------------------------------------------------


def _finish(run: _Run) -> Iterator[TrainEvent]:
    total = run.total
    info: dict[str, Any] = {"finished": True, "run_dir": str(run.run_dir)}
    if run.ctx.is_main:
        # Final checkpoint too, so that the run can be extended or inspected.
        run.write_checkpoint(total, run.train_seconds)
        from srbench.weights import save_weights

        weights = run.run_dir / WEIGHTS_FILE
        scale = run.scales if len(run.scales) > 1 else run.recipe.scale
        ema = run.parts.ema
        final_model = ema.module if ema is not None else run.parts.model
        sha = save_weights(final_model, weights, model_name=run.card.name, scale=scale)
        raw_sha = None
        if ema is not None:  # the raw weights too: which of the two is better is measured
            raw_sha = save_weights(
                run.parts.model,
                run.run_dir / RAW_WEIGHTS_FILE,
                model_name=run.card.name,
                scale=scale,
            )
        final_val = None
        if run.validation.wanted and run.recipe.validation.at_end:
            val_info = run.validation(total)
            final_val = val_info["results"]
            yield TrainEvent("validate", total, total, val_info)
        summary = _run_summary(run, sha, raw_sha, final_val)
        atomic_write(run.run_dir / "run.json", json.dumps(summary, indent=1) + "\n")
        info.update(summary, weights_path=str(weights))
    distributed.barrier(run.ctx)
    yield TrainEvent("done", total, total, info)


def _run_summary(
    run: _Run, sha: str, raw_sha: str | None, final_val: dict | None
) -> dict[str, Any]:
    """``run.json``: what was trained, how, where, and its final validation."""
    from srbench.provenance import environment

    env = environment(run.device)
    return {
        "run_name": run.name,
        "model": run.card.name,
        "scale": run.recipe.scale,
        "scales": list(run.scales),
        "model_overrides": run.recipe.model_overrides,
        "params": trainable_params(run.parts.model),
        "iterations": run.total,
        "recipe_hash": run.recipe.hash,
        "weights": WEIGHTS_FILE,
        "weights_sha256": sha,
        "weights_are_ema": run.parts.ema is not None,
        "raw_weights": RAW_WEIGHTS_FILE if raw_sha else None,
        "raw_weights_sha256": raw_sha,
        "validation": final_val,
        "validation_protocol": run.recipe.validation.protocol if final_val else None,
        "world_size": run.ctx.world_size,
        "precision": run.precision_label(),
        "precision_reason": run.precision.reason,
        "device": str(run.device),
        "segments": list(run.segments(run.total)),
        "train_seconds": round(run.train_seconds, 1),
        "cpu_seconds": rounded(cpu_seconds(run.segments(run.total), run.backoffs)),
        "lr_backoffs": list(run.backoffs),
        "cpu_model": env["cpu_model"],
        "cpu_id": env.get("cpu_id"),
        "torch_threads": env["torch_threads"],
        "torch": env["torch"],
        "git_commit": env["git_commit"],
        **{k: v for k, v in env.items() if k.startswith(("gpu_", "cuda_"))},
        **run.init_info,
    }
