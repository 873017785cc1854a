"""Training recipes: YAML files describing everything that decides a training run.

A recipe is a YAML mapping with these keys (every one optional except where a default would be
meaningless; unknown keys are an error naming the key and the known ones)::

    name: default                # label only
    model: edsr_baseline         # registered model (``srbench models``); ``--model`` overrides it
    scale: 2
    model_overrides: {}          # constructor kwargs, e.g. {n_feats: 32, activation: relu}
    iterations: 300000
    loss: l1                     # l1 | mse | charbonnier
    seed: 0
    precision: auto              # auto (by the device's capabilities) | fp32 | fp32-cl | bf16
    compile: false               # torch.compile the model
    log_interval: 100            # iterations between loss logs / progress updates
    checkpoint_interval: 5000    # iterations between checkpoints (0: only at the end)
    run_name: null               # default: made from the recipe (see :func:`srbench.training.naming.run_name`)
    init_from: null              # a finished run's name (same output folder) or a .safetensors
                                 # file to start from; tensors of another shape are re-initialised
    multiscale: []               # e.g. [2, 3, 4]: one network for these scales, in turn per step
    data:
      train: [T91, BSD200]       # folders under the data root (their HR/ subfolder if any) or paths
      patch_size: 48             # LR patch side; the HR patch is patch_size * scale
      batch_size: 16             # global batch (split over DDP ranks)
      hflip: true                # random horizontal flips
      vflip: true                # random vertical flips
      rot90: true                # random transposes (with the flips: all 8 rotations/flips)
      cache_lr: true             # keep the made LR images in the srbench LR cache (disk)
    optimizer:
      name: adam                 # any timm optimizer name (timm.optim.create_optimizer_v2)
      lr: 1.0e-4
      weight_decay: 0.0
      betas: [0.9, 0.999]        # Adam-family only
      eps: 1.0e-8                # Adam-family only
      momentum: 0.9              # SGD-family only
      grad_clip: null            # max global gradient norm, or null
    schedule:
      name: multistep            # multistep | cosine | constant (timm schedulers, per iteration)
                                 # | wsd (warm-up, stable, decay: see ``decay_fraction``)
      milestones: [200000]       # multistep; values below 1 are fractions of ``iterations``
      gamma: 0.5                 # multistep decay factor
      min_lr: 0.0                # cosine floor
      warmup_iterations: 0
      warmup_lr: 0.0
      decay_fraction: 0.2        # wsd: the last 20% of ``iterations`` decay (1 - sqrt) to min_lr;
                                 # before that the rate does not depend on ``iterations``, so a
                                 # run of N iterations can branch off any longer run's trunk
    ema:
      enabled: false             # timm ModelEmaV3; validation and the final weights use the EMA
      decay: 0.999
      warmup: false
    validation:
      interval: 5000             # iterations between validations (0: none during training)
      datasets: [set5]
      protocol: standard
      at_end: true               # validate the final weights

Library code raises :class:`RecipeError` (an :class:`SRBenchError`) with one-line messages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from srbench.errors import ModelNotFoundError, SRBenchError
from srbench.precision import TRAINING_PRECISIONS

LOSSES = ("l1", "mse", "charbonnier")
SCHEDULES = ("multistep", "cosine", "constant", "wsd")


class RecipeError(SRBenchError):
    """A recipe or ablation spec that cannot be used (unknown key, bad value, unknown model)."""


@dataclass(frozen=True)
class DataConfig:
    train: tuple[str, ...] = ("T91", "BSD200")
    patch_size: int = 48
    batch_size: int = 16
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    cache_lr: bool = True


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, ...] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    grad_clip: float | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "multistep"
    milestones: tuple[float, ...] = ()
    gamma: float = 0.5
    min_lr: float = 0.0
    warmup_iterations: int = 0
    warmup_lr: float = 0.0
    decay_fraction: float = 0.2


@dataclass(frozen=True)
class EMAConfig:
    enabled: bool = False
    decay: float = 0.999
    warmup: bool = False


@dataclass(frozen=True)
class ValidationConfig:
    interval: int = 5000
    datasets: tuple[str, ...] = ("set5",)
    protocol: str = "standard"
    at_end: bool = True


@dataclass(frozen=True)
class Recipe:
    name: str = "recipe"
    model: str | None = None
    scale: int = 2
    model_overrides: dict[str, Any] = field(default_factory=dict)
    iterations: int = 300_000
    loss: str = "l1"
    seed: int = 0
    precision: str = "auto"
    compile: bool = False
    log_interval: int = 100
    checkpoint_interval: int = 5000
    run_name: str | None = None
    init_from: str | None = None
    multiscale: tuple[int, ...] = ()
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    source: str = field(default="<dict>", compare=False)  # where it was read from (not hashed)

    # -- derived ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain (YAML/JSON-ready) form; ``recipe_from_dict(r.to_dict()) == r``."""
        out = _plain(dataclasses.asdict(self))
        out.pop("source", None)
        return out

    @property
    def hash(self) -> str:
        """sha256 (12 hex digits) of everything that changes the trained weights.

        Excluded: labels and bookkeeping (name, run_name, log/checkpoint intervals), validation
        settings and ``compile`` -- a resumed run may change those.
        """
        return _hash(self._hashed())

    def _hashed(self) -> dict[str, Any]:
        d = self.to_dict()
        for key in ("name", "run_name", "log_interval", "checkpoint_interval", "validation"):
            d.pop(key, None)
        d.pop("compile", None)
        d["data"].pop("cache_lr", None)
        if d["schedule"]["name"] != "wsd":  # keeps the hashes of recipes older than wsd
            d["schedule"].pop("decay_fraction", None)
        return d

    @property
    def decay_start(self) -> int | None:
        """wsd: the first iteration of the decay (the rate is constant before it); else None."""
        if self.schedule.name != "wsd":
            return None
        return self.iterations - round(self.schedule.decay_fraction * self.iterations)

    @property
    def trunk_hash(self) -> str | None:
        """wsd: the hash of everything but ``iterations``: runs that share it share their
        training state up to the earlier decay start (a rung branches off a longer trunk)."""
        if self.schedule.name != "wsd":
            return None
        d = self._hashed()
        d.pop("iterations")
        return _hash(d)

    def train_scales(self) -> tuple[int, ...]:
        """The scales the network is trained for: ``multiscale`` if set, else ``(scale,)``."""
        return tuple(self.multiscale) if self.multiscale else (self.scale,)

    def milestones(self) -> list[int]:
        """Multistep milestones in iterations (fractions resolved against ``iterations``)."""
        return sorted(
            round(m * self.iterations) if m < 1 else round(m) for m in self.schedule.milestones
        )

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)


