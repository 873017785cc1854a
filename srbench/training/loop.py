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

Resuming (``resume=True``) restores all of that, so the losses and weights after a resume equal
those of an uninterrupted run (bit for bit on CPU; the tests check it).

Precision: ``auto`` picks by the device's capabilities (``srbench.precision``: bf16
autocast + channels_last where the hardware multiplies bf16, fp32 + channels_last on AVX-512, plain
fp32 otherwise); master weights stay fp32. ``compile`` wraps the (DDP) model in ``torch.compile``.

``init_from`` starts a run from a finished run's weights (x3/x4 from x2: tensors whose shape
differs, the upsampler, keep their fresh initialisation and are listed in ``run.json``);
``multiscale: [2, 3, 4]`` trains one network for several scales (VDSR), one scale per iteration
in turn, each with its own patch sampler.
"""

from __future__ import annotations

import copy
import json
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
from srbench.files import atomic_path, atomic_write
from srbench.precision import Precision, training_precision
from srbench.profiling import trainable_params
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

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "weights.safetensors"
RAW_WEIGHTS_FILE = "weights_raw.safetensors"  # with EMA: the trained (non-averaged) weights
LOG_FILE = "train_log.jsonl"
CHECKPOINT_FORMAT = 2


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
    if s.name == "wsd":
        return WSDScheduler(optimizer, recipe)
    common: dict[str, Any] = {
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


class WSDScheduler:
    """Warm-up, stable, decay: linear warm-up from ``warmup_lr``, then the optimizer's rate,
    then over the last ``decay_fraction`` of the iterations a 1 - sqrt decay to ``min_lr``
    (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
    Durations": a 20% 1-sqrt cool-down matches a cosine run of the same length).

    The rate at iteration ``t`` depends on ``iterations`` only from the decay on, so runs of
    different lengths are identical up to the shorter one's decay start: each rung of a budget
    ladder is a short decay branch off one constant-rate trunk. Stateless (``state_dict`` is
    empty), so a branch can resume from a trunk's checkpoint.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, recipe: Recipe) -> None:
        self.optimizer = optimizer
        self.peak = recipe.optimizer.lr
        self.min_lr = recipe.schedule.min_lr
        self.warmup = recipe.schedule.warmup_iterations
        self.warmup_lr = recipe.schedule.warmup_lr
        self.total = recipe.iterations
        self.decay_start = int(recipe.decay_start or 0)

    def rate(self, t: int) -> float:
        if t < self.warmup:  # timm's linear warm-up formula, so the trunk matches it
            return self.warmup_lr + t * (self.peak - self.warmup_lr) / self.warmup
        if t < self.decay_start:
            return self.peak
        progress = (t - self.decay_start) / max(1, self.total - self.decay_start)
        return self.min_lr + (self.peak - self.min_lr) * (1.0 - progress**0.5)

    def step_update(self, num_updates: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.rate(num_updates)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class TrainStep:
    """One optimisation step: forward (bf16 autocast on request), loss, backward, update."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        device: torch.device,
        precision: Precision,
        grad_clip: float | None = None,
        params: Sequence[torch.Tensor] | None = None,
    ) -> None:
        self.net = net
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.device = device
        self.bf16 = precision.autocast_bf16
        self.channels_last = precision.channels_last
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


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def _restore_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded optimizer state the memory format of its parameter (channels_last)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in list(optimizer.state.get(p, {}).items()):
                if torch.is_tensor(value) and value.shape == p.shape and value.dim() == 4:
                    optimizer.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(
    run_dir: Path,
    *,
    iteration: int,
    recipe: Recipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    samplers: dict[int, PatchSampler],
    ema: Any | None,
    train_seconds: float = 0.0,
    path: Path | None = None,
) -> Path:
    """The whole training state as one ``torch.save`` file, written atomically.

    It holds only tensors and plain containers, so :func:`read_checkpoint` reads it back with
    ``torch.load(weights_only=True)`` (no unpickling of arbitrary objects).
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "iteration": iteration,
        "run_name": run_name(recipe),
        "recipe_hash": recipe.hash,
        "trunk_hash": recipe.trunk_hash,
        "train_seconds": float(train_seconds),
        "model": _cpu_state(model),
        "ema": _cpu_state(ema.module) if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler_rng": {int(s): p.generator.get_state() for s, p in samplers.items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all()
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else None,
    }
    path = path or run_dir / CHECKPOINT_FILE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def snapshot_name(iteration: int) -> str:
    return f"it{iteration:06d}.pt"


def read_checkpoint(run_dir: Path) -> dict | None:
    """The checkpoint of ``run_dir`` (``torch.load(weights_only=True)``), or None if it has none."""
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: torch raises several types
        msg = " ".join(str(exc).split())[:200]
        raise TrainingError(
            f"{path}: unreadable checkpoint ({msg}); delete {path} to restart this run from "
            "iteration 0"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(
            f"{path}: not an srbench checkpoint of format {CHECKPOINT_FORMAT}; delete {path} to "
            "restart this run from iteration 0"
        )
    return state


def load_checkpoint(
    run_dir: Path,
    state: dict,
    *,
    recipe: Recipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    samplers: dict[int, PatchSampler],
    ema: Any | None,
) -> int:
    branch = state.get("recipe_hash") != recipe.hash and is_branch_point(state, recipe)
    if state.get("recipe_hash") != recipe.hash and not branch:
        raise TrainingError(
            f"{run_dir}: the checkpoint was made with another recipe (hash "
            f"{state.get('recipe_hash')}, now {recipe.hash}); resume with the same recipe or start "
            "a new run folder"
        )
    model.load_state_dict(state["model"], strict=True)
    if ema is not None:
        ema.module.load_state_dict(state["ema"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    _restore_layout(optimizer)
    if not branch:  # a branch keeps its own (stateless) schedule
        scheduler.load_state_dict(state["scheduler"])
    for s, sampler in samplers.items():
        sampler.generator.set_state(state["sampler_rng"][int(s)])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["iteration"])


def is_branch_point(state: dict, recipe: Recipe) -> bool:
    """Whether ``recipe`` (wsd) may continue from ``state``, a checkpoint of another length's
    run: same trunk hash, and ``state`` is no later than this run's decay start (where the two
    runs' rates, data order and everything else are still identical)."""
    start = recipe.decay_start
    return (
        start is not None
        and state.get("trunk_hash") == recipe.trunk_hash
        and int(state.get("iteration", -1)) <= start
    )


def init_tensors(
    model: nn.Module, recipe: Recipe, output_dir: Path, model_name: str
) -> dict[str, Any]:
    """Start ``model`` from ``recipe.init_from`` (a finished run's name, or a weights file).

    Tensors of equal name and shape are copied; the others keep their fresh initialisation and
    are listed (e.g. an x4 upsampler started from x2 weights). The file must be for the same
    architecture (its srbench metadata names the model).
    """
    from safetensors.torch import load_file

    from srbench.weights import file_sha256, read_metadata

    ref = str(recipe.init_from)
    path = Path(ref).expanduser()
    if path.suffix != ".safetensors":
        path = output_dir / ref / WEIGHTS_FILE
        if not path.is_file():
            raise TrainingError(
                f"{recipe.source}: init_from run {ref!r} has not finished ({path} missing); "
                "train it first (the zoo orders runs so that it comes earlier)"
            )
    meta = read_metadata(path)
    if meta.get("model") != model_name:
        raise TrainingError(
            f"{path}: init_from weights are for {meta.get('model')}, not {model_name}"
        )
    tensors = load_file(str(path), device="cpu")
    own = model.state_dict()
    copied, reinit = [], []
    with torch.no_grad():
        for key, value in own.items():
            src = tensors.get(key)
            if src is not None and tuple(src.shape) == tuple(value.shape):
                value.copy_(src.to(value.dtype))
                copied.append(key)
            else:
                reinit.append(key)
    return {
        "init_from": ref,
        "init_sha256": file_sha256(path),
        "init_copied": len(copied),
        "init_reinitialised": reinit,
    }


def _tie_parameters(primary: nn.Module, other: nn.Module, model_name: str) -> None:
    """Make ``other`` (the same network built for another scale) use ``primary``'s tensors."""
    own = dict(primary.named_parameters())
    theirs = dict(other.named_parameters())
    if (
        own.keys() != theirs.keys()
        or any(own[k].shape != theirs[k].shape for k in own)
        or primary.state_dict().keys() != other.state_dict().keys()
    ):
        raise TrainingError(
            f"model {model_name} cannot be trained multi-scale: its tensors differ between "
            "scales; train one run per scale instead"
        )
    for mod_name, module in other.named_modules():
        for pname, _ in list(module.named_parameters(recurse=False)):
            setattr(module, pname, own[f"{mod_name}.{pname}" if mod_name else pname])


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
    atomic_write(path, "".join(k + "\n" for k in keep))


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
    snapshots: Sequence[int] = (),
    snapshot_dir: str | Path | None = None,
) -> Iterator[TrainEvent]:
    """Train ``recipe`` (see the module docstring); yields events, never prints.

    ``stop_after``: stop (with a checkpoint) after that many iterations in total, as if
    interrupted -- ``resume=True`` continues it. ``images``/``training_set``: use these instead
    of the recipe's folders; ``validation_images``: prepared validation set to reuse.
    Under ``torchrun`` (or :func:`distributed.spawn_local`) this trains with DDP.
    ``snapshots``: iterations after which a copy of the checkpoint is kept as
    ``<snapshot_dir>/it<iteration>.pt`` (branch points of a budget ladder, ``training.ladder``).
    """
    check_model(recipe)
    from srbench.devices import resolve_device

    resolve_device(device)  # a one-line error for a device this machine lacks
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
            snapshots=frozenset(snapshots),
            snapshot_dir=Path(snapshot_dir) if snapshot_dir is not None else None,
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
    snapshots: frozenset[int] = frozenset(),
    snapshot_dir: Path | None = None,
) -> Iterator[TrainEvent]:
    card = get_card(recipe.model)  # type: ignore[arg-type]
    name = run_name(recipe)
    run_dir = output_dir / name
    total = recipe.iterations
    last = total if stop_after is None else min(stop_after, total)
    precision = training_precision(recipe.precision, device)
    scales = recipe.train_scales()
    batch = recipe.data.batch_size
    if batch % ctx.world_size:
        raise TrainingError(
            f"batch size {batch} is not divisible by the {ctx.world_size} processes; use a "
            "global batch that is a multiple of the process count"
        )
    if len(scales) > 1 and (ctx.enabled or training_set is not None):
        raise TrainingError(
            f"{recipe.source}: multi-scale training (multiscale: {list(scales)}) runs in one "
            "process on the recipe's own data"
        )

    state = read_checkpoint(run_dir)
    finished = (run_dir / WEIGHTS_FILE).is_file() and (run_dir / "run.json").is_file()
    if finished and not resume:
        raise TrainingError(
            f"{run_dir}: this run already finished ({WEIGHTS_FILE} exists); delete the folder to "
            "train it again"
        )
    if snapshots and snapshot_dir is None:
        raise TrainingError("snapshots need a snapshot_dir")
    if state is not None and not resume:
        raise TrainingError(
            f"{run_dir}: this run already has a checkpoint (iteration {state.get('iteration')}); "
            "pass --resume to continue it, or delete the folder to start again"
        )

    # Model, optimizer, schedule and EMA: the same on every rank (same seed).
    torch.manual_seed(recipe.seed)
    model = create_model(card.name, scales[0], **recipe.model_overrides).to(device)
    init_info: dict[str, Any] = {}
    if recipe.init_from and state is None:
        init_info = init_tensors(model, recipe, output_dir, card.name)
    elif recipe.init_from:
        init_info = {"init_from": recipe.init_from}
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    models = {scales[0]: model}
    for s in scales[1:]:
        other = create_model(card.name, s, **recipe.model_overrides).to(device)
        _tie_parameters(model, other, card.name)
        models[s] = other
    optimizer = build_optimizer(model, recipe)
    scheduler = build_scheduler(optimizer, recipe)
    ema = None
    if recipe.ema.enabled:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema.decay, use_warmup=recipe.ema.warmup)

    # Data: decoded once, LR made once per scale, held on the device.
    t_data = time.perf_counter()
    want_channels = 1 if card.input_channels == "y" else 3
    samplers: dict[int, PatchSampler] = {}
    skipped = 0
    n_images = 0
    if len(scales) > 1 and images is None:
        images = load_training_images(recipe.data.train, data_root)
    for index, s in enumerate(scales):
        if training_set is None or len(scales) > 1:
            tset = prepare_training_set(
                recipe.replace(scale=s), data_root=data_root, images=images, device=device
            )
        elif training_set.device != device:
            tset = training_set.to(device)
        else:
            tset = training_set
        if tset.scale != s or tset.channels != want_channels:
            raise TrainingError(
                f"training set is x{tset.scale} with {tset.channels} channels; "
                f"{card.name} x{s} needs x{s} with {want_channels}"
            )
        samplers[s] = PatchSampler(
            tset,
            recipe.data.patch_size,
            batch,
            seed=recipe.seed + index,
            hflip=recipe.data.hflip,
            vflip=recipe.data.vflip,
            rot90=recipe.data.rot90,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        skipped = max(skipped, samplers[s].skipped)
        n_images = len(tset)
    data_seconds = time.perf_counter() - t_data

    start = 0
    train_seconds = 0.0
    if resume and state is not None:
        start = load_checkpoint(
            run_dir,
            state,
            recipe=recipe,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            samplers=samplers,
            ema=ema,
        )
        train_seconds = float(state.get("train_seconds", 0.0))
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "recipe.yaml", dump_recipe(recipe))
        if start:
            _trim_log(run_dir, start)
        elif (run_dir / LOG_FILE).exists():
            (run_dir / LOG_FILE).unlink()
    distributed.barrier(ctx)

    nets: dict[int, nn.Module] = dict(models)
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        nets = {
            scales[0]: DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        }
    if compile:
        nets = {s: torch.compile(n) for s, n in nets.items()}  # type: ignore[misc]
    steps = {
        s: TrainStep(
            net,
            optimizer,
            make_loss(recipe.loss),
            device=device,
            precision=precision,
            grad_clip=recipe.optimizer.grad_clip,
            params=list(model.parameters()),
        )
        for s, net in nets.items()
    }

    def eval_model(s: int) -> nn.Module:
        if ema is None:
            return models[s]
        if s == scales[0]:
            return ema.module
        shadow = copy.deepcopy(models[s])
        shadow.load_state_dict(ema.module.state_dict())
        return shadow

    val_cfg = recipe.validation
    wants_val = bool(val_cfg.datasets) and (val_cfg.interval > 0 or val_cfg.at_end)
    val_sets: dict[int, list[PreparedImage]] = {}
    if ctx.is_main and wants_val:
        if validation_images is not None and len(scales) == 1:
            val_sets[scales[0]] = validation_images
        else:
            sources = validation_sources(val_cfg.datasets, data_root)
            for s in scales:
                val_sets[s] = prepare_sources(sources, s, card.input_channels, val_cfg.protocol)

    def validate(iteration: int) -> TrainEvent:
        """Validate the weights the run outputs; with EMA, the raw model too (logged with
        ``ema: false``), so whether the EMA helps is measured in every run."""
        merged: dict[str, dict[str, float]] = {}
        for s in scales:
            for use_ema in [True, False] if ema is not None else [False]:
                net = eval_model(s) if use_ema else models[s]
                scores = list(iter_scores(net, val_sets[s], val_cfg.protocol, device))
                summary = summarise_scores(scores)
                _append_log(
                    run_dir,
                    {
                        "kind": "val",
                        "iteration": iteration,
                        "scale": s,
                        "protocol": val_cfg.protocol,
                        "ema": use_ema,
                        "results": summary,
                    },
                )
                if use_ema or ema is None:
                    for key, value in summary.items():
                        merged[key if len(scales) == 1 else f"{key} x{s}"] = value
        return TrainEvent(
            "validate", iteration, total, {"results": merged, "protocol": val_cfg.protocol}
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
            "scales": list(scales),
            "params": trainable_params(model),
            "images": n_images,
            "images_too_small": skipped,
            "data_seconds": data_seconds,
            "device": str(device),
            "precision": precision.name,
            "precision_reason": precision.reason,
            "world_size": ctx.world_size,
            "per_rank_batch": batch // ctx.world_size,
            "resumed_from": start if start else None,
            "recipe_hash": recipe.hash,
            **init_info,
        },
    )

    losses: list[torch.Tensor] = []
    tick = time.perf_counter()
    segment_start = tick
    interval_start = start
    for it in range(start, last):
        scheduler.step_update(it)
        s = scales[it % len(scales)]
        lr_patch, hr_patch = samplers[s].sample()
        loss = steps[s](lr_patch, hr_patch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{run_dir}: the loss became {loss.item()} at iteration {it + 1}; the last "
                "checkpoint is kept, but resuming will diverge again: lower optimizer.lr or set "
                "optimizer.grad_clip in a new recipe"
            )
        losses.append(loss)
        if ema is not None:
            ema.update(model, step=it + 1)
        done = it + 1
        if done % recipe.log_interval == 0 or done == last:
            values = distributed.mean_across(ctx, torch.stack(losses)).tolist()
            elapsed = time.perf_counter() - tick
            info: dict[str, Any] = {
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
        targets: list[Path | None] = []  # where this iteration's training state goes
        if done in snapshots and snapshot_dir is not None:
            targets.append(snapshot_dir / snapshot_name(done))
        if do_checkpoint:
            targets.append(None)  # the run's own checkpoint.pt
        for target in targets if ctx.is_main else []:
            save_checkpoint(
                run_dir,
                iteration=done,
                recipe=recipe,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                samplers=samplers,
                ema=ema,
                train_seconds=train_seconds + time.perf_counter() - segment_start,
                path=target,
            )
        if do_checkpoint and ctx.is_main:
            yield TrainEvent("checkpoint", done, total, {"path": str(run_dir)})
        paused = do_val or do_checkpoint
        if paused:
            distributed.barrier(ctx)
        if paused or done % recipe.log_interval == 0:
            tick = time.perf_counter()
            interval_start = done

    train_seconds += time.perf_counter() - segment_start
    if last < total:
        yield TrainEvent("done", last, total, {"finished": False, "run_dir": str(run_dir)})
        return

    info = {"finished": True, "run_dir": str(run_dir)}
    if ctx.is_main:
        # Final checkpoint too, so that the run can be extended or inspected.
        save_checkpoint(
            run_dir,
            iteration=total,
            recipe=recipe,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            samplers=samplers,
            ema=ema,
            train_seconds=train_seconds,
        )
        from srbench.provenance import environment
        from srbench.weights import save_weights

        weights = run_dir / WEIGHTS_FILE
        final_model = ema.module if ema is not None else model
        sha = save_weights(
            final_model,
            weights,
            model_name=card.name,
            scale=scales if len(scales) > 1 else recipe.scale,
        )
        raw_sha = None
        if ema is not None:  # the raw weights too: which of the two is better is measured
            raw_sha = save_weights(
                model,
                run_dir / RAW_WEIGHTS_FILE,
                model_name=card.name,
                scale=scales if len(scales) > 1 else recipe.scale,
            )
        final_val = None
        if wants_val and val_cfg.at_end:
            event = validate(total)
            final_val = event.info["results"]
            yield event
        env = environment(device)
        summary = {
            "run_name": name,
            "model": card.name,
            "scale": recipe.scale,
            "scales": list(scales),
            "model_overrides": recipe.model_overrides,
            "params": trainable_params(model),
            "iterations": total,
            "recipe_hash": recipe.hash,
            "weights": WEIGHTS_FILE,
            "weights_sha256": sha,
            "weights_are_ema": ema is not None,
            "raw_weights": RAW_WEIGHTS_FILE if raw_sha else None,
            "raw_weights_sha256": raw_sha,
            "validation": final_val,
            "validation_protocol": val_cfg.protocol if final_val else None,
            "world_size": ctx.world_size,
            "precision": precision.name,
            "precision_reason": precision.reason,
            "device": str(device),
            "train_seconds": round(train_seconds, 1),
            "cpu_model": env["cpu_model"],
            "cpu_id": env.get("cpu_id"),
            "torch_threads": env["torch_threads"],
            "torch": env["torch"],
            "git_commit": env["git_commit"],
            **{k: v for k, v in env.items() if k.startswith(("gpu_", "cuda_"))},
            **init_info,
        }
        atomic_write(run_dir / "run.json", json.dumps(summary, indent=1) + "\n")
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
        held = getattr(model, "srbench_card", None)
        name = held.name if held else type(model).__name__
        channels = held.input_channels if held else "rgb"
    n_channels = 1 if channels == "y" else 3
    prec = training_precision(precision, dev)
    net = net.to(dev).train()
    if prec.channels_last:
        net = net.to(memory_format=torch.channels_last)
    nets = {"loop": net, "bare": copy.deepcopy(net)}
    compiled = {k: torch.compile(v) if compile else v for k, v in nets.items()}
    optimizers = {k: create_optimizer_v2(v, opt="adam", lr=lr) for k, v in nets.items()}
    steps_fn = {
        k: TrainStep(compiled[k], optimizers[k], F.l1_loss, device=dev, precision=prec)  # type: ignore[arg-type]  # compile() of a Module is a Module
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
