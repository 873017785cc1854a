"""The training loop: recipe -> model, data, optimizer, schedule, EMA -> checkpoints and weights.

:func:`iter_train` is a generator of :class:`TrainEvent` (it never prints); :func:`train` runs it
to the end. A run lives in ``<output_dir>/<run name>/``:

* ``recipe.yaml`` -- the resolved recipe;
* ``train_log.jsonl`` -- one line per log interval (``kind: "train"``: iteration, per-step losses,
  mean loss, learning rate, patches/s) and per validation (``kind: "val"``: PSNR/SSIM per
  dataset, with the protocol);
* ``checkpoint.safetensors`` + ``checkpoint.json`` -- model, EMA and optimizer tensors (the
  optimizer state flattened into ``optim/...`` tensors) and a small JSON state: iteration, the
  patch sampler's and torch's RNG states as lists, the scheduler state, the recipe hash and the
  sha256 of the tensor file;
* ``weights.safetensors`` (``srbench.weights.save_weights``: usable by ``srbench run --weights``
  for models without constructor overrides) and ``run.json`` at the end. With EMA enabled, the
  final weights and the validations are the EMA model's.

Resuming (``resume=True``) restores all of that, so the losses and weights after a resume equal
those of an uninterrupted run (bit for bit on CPU; the tests check it).

Precision: ``auto`` is bf16 autocast on CUDA and fp32 elsewhere; on CUDA the model and its inputs
are channels_last. ``compile`` wraps the (DDP) model in ``torch.compile``.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srbench.data import HRImage
from srbench.errors import SRBenchError
from srbench.protocols import LRCache
from srbench.registry import create_model, get_card
from srbench.training import distributed
from srbench.training.data import (
    PatchSampler,
    TrainingSet,
    build_training_set,
    load_training_images,
    synthetic_images,
)
from srbench.training.evaluate import (
    PreparedImage,
    iter_scores,
    prepare_sources,
    summarise_scores,
    validation_sources,
)
from srbench.training.recipe import Recipe, check_model, dump_recipe, run_name

CHECKPOINT_TENSORS = "checkpoint.safetensors"
CHECKPOINT_STATE = "checkpoint.json"
WEIGHTS_FILE = "weights.safetensors"
LOG_FILE = "train_log.jsonl"
CHECKPOINT_FORMAT = 1


class TrainingError(SRBenchError):
    """A run that cannot start or resume (existing run folder, torn checkpoint, bad batch)."""


@dataclass
class TrainEvent:
    """What the loop tells its caller. ``kind``: start, log, validate, checkpoint, done."""

    kind: str
    iteration: int
    total: int
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Building blocks (also used by the throughput benchmark)
# ----------------------------------------------------------------------------------------------


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def make_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "charbonnier":
        return lambda sr, hr: torch.sqrt((sr - hr) ** 2 + 1e-6).mean()
    raise SRBenchError(f"unknown loss {name!r}; choose l1, mse or charbonnier")


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """timm's ``create_optimizer_v2`` with the recipe's settings."""
    from timm.optim import create_optimizer_v2

    cfg = recipe.optimizer
    name = cfg.name.lower()
    kwargs: dict[str, Any] = {}
    if "adam" in name or name in ("nadam", "radam", "lamb", "lion"):
        kwargs["betas"] = tuple(cfg.betas)
        if name != "lion":
            kwargs["eps"] = cfg.eps
    return create_optimizer_v2(
        model,
        opt=name,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        **kwargs,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe):
    """A timm scheduler stepped per iteration (``step_update(iteration)``)."""
    from timm.scheduler import CosineLRScheduler, MultiStepLRScheduler

    s = recipe.schedule
    common = {
        "warmup_t": s.warmup_iterations,
        "warmup_lr_init": s.warmup_lr,
        "t_in_epochs": False,
    }
    if s.name == "cosine":
        return CosineLRScheduler(
            optimizer,
            t_initial=max(1, recipe.iterations - s.warmup_iterations),
            lr_min=s.min_lr,
            warmup_prefix=True,
            **common,
        )
    milestones = recipe.milestones() if s.name == "multistep" else []
    gamma = s.gamma if s.name == "multistep" else 1.0
    return MultiStepLRScheduler(optimizer, decay_t=milestones, decay_rate=gamma, **common)


class TrainStep:
    """One optimisation step: forward (bf16 autocast on request), loss, backward, update."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        device: torch.device,
        precision: str = "fp32",
        grad_clip: float | None = None,
        params: Sequence[torch.Tensor] | None = None,
    ) -> None:
        self.net = net
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.device = device
        self.bf16 = precision == "bf16"
        self.channels_last = device.type == "cuda"
        self.grad_clip = grad_clip
        self.params = list(params if params is not None else net.parameters())

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            sr = self.net(lr)
        loss = self.loss_fn(sr.float(), hr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        return loss.detach()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, torch.dtype):
        return str(value)
    raise TrainingError(f"cannot store {type(value).__name__} value {value!r} in a checkpoint")


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """``optimizer.state_dict()`` -> (tensors named ``optim/...``, a JSON skeleton)."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any, path: str) -> Any:
        if torch.is_tensor(value):
            tensors[path] = value.detach().to("cpu").contiguous()
            return {"__tensor__": path}
        if isinstance(value, dict):
            return {str(k): walk(v, f"{path}/{k}") for k, v in value.items()}
        if isinstance(value, tuple):
            return {"__tuple__": [walk(v, f"{path}/{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(value)]
        return _json_value(value)

    skeleton = {
        "state": {str(k): walk(v, f"optim/state/{k}") for k, v in state["state"].items()},
        "param_groups": [walk(g, f"optim/group/{i}") for i, g in enumerate(state["param_groups"])],
    }
    return tensors, skeleton


def unflatten_optimizer(skeleton: dict, tensors: dict[str, torch.Tensor]) -> dict:
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"__tensor__"}:
                return tensors[value["__tensor__"]]
            if set(value) == {"__tuple__"}:
                return tuple(walk(v) for v in value["__tuple__"])
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return {
        "state": {int(k): walk(v) for k, v in skeleton["state"].items()},
        "param_groups": [walk(g) for g in skeleton["param_groups"]],
    }


def _restore_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimizer state the memory format of its parameter (channels_last on CUDA)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in list(optimizer.state.get(p, {}).items()):
                if torch.is_tensor(value) and value.shape == p.shape and value.dim() == 4:
                    optimizer.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def _module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}/{k}": v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()
    }


def _load_module(prefix: str, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}
    module.load_state_dict(sub, strict=True)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_checkpoint(
    run_dir: Path,
    *,
    iteration: int,
    recipe: Recipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sampler: PatchSampler,
    ema: Any | None,
) -> Path:
    from safetensors.torch import save

    from srbench.weights import file_sha256

    tensors = _module_tensors("model", model)
    if ema is not None:
        tensors.update(_module_tensors("ema", ema.module))
    optim_tensors, optim_skeleton = flatten_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    path = run_dir / CHECKPOINT_TENSORS
    _atomic_write_bytes(
        path, save(tensors, metadata={"srbench.checkpoint": str(CHECKPOINT_FORMAT)})
    )
    state = {
        "format": CHECKPOINT_FORMAT,
        "iteration": iteration,
        "run_name": run_name(recipe),
        "recipe_hash": recipe.hash,
        "tensors_sha256": file_sha256(path),
        "sampler_rng": sampler.state(),
        "torch_rng": torch.get_rng_state().tolist(),
        "cuda_rng": [s.tolist() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else None,
        "scheduler": _json_value(scheduler.state_dict()),
        "optimizer": optim_skeleton,
    }
    _atomic_write_bytes(run_dir / CHECKPOINT_STATE, (json.dumps(state) + "\n").encode())
    return path


def read_checkpoint_state(run_dir: Path) -> dict | None:
    path = run_dir / CHECKPOINT_STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrainingError(
            f"{path}: unreadable checkpoint state ({exc}); delete the run folder"
        ) from None


def load_checkpoint(
    run_dir: Path,
    state: dict,
    *,
    recipe: Recipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sampler: PatchSampler,
    ema: Any | None,
) -> int:
    from safetensors.torch import load_file

    from srbench.weights import file_sha256

    if state.get("recipe_hash") != recipe.hash:
        raise TrainingError(
            f"{run_dir}: the checkpoint was made with another recipe (hash "
            f"{state.get('recipe_hash')}, now {recipe.hash}); resume with the same recipe or start "
            "a new run folder"
        )
    path = run_dir / CHECKPOINT_TENSORS
    if not path.is_file() or file_sha256(path) != state.get("tensors_sha256"):
        raise TrainingError(
            f"{path}: missing or does not match {CHECKPOINT_STATE} (interrupted while saving?); "
            "delete the run folder to start again"
        )
    tensors = load_file(str(path), device="cpu")
    _load_module("model", model, tensors)
    if ema is not None:
        _load_module("ema", ema.module, tensors)
    optimizer.load_state_dict(unflatten_optimizer(state["optimizer"], tensors))
    _restore_layout(optimizer)
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state(state["sampler_rng"])
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(
            [torch.tensor(s, dtype=torch.uint8) for s in state["cuda_rng"]]
        )
    return int(state["iteration"])


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------


def _append_log(run_dir: Path, record: dict) -> None:
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _trim_log(run_dir: Path, iteration: int) -> None:
    """Drop log lines past the checkpoint a run resumes from (written after it was saved)."""
    path = run_dir / LOG_FILE
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("iteration", 0) <= iteration:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    path.write_text("".join(k + "\n" for k in keep), encoding="utf-8")


def read_log(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def prepare_training_set(
    recipe: Recipe,
    *,
    data_root: str | Path | None = None,
    images: Sequence[HRImage] | None = None,
    device: torch.device | str = "cpu",
) -> TrainingSet:
    """Decode the recipe's training images (or take ``images``) and make their LR once."""
    card = get_card(recipe.model) if recipe.model else None
    channels = card.input_channels if card else "rgb"
    if images is None:
        images = load_training_images(recipe.data.train, data_root)
    return build_training_set(
        images,
        recipe.scale,
        "y" if channels == "y" else "rgb",
        cache=LRCache(enabled=recipe.data.cache_lr),
        device=device,
    )


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
    validation_images: list[PreparedImage] | None = None,
) -> Iterator[TrainEvent]:
    """Train ``recipe`` (see the module docstring); yields events, never prints.

    ``stop_after``: stop (with a checkpoint) after that many iterations in total, as if
    interrupted -- ``resume=True`` continues it. ``images``/``training_set``: use these instead
    of the recipe's folders; ``validation_images``: prepared validation set to reuse.
    Under ``torchrun`` (or :func:`distributed.spawn_local`) this trains with DDP.
    """
    check_model(recipe)
    ctx = distributed.setup(device)
    try:
        yield from _train(
            recipe,
            ctx=ctx,
            output_dir=Path(output_dir),
            data_root=data_root,
            device=distributed.rank_device(device, ctx),
            resume=resume,
            compile=recipe.compile if compile is None else compile,
            stop_after=stop_after,
            images=images,
            training_set=training_set,
            validation_images=validation_images,
        )
    finally:
        distributed.teardown(ctx)


