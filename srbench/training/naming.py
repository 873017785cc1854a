"""Run folder names: what a training run is called, made from its recipe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from srbench.training.recipe import Recipe, RecipeError

_SHORT_KEYS = {
    "n_feats": "nf",
    "n_groups": "ng",
    "n_blocks": "nb",
    "n_resblocks": "nb",
    "n_resgroups": "ng",
    "distill_channels": "dc",
    "keep_channels": "kc",
    "filters": "f",
    "kernel_sizes": "k",
}


def _token(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_token(v) for v in value)
    text = str(value).lower()
    return re.sub(r"[^a-z0-9.]+", "", text)


def _override_tokens(overrides: dict[str, Any]) -> list[str]:
    tokens = []
    for key in sorted(overrides):
        value = overrides[key]
        if key == "use_distill" and isinstance(value, bool):
            tokens.append("distill" if value else "nodistill")
        elif key in ("activation", "block", "upsampler"):
            tokens.append(_token(value))
        elif isinstance(value, bool):
            tokens.append(_token(key) if value else f"no{_token(key)}")
        else:
            tokens.append(f"{_SHORT_KEYS.get(key, _token(key))}{_token(value)}")
    return tokens


def data_tag(train: tuple[str, ...]) -> str:
    """``("T91", "BSD200")`` -> ``t91bsd200``; a path contributes its folder name (not ``HR``)."""
    parts = []
    for entry in train:
        path = Path(entry)
        name = path.parent.name if path.name.lower() == "hr" and path.parent.name else path.name
        parts.append(_token(name) or "data")
    return "".join(parts)


def _count(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def run_name(recipe: Recipe) -> str:
    """``{model}-x{scale}[-{overrides}]-{data}-it{iterations}-b{batch}[-s{seed}]-{hash}``, or
    ``recipe.run_name`` (the seed is named when it is not 0).

    e.g. ``edsr_baseline-x2-t91bsd200-it300k-b16-3f2a9c``, ``vdsr-x2x3x4-t91bsd200-it1k-b16-…``.
    The trailing six hex digits are the recipe hash's, so two recipes that differ only in, say,
    the learning rate never share a run folder.
    """
    if recipe.run_name:
        return recipe.run_name
    if recipe.model is None:
        raise RecipeError(f"{recipe.source}: no model given; set `model:` or pass --model")
    scales = "".join(f"x{s}" for s in recipe.train_scales())
    parts = [recipe.model, scales, *_override_tokens(recipe.model_overrides)]
    parts += [
        data_tag(recipe.data.train),
        f"it{_count(recipe.iterations)}",
        f"b{recipe.data.batch_size}",
        *([f"s{recipe.seed}"] if recipe.seed else []),
        recipe.hash[:6],
    ]
    return "-".join(parts)
