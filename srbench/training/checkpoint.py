"""A run folder's state on disk: the checkpoint (save, read, restore, branch), the training
log, a start from another run's weights, and the folder's file names."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import SRBenchError
from srbench.files import atomic_move, atomic_path, atomic_write
from srbench.training.data import PatchSampler
from srbench.training.naming import run_name
from srbench.training.recipe import Recipe

CHECKPOINT_FILE = "checkpoint.pt"
# The last periodic checkpoint, kept when a stop writes checkpoint.pt between two periodic ones:
# a divergence goes back to a periodic checkpoint only, so that where it goes back to does not
# depend on when the run was stopped and resumed (training.divergence.back_off).
REWIND_FILE = "rewind.pt"
WEIGHTS_FILE = "weights.safetensors"
RAW_WEIGHTS_FILE = "weights_raw.safetensors"  # with EMA: the trained (non-averaged) weights
LOG_FILE = "train_log.jsonl"
CHECKPOINT_FORMAT = 2


class TrainingError(SRBenchError):
    """A run that cannot start or resume (existing run folder, torn checkpoint, bad batch)."""


@dataclass(frozen=True)
class TrainingParts:
    """What a checkpoint holds of a run besides its counters: the model (the first scale's),
    its EMA, the optimizer, the schedule and the patch samplers (their generators)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    samplers: dict[int, PatchSampler]
    ema: Any | None


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
    parts: TrainingParts,
    train_seconds: float = 0.0,
    path: Path | None = None,
    lr_scale: float = 1.0,
    backoffs: tuple[dict[str, Any], ...] = (),
    segments: tuple[dict[str, Any], ...] = (),
) -> Path:
    """The whole training state as one ``torch.save`` file, written atomically.

    ``lr_scale`` and ``backoffs``: the rate's factor after divergences and their history
    (``divergence.back_off``); ``segments``: which iterations trained where and in which
    precision (``loop.Segment``); a resumed run or a branch off this state carries them on.

    It holds only tensors and plain containers, so :func:`read_checkpoint` reads it back with
    ``torch.load(weights_only=True)`` (no unpickling of arbitrary objects).
    """
    model, ema, samplers = parts.model, parts.ema, parts.samplers
    state = {
        "format": CHECKPOINT_FORMAT,
        "iteration": iteration,
        "run_name": run_name(recipe),
        "recipe_hash": recipe.hash,
        "trunk_hash": recipe.trunk_hash,
        "train_seconds": float(train_seconds),
        "lr_scale": float(lr_scale),
        "backoffs": [dict(b) for b in backoffs],
        "segments": [dict(x) for x in segments],
        "model": _cpu_state(model),
        "ema": _cpu_state(ema.module) if ema is not None else None,
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "sampler_rng": {int(s): p.generator.get_state() for s, p in samplers.items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all()
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else None,
    }
    return write_state(state, path or run_dir / CHECKPOINT_FILE)


def write_state(state: dict, path: Path) -> Path:
    """Save a checkpoint's state dict at ``path`` atomically (a torn file is never left)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def keep_as_rewind(run_dir: Path) -> None:
    """Move checkpoint.pt (a periodic one) to :data:`REWIND_FILE` before a stop's checkpoint,
    off the grid, takes its place."""
    atomic_move(run_dir / CHECKPOINT_FILE, run_dir / REWIND_FILE)


def snapshot_name(iteration: int) -> str:
    return f"it{iteration:06d}.pt"


def read_checkpoint(run_dir: Path, name: str = CHECKPOINT_FILE) -> dict | None:
    """The checkpoint of ``run_dir`` (``torch.load(weights_only=True)``), or None if it has none;
    ``name``: :data:`REWIND_FILE` for the kept periodic one."""
    path = run_dir / name
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
    parts: TrainingParts,
) -> int:
    branch = state.get("recipe_hash") != recipe.hash and is_branch_point(state, recipe)
    if state.get("recipe_hash") != recipe.hash and not branch:
        raise TrainingError(
            f"{run_dir}: the checkpoint was made with another recipe (hash "
            f"{state.get('recipe_hash')}, now {recipe.hash}); resume with the same recipe or start "
            "a new run folder"
        )
    parts.model.load_state_dict(state["model"], strict=True)
    if parts.ema is not None:
        parts.ema.module.load_state_dict(state["ema"], strict=True)
    parts.optimizer.load_state_dict(state["optimizer"])
    _restore_layout(parts.optimizer)
    if not branch:  # a branch keeps its own (stateless) schedule
        parts.scheduler.load_state_dict(state["scheduler"])
    for s, sampler in parts.samplers.items():
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


def append_log(run_dir: Path, record: dict) -> None:
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def trim_log(run_dir: Path, iteration: int) -> None:
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