def _train(
    recipe: Recipe,
    *,
    ctx: distributed.DistContext,
    output_dir: Path,
    data_root,
    device: torch.device,
    resume: bool,
    compile: bool,
    stop_after: int | None,
    images,
    training_set: TrainingSet | None,
    validation_images,
) -> Iterator[TrainEvent]:
    card = get_card(recipe.model)  # type: ignore[arg-type]
    name = run_name(recipe)
    run_dir = output_dir / name
    total = recipe.iterations
    last = total if stop_after is None else min(stop_after, total)
    precision = resolve_precision(recipe.precision, device)
    batch = recipe.data.batch_size
    if batch % ctx.world_size:
        raise TrainingError(
            f"batch size {batch} is not divisible by the {ctx.world_size} processes; use a "
            "global batch that is a multiple of the process count"
        )

    state = read_checkpoint_state(run_dir)
    if state is not None and not resume and state.get("iteration") == total:
        raise TrainingError(
            f"{run_dir}: this run already finished ({total} iterations); delete the folder to "
            "train it again"
        )
    if state is not None and not resume:
        raise TrainingError(
            f"{run_dir}: this run already has a checkpoint (iteration {state.get('iteration')}); "
            "pass --resume to continue it, or delete the folder to start again"
        )
    if state is None and (run_dir / WEIGHTS_FILE).is_file() and not resume:
        raise TrainingError(
            f"{run_dir}: this run already finished ({WEIGHTS_FILE} exists); delete the folder to "
            "train it again"
        )

    # Model, optimizer, schedule and EMA: the same on every rank (same seed).
    torch.manual_seed(recipe.seed)
    model = create_model(card.name, recipe.scale, **recipe.model_overrides).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe)
    scheduler = build_scheduler(optimizer, recipe)
    ema = None
    if recipe.ema.enabled:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema.decay, use_warmup=recipe.ema.warmup)

    # Data: decoded once, LR made once, held on the device.
    t_data = time.perf_counter()
    if training_set is None:
        training_set = prepare_training_set(
            recipe, data_root=data_root, images=images, device=device
        )
    elif training_set.device != device:
        training_set = training_set.to(device)
    want_channels = 1 if card.input_channels == "y" else 3
    if training_set.scale != recipe.scale or training_set.channels != want_channels:
        raise TrainingError(
            f"training set is x{training_set.scale} with {training_set.channels} channels; "
            f"{card.name} x{recipe.scale} needs x{recipe.scale} with {want_channels}"
        )
    sampler = PatchSampler(
        training_set,
        recipe.data.patch_size,
        batch,
        seed=recipe.seed,
        hflip=recipe.data.hflip,
        vflip=recipe.data.vflip,
        rot90=recipe.data.rot90,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    data_seconds = time.perf_counter() - t_data

    start = 0
    if resume and state is not None:
        start = load_checkpoint(
            run_dir,
            state,
            recipe=recipe,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            sampler=sampler,
            ema=ema,
        )
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
        if start:
            _trim_log(run_dir, start)
        elif (run_dir / LOG_FILE).exists():
            (run_dir / LOG_FILE).unlink()
    distributed.barrier(ctx)

    net: nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if compile:
        net = torch.compile(net)  # type: ignore[assignment]
    step = TrainStep(
        net,
        optimizer,
        make_loss(recipe.loss),
        device=device,
        precision=precision,
        grad_clip=recipe.optimizer.grad_clip,
        params=list(model.parameters()),
    )
    eval_model = ema.module if ema is not None else model

    val_cfg = recipe.validation
    wants_val = bool(val_cfg.datasets) and (val_cfg.interval > 0 or val_cfg.at_end)
    if ctx.is_main and wants_val and validation_images is None:
        validation_images = prepare_sources(
            validation_sources(val_cfg.datasets, data_root),
            recipe.scale,
            card.input_channels,
            val_cfg.protocol,
        )

    def validate(iteration: int) -> TrainEvent:
        scores = list(iter_scores(eval_model, validation_images or [], val_cfg.protocol, device))
        summary = summarise_scores(scores)
        _append_log(
            run_dir,
            {
                "kind": "val",
                "iteration": iteration,
                "protocol": val_cfg.protocol,
                "ema": ema is not None,
                "results": summary,
            },
        )
        return TrainEvent(
            "validate", iteration, total, {"results": summary, "protocol": val_cfg.protocol}
        )

    yield TrainEvent(
        "start",
        start,
        total,
        {
            "run_name": name,
            "run_dir": str(run_dir),
            "model": card.name,
            "scale": recipe.scale,
            "params": count_params(model),
            "images": len(training_set),
            "images_too_small": sampler.skipped,
            "data_seconds": data_seconds,
            "device": str(device),
            "precision": precision,
            "world_size": ctx.world_size,
            "per_rank_batch": batch // ctx.world_size,
            "resumed_from": start if start else None,
            "recipe_hash": recipe.hash,
        },
    )

    losses: list[torch.Tensor] = []
    tick = time.perf_counter()
    interval_start = start
    for it in range(start, last):
        scheduler.step_update(it)
        lr_patch, hr_patch = sampler.sample()
        losses.append(step(lr_patch, hr_patch))
        if ema is not None:
            ema.update(model, step=it + 1)
        done = it + 1
        if done % recipe.log_interval == 0 or done == last:
            values = distributed.mean_across(ctx, torch.stack(losses)).tolist()
            elapsed = time.perf_counter() - tick
            info = {
                "losses": values,
                "loss": statistics.fmean(values),
                "lr": optimizer.param_groups[0]["lr"],
                "patches_per_s": (done - interval_start) * batch / max(elapsed, 1e-9),
                "seconds": elapsed,
            }
            if ctx.is_main:
                _append_log(run_dir, {"kind": "train", "iteration": done, **info})
            yield TrainEvent("log", done, total, info)
            losses = []
        # Decided identically on every rank (they meet at the barrier below).
        do_val = (
            wants_val
            and val_cfg.interval > 0
            and done % val_cfg.interval == 0
            and (done != total or not val_cfg.at_end)  # the final validation comes below
        )
        periodic = recipe.checkpoint_interval > 0 and done % recipe.checkpoint_interval == 0
        do_checkpoint = (periodic or done == last) and done != total
        if do_val and ctx.is_main:
            yield validate(done)
        if do_checkpoint and ctx.is_main:
            save_checkpoint(
                run_dir,
                iteration=done,
                recipe=recipe,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                sampler=sampler,
                ema=ema,
            )
            yield TrainEvent("checkpoint", done, total, {"path": str(run_dir)})
        paused = do_val or do_checkpoint
        if paused:
            distributed.barrier(ctx)
        if paused or done % recipe.log_interval == 0:
            tick = time.perf_counter()
            interval_start = done

    if last < total:
        yield TrainEvent("done", last, total, {"finished": False, "run_dir": str(run_dir)})
        return

    info: dict[str, Any] = {"finished": True, "run_dir": str(run_dir)}
    if ctx.is_main:
        # Final checkpoint too, so that the run can be extended or inspected.
        save_checkpoint(
            run_dir,
            iteration=total,
            recipe=recipe,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            sampler=sampler,
            ema=ema,
        )
        from srbench.weights import save_weights

        weights = run_dir / WEIGHTS_FILE
        sha = save_weights(eval_model, weights, model_name=card.name, scale=recipe.scale)
        final_val = None
        if wants_val and val_cfg.at_end:
            event = validate(total)
            final_val = event.info["results"]
            yield event
        summary = {
            "run_name": name,
            "model": card.name,
            "scale": recipe.scale,
            "model_overrides": recipe.model_overrides,
            "params": count_params(model),
            "iterations": total,
            "recipe_hash": recipe.hash,
            "weights": WEIGHTS_FILE,
            "weights_sha256": sha,
            "weights_are_ema": ema is not None,
            "validation": final_val,
            "validation_protocol": val_cfg.protocol if final_val else None,
            "world_size": ctx.world_size,
            "precision": precision,
            "device": str(device),
        }
        (run_dir / "run.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        info.update(summary, weights_path=str(weights))
    distributed.barrier(ctx)
    yield TrainEvent("done", total, total, info)


def train(recipe: Recipe, **kwargs: Any) -> dict[str, Any]:
    """Run :func:`iter_train` to the end; returns the ``done`` info plus every step's loss."""
    losses: list[float] = []
    validations: list[dict] = []
    info: dict[str, Any] = {}
    for event in iter_train(recipe, **kwargs):
        if event.kind == "log":
            losses.extend(event.info["losses"])
        elif event.kind == "validate":
            validations.append({"iteration": event.iteration, **event.info})
        elif event.kind in ("start", "done"):
            info.update(event.info)
    info["losses"] = losses
    info["validations"] = validations
    return info


# ----------------------------------------------------------------------------------------------
# Throughput: the full loop next to the bare model step
# ----------------------------------------------------------------------------------------------


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
        card = getattr(model, "srbench_card", None)
        name = card.name if card else type(model).__name__
        channels = card.input_channels if card else "rgb"
    n_channels = 1 if channels == "y" else 3
    prec = resolve_precision(precision, dev)
    net = net.to(dev).train()
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    nets = {"loop": net, "bare": copy.deepcopy(net)}
    compiled = {k: torch.compile(v) if compile else v for k, v in nets.items()}
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
        "precision": prec,
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
