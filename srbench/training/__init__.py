"""Training and ablation harness: recipes (YAML), the training loop, throughput, ablations, DDP.

Public entry points (library code: nothing here prints):

* :func:`load_recipe` / :class:`Recipe` -- ``srbench.training.recipe``; :func:`run_name` --
  ``srbench.training.naming``;
* :func:`iter_train` / :func:`train` / :func:`train_benchmark` -- ``srbench.training.loop``;
* :func:`load_spec` / :func:`iter_ablate` -- ``srbench.training.ablation``;
* ``srbench.cli.train`` / ``srbench.cli.zoo`` -- the printing commands (``srbench train``, ...).

Submodules are imported on first use, so ``import srbench.training`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Recipe": "recipe",
    "RecipeError": "recipe",
    "load_recipe": "recipe",
    "recipe_from_dict": "recipe",
    "run_name": "naming",
    "builtin_recipes": "recipe",
    "TrainEvent": "loop",
    "TrainingError": "loop",
    "iter_train": "loop",
    "train": "loop",
    "train_benchmark": "loop",
    "AblationSpec": "ablation",
    "load_spec": "ablation",
    "iter_ablate": "ablation",
    "ablate": "ablation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"srbench.training.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'srbench.training' has no attribute {name!r}")
