"""What a training run is built from: its checks, its seeded model (started from ``init_from``;
tied across the scales of a multi-scale run), its patch samplers and its optimisation steps.
:func:`srbench.training.loop.iter_train` calls these in a fixed order, which decides the random
numbers each draws (so the order is part of a run's bit-exact reproducibility)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.data import HRImage
from srbench.precision import Precision
from srbench.protocols import LRCache
from srbench.registry import ModelCard, create_model, get_card
from srbench.training import distributed
from srbench.training.checkpoint import WEIGHTS_FILE, TrainingError, init_tensors, read_checkpoint
from srbench.training.data import (
    TRAINING_PROTOCOL,
    PatchSampler,
    TrainingSet,
    build_training_set,
    load_training_images,
)
from srbench.training.recipe import Recipe
from srbench.training.steps import TrainStep, make_loss


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
        protocol=TRAINING_PROTOCOL,
    )


def check_start(
    recipe: Recipe,
    ctx: distributed.DistContext,
    run_dir: Path,
    training_set: TrainingSet | None,
    resume: bool,
    snapshots: frozenset[int],
    snapshot_dir: Path | None,
) -> dict | None:
    """Refuse what cannot start or resume; returns the run's checkpoint (None: it has none)."""
    batch = recipe.data.batch_size
    scales = recipe.train_scales()
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
    return state


def build_models(
    recipe: Recipe,
    card: ModelCard,
    scales: tuple[int, ...],
    device: torch.device,
    precision: Precision,
    state: dict | None,
    output_dir: Path,
) -> tuple[nn.Module, dict[int, nn.Module], dict[str, Any]]:
    """The seeded model (started from ``init_from`` on a fresh run) and, for a multi-scale
    run, the same network built for the other scales, sharing its parameters."""
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
    return model, models, init_info


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


def build_samplers(
    recipe: Recipe,
    card: ModelCard,
    scales: tuple[int, ...],
    ctx: distributed.DistContext,
    device: torch.device,
    *,
    data_root: str | Path | None,
    images: Sequence[HRImage] | None,
    training_set: TrainingSet | None,
) -> tuple[dict[int, PatchSampler], dict[str, Any]]:
    """One patch sampler per scale, each with its own seed, over the training set on the
    device; and the start event's counts (images, images too small for a patch)."""
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
            recipe.data.batch_size,
            seed=recipe.seed + index,
            hflip=recipe.data.hflip,
            vflip=recipe.data.vflip,
            rot90=recipe.data.rot90,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        skipped = max(skipped, samplers[s].skipped)
        n_images = len(tset)
    return samplers, {"images": n_images, "images_too_small": skipped}


def train_steps(
    recipe: Recipe,
    ctx: distributed.DistContext,
    model: nn.Module,
    models: dict[int, nn.Module],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: Precision,
    compile: bool,
) -> dict[int, TrainStep]:
    """One step per scale, through DDP (under torchrun) and ``torch.compile`` on request."""
    scales = list(models)
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
    return {
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