def _hash(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------

_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "ema": EMAConfig,
    "validation": ValidationConfig,
}


def _unknown_key(where: str, key: str, known: list[str]) -> RecipeError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return RecipeError(f"{where}: unknown key {key!r}{hint} (known: {', '.join(sorted(known))})")


def check_keys(where: str, raw: dict, known: tuple[str, ...], what: str) -> None:
    """Unknown keys of a spec section are one-line errors with a "did you mean"."""
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise RecipeError(
                f"{where}: unknown {what} key {key!r}{hint} (known: {', '.join(known)})"
            )


def _coerce(where: str, key: str, value: Any, annotation: Any) -> Any:
    """Check/convert one YAML value to the field's type; one-line error otherwise."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(where, key, value, inner[0])
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise RecipeError(f"{where}: {key} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise RecipeError(f"{where}: {key} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise RecipeError(f"{where}: {key} must be a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise RecipeError(f"{where}: {key} must be a string, got {value!r}")
    if origin is tuple:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: {key} must be a list, got {value!r}")
        return tuple(_coerce(where, f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: {key} must be a mapping, got {value!r}")
        return dict(value)
    return value


def _build(cls: type, raw: Any, where: str, prefix: str = "") -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(
            f"{where}: {prefix.rstrip('.') or 'recipe'} must be a mapping, got {raw!r}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise _unknown_key(where, f"{prefix}{key}", [f"{prefix}{k}" for k in fields])
        if key in _SECTIONS and cls is Recipe:
            kwargs[key] = _build(_SECTIONS[key], value, where, f"{key}.")
        else:
            kwargs[key] = _coerce(where, f"{prefix}{key}", value, hints[key])
    return cls(**kwargs)


def _check_values(recipe: Recipe, where: str) -> None:
    def bad(msg: str) -> RecipeError:
        return RecipeError(f"{where}: {msg}")

    positive = {
        "scale": recipe.scale,
        "iterations": recipe.iterations,
        "log_interval": recipe.log_interval,
        "data.patch_size": recipe.data.patch_size,
        "data.batch_size": recipe.data.batch_size,
    }
    for key, value in positive.items():
        if value < 1:
            raise bad(f"{key} must be at least 1, got {value}")
    for key, value in {
        "checkpoint_interval": recipe.checkpoint_interval,
        "validation.interval": recipe.validation.interval,
        "schedule.warmup_iterations": recipe.schedule.warmup_iterations,
    }.items():
        if value < 0:
            raise bad(f"{key} must be 0 or more, got {value}")
    if recipe.loss not in LOSSES:
        raise bad(f"loss must be one of {', '.join(LOSSES)}, got {recipe.loss!r}")
    if recipe.precision not in TRAINING_PRECISIONS:
        choices = ", ".join(TRAINING_PRECISIONS)
        raise bad(f"precision must be one of {choices}, got {recipe.precision!r}")
    if recipe.schedule.name not in SCHEDULES:
        raise bad(
            f"schedule.name must be one of {', '.join(SCHEDULES)}, got {recipe.schedule.name!r}"
        )
    if recipe.optimizer.lr <= 0:
        raise bad(f"optimizer.lr must be positive, got {recipe.optimizer.lr}")
    if not 0 < recipe.schedule.decay_fraction <= 1:
        raise bad(
            f"schedule.decay_fraction must be in (0, 1], got {recipe.schedule.decay_fraction}"
        )
    if recipe.decay_start is not None and recipe.decay_start < recipe.schedule.warmup_iterations:
        raise bad(
            f"schedule: the wsd decay would start at iteration {recipe.decay_start}, inside the "
            f"{recipe.schedule.warmup_iterations}-iteration warm-up; use more iterations"
        )
    if any(m <= 0 for m in recipe.schedule.milestones):
        raise bad("schedule.milestones must be positive (iterations, or fractions below 1)")
    if not 0 < recipe.ema.decay < 1:
        raise bad(f"ema.decay must be between 0 and 1, got {recipe.ema.decay}")
    if not recipe.data.train:
        raise bad("data.train must name at least one folder")
    if any(s < 1 for s in recipe.multiscale):
        raise bad(f"multiscale must list positive scales, got {list(recipe.multiscale)}")
    from timm.optim import list_optimizers

    if recipe.optimizer.name.lower() not in list_optimizers():
        close = difflib.get_close_matches(recipe.optimizer.name.lower(), list_optimizers(), n=3)
        hint = f"; did you mean {', '.join(map(str, close))}?" if close else ""
        raise bad(f"unknown optimizer {recipe.optimizer.name!r}{hint} (timm optimizer names)")
    from srbench.protocols import get_protocol

    try:
        get_protocol(recipe.validation.protocol)
    except SRBenchError as exc:
        raise bad(f"validation.protocol: {exc}") from None


def check_model(recipe: Recipe, where: str | None = None) -> None:
    """The model exists, is trainable, supports the scale and accepts ``model_overrides``.

    The model is built on the ``meta`` device, so this costs no memory or time.
    """
    import torch

    from srbench.registry import create_model, get_card

    where = where or recipe.source
    if recipe.model is None:
        raise RecipeError(f"{where}: no model given; set `model:` in the recipe or pass --model")
    try:
        card = get_card(recipe.model)
    except ModelNotFoundError as exc:
        raise RecipeError(f"{where}: {exc}") from None
    if not card.trainable:
        raise RecipeError(f"{where}: model {card.name!r} has nothing to train")
    for scale in recipe.train_scales():
        if scale not in card.scales:
            raise RecipeError(
                f"{where}: model {card.name!r} does not support scale x{scale} (supported: "
                f"{', '.join(f'x{s}' for s in card.scales)})"
            )
    try:
        with torch.device("meta"):
            create_model(card.name, recipe.scale, **recipe.model_overrides)
    except (TypeError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        raise RecipeError(f"{where}: model_overrides do not fit {card.name}: {msg}") from None


def recipe_from_dict(raw: dict[str, Any], source: str = "<dict>", *, check: bool = True) -> Recipe:
    """Validate a recipe mapping (as read from YAML)."""
    recipe = _build(Recipe, raw, source)
    recipe = dataclasses.replace(recipe, source=source)
    if recipe.multiscale:  # one network for several scales: `scale` is the first of them
        scales = tuple(sorted(set(recipe.multiscale)))
        recipe = dataclasses.replace(recipe, multiscale=scales, scale=scales[0])
    if recipe.model is not None:
        from srbench.registry import get_card

        try:
            recipe = dataclasses.replace(recipe, model=get_card(recipe.model).name)
        except ModelNotFoundError as exc:
            raise RecipeError(f"{source}: {exc}") from None
    _check_values(recipe, source)
    if check and recipe.model is not None:
        check_model(recipe, source)
    return recipe


def builtin_recipes() -> list[str]:
    """Names of the recipes shipped in ``srbench/recipes`` (ablation specs excluded)."""
    folder = resources.files("srbench.recipes")
    return sorted(
        p.name[: -len(".yaml")]
        for p in folder.iterdir()
        if p.name.endswith(".yaml") and not p.name.startswith(("ablation-", "zoo", "ladder"))
    )


def builtin_specs() -> list[str]:
    folder = resources.files("srbench.recipes")
    return sorted(
        p.name[: -len(".yaml")]
        for p in folder.iterdir()
        if p.name.endswith(".yaml") and p.name.startswith("ablation-")
    )


def read_yaml(name_or_path: str | Path, kind: str = "recipe") -> tuple[dict[str, Any], str]:
    """Read a YAML mapping from a path or a built-in name; returns (mapping, source label)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        name = str(name_or_path)
        name = name[: -len(".yaml")] if name.endswith(".yaml") else name
        candidate = resources.files("srbench.recipes").joinpath(f"{name}.yaml")
        if "/" in name or not candidate.is_file():
            known = builtin_recipes() if kind == "recipe" else builtin_specs()
            raise RecipeError(
                f"{name_or_path}: no such {kind} file and no built-in {kind} of that name "
                f"(built-in: {', '.join(known) or 'none'})"
            )
        text, source = candidate.read_text(encoding="utf-8"), f"{name}.yaml"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = " ".join(str(exc).split())
        raise RecipeError(f"{source}: not valid YAML ({msg})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: a {kind} must be a YAML mapping of keys to values")
    return raw, source


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Set dotted keys (``data.batch_size``, ``model_overrides.n_feats``) in a recipe mapping.

    String values are read as YAML scalars (``"16"`` -> 16, ``"false"`` -> False), so overrides
    from a command line need no typing. Unknown keys are caught by the validation that follows.
    """
    out = json.loads(json.dumps(raw))  # deep copy of plain data
    for dotted, value in (overrides or {}).items():
        if isinstance(value, str):
            with contextlib.suppress(yaml.YAMLError):
                value = yaml.safe_load(value)
        parts = str(dotted).split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"override {dotted}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_recipe(
    name_or_path: str | Path,
    *,
    model: str | None = None,
    scale: int | None = None,
    iterations: int | None = None,
    overrides: dict[str, Any] | None = None,
    check: bool = True,
) -> Recipe:
    """Read, override and validate a recipe (a YAML path or a built-in name such as ``default``)."""
    raw, source = read_yaml(name_or_path, "recipe")
    direct = {"model": model, "scale": scale, "iterations": iterations}
    raw = apply_overrides(raw, {**{k: v for k, v in direct.items() if v is not None}})
    raw = apply_overrides(raw, overrides)
    return recipe_from_dict(raw, source, check=check)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML (written into every run folder)."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
