"""Ablations: a grid of model variants trained under one budget, scored into the result store.

An ablation spec is a YAML mapping::

    name: drn                      # tag written into every record (``ablation: drn``)
    description: ...
    recipe: default                # base recipe: built-in name or path
    recipe_overrides:              # partial recipe (nested mapping or dotted keys), the budget
      iterations: 100000
      data: {batch_size: 16, patch_size: 48}
    model: drn_s                   # default model of the variants
    scale: 2
    evaluate: {datasets: [set5, set14], protocol: standard}
    variants:                      # explicit variants ...
      - name: base
      - name: no-distill
        overrides: {use_distill: false}      # constructor kwargs on top of the recipe's
      - name: plain
        model: drn_s_plain
    grid:                          # ... and/or a cartesian grid (variants named key=value,...)
      activation: [elu, relu]

Every variant gets the same recipe -- iterations, batch, patches, data, optimizer, schedule and
seed -- and differs only in its model and constructor overrides. After training, it is scored on
``evaluate.datasets`` with the project's protocol (``srbench.training.evaluate``: the runner's
per-image steps) and the records go into the result store with the runner's fields plus
``ablation``, ``variant``, ``params``, ``model_overrides``, ``train_run`` and ``recipe_hash``.
Re-running a spec skips variants already trained and scored (and resumes interrupted ones).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from srbench.registry import create_model, get_card
from srbench.results import ResultStore
from srbench.training import distributed
from srbench.training.recipe import (
    Recipe,
    RecipeError,
    apply_overrides,
    check_keys,
    check_model,
    read_yaml,
    recipe_from_dict,
    run_name,
)

_SPEC_KEYS = (
    "name",
    "description",
    "recipe",
    "recipe_overrides",
    "model",
    "scale",
    "evaluate",
    "variants",
    "grid",
)
_VARIANT_KEYS = ("name", "model", "overrides", "description")
_EVALUATE_KEYS = ("datasets", "protocol")


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class AblationSpec:
    name: str
    recipe: Recipe  # the shared budget (model and overrides replaced per variant)
    variants: tuple[Variant, ...]
    datasets: tuple[str, ...] = ("set5", "set14")
    protocol: str = "standard"
    description: str = ""
    source: str = "<dict>"

    def variant_recipe(self, variant: Variant) -> Recipe:
        return dataclasses.replace(
            self.recipe,
            name=f"{self.name}/{variant.name}",
            model=variant.model,
            model_overrides={**self.recipe.model_overrides, **variant.overrides},
            run_name=None,
        )


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "model_overrides":
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _grid_name(values: dict[str, Any]) -> str:
    return ",".join(
        f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in values.items()
    )


def spec_from_dict(
    raw: dict[str, Any],
    source: str = "<dict>",
    *,
    iterations: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> AblationSpec:
    """Validate an ablation spec; every variant's model and overrides are checked up front."""
    check_keys(source, raw, _SPEC_KEYS, "ablation spec")
    name = raw.get("name") or Path(source).stem
    if not isinstance(name, str):
        raise RecipeError(f"{source}: name must be a string")
    base = raw.get("recipe", "default")
    if isinstance(base, dict):
        base_raw, base_source = base, f"{source} (recipe)"
    elif isinstance(base, str):
        base_raw, base_source = read_yaml(base, "recipe")
    else:
        raise RecipeError(f"{source}: recipe must be a recipe name, a path or a mapping")
    extra = raw.get("recipe_overrides") or {}
    if not isinstance(extra, dict):
        raise RecipeError(f"{source}: recipe_overrides must be a mapping")
    dotted = {k: v for k, v in extra.items() if "." in str(k)}
    nested = {k: v for k, v in extra.items() if "." not in str(k)}
    merged = apply_overrides(_deep_merge(base_raw, nested), dotted)
    for key in ("model", "scale"):
        if raw.get(key) is not None:
            merged[key] = raw[key]
    if iterations is not None:
        merged["iterations"] = iterations
    merged = apply_overrides(merged, overrides)
    recipe = recipe_from_dict(merged, f"{source} ({base_source})", check=False)

    variants: list[Variant] = []
    for i, item in enumerate(raw.get("variants") or []):
        where = f"{source}: variants[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RecipeError(f"{where}: each variant is a mapping with a `name`")
        check_keys(where, item, _VARIANT_KEYS, "variant")
        var_overrides = item.get("overrides") or {}
        if not isinstance(var_overrides, dict):
            raise RecipeError(f"{where}: overrides must be a mapping of constructor arguments")
        variants.append(
            Variant(
                item["name"],
                item.get("model") or recipe.model or "",
                dict(var_overrides),
                str(item.get("description", "")),
            )
        )
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise RecipeError(f"{source}: grid must map constructor arguments to non-empty lists")
    if grid:
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            values = dict(zip(keys, combo, strict=True))
            variants.append(Variant(_grid_name(values), recipe.model or "", values))
    if not variants:
        raise RecipeError(f"{source}: no variants (give `variants:` and/or `grid:`)")
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RecipeError(f"{source}: duplicate variant names: {', '.join(duplicates)}")

    evaluate = raw.get("evaluate") or {}
    if not isinstance(evaluate, dict):
        raise RecipeError(f"{source}: evaluate must be a mapping (datasets, protocol)")
    check_keys(source, evaluate, _EVALUATE_KEYS, "evaluate")
    datasets = evaluate.get("datasets", ["set5", "set14"])
    datasets = tuple([datasets] if isinstance(datasets, str) else datasets)
    spec = AblationSpec(
        name=name,
        recipe=recipe,
        variants=tuple(variants),
        datasets=datasets,
        protocol=str(evaluate.get("protocol", "standard")),
        description=str(raw.get("description", "")),
        source=source,
    )
    for variant in spec.variants:
        if not variant.model:
            raise RecipeError(f"{source}: variant {variant.name!r} has no model")
        check_model(spec.variant_recipe(variant), f"{source}: variant {variant.name!r}")
    return spec


def load_spec(
    name_or_path: str | Path,
    *,
    iterations: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> AblationSpec:
    """Read an ablation spec (a path, or a built-in name such as ``ablation-drn``)."""
    raw, source = read_yaml(name_or_path, "ablation spec")
    return spec_from_dict(raw, source, iterations=iterations, overrides=overrides)


@dataclass
class AblationEvent:
    """``kind``: variant-start, train (``train_event`` set), variant-skip, variant-done, done."""

    kind: str
    variant: str = ""
    index: int = 0
    total: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    train_event: Any = None


def _stored(store: ResultStore, spec: AblationSpec, variant: str, sha: str) -> list[dict]:
    return [
        r
        for r in store.latest_records()
        if r.get("ablation") == spec.name
        and r.get("variant") == variant
        and r.get("weights_sha256") == sha
        and r.get("protocol") == spec.protocol
        and r.get("dataset") in spec.datasets
    ]


def iter_ablate(
    spec: AblationSpec,
    *,
    data_root: str | Path | None = None,
    output_dir: str | Path = "runs",
    results_dir: str | Path = "results",
    device: str = "cpu",
    compile: bool | None = None,
    images: Any = None,
) -> Iterator[AblationEvent]:
    """Train and score every variant (see the module docstring); yields events, never prints.

    Under ``torchrun`` every variant trains with DDP; rank 0 scores and writes.
    """
    ctx = distributed.setup(device)  # once for all variants (under torchrun)
    try:
        yield from _ablate(
            spec,
            ctx=ctx,
            data_root=data_root,
            output_dir=Path(output_dir) / f"ablation-{spec.name}",
            store=ResultStore(Path(results_dir)),
            device=distributed.rank_device(device, ctx),
            compile=compile,
            images=images,
        )
    finally:
        distributed.teardown(ctx)


def _ablate(
    spec: AblationSpec,
    *,
    ctx: distributed.DistContext,
    data_root: str | Path | None,
    output_dir: Path,
    store: ResultStore,
    device: torch.device,
    compile: bool | None,
    images: Any,
) -> Iterator[AblationEvent]:
    from srbench.profiling import trainable_params
    from srbench.training.evaluate import (
        iter_scores,
        prepare_sources,
        result_records,
        summarise_scores,
        validation_sources,
    )
    from srbench.training.loop import WEIGHTS_FILE, iter_train, prepare_training_set
    from srbench.weights import file_sha256, load_weights

    main = ctx.is_main
    sources = validation_sources(spec.datasets, data_root) if main else []
    training_sets: dict[str, Any] = {}
    eval_sets: dict[str, Any] = {}
    rows = []
    total = len(spec.variants)
    for index, variant in enumerate(spec.variants):
        recipe = spec.variant_recipe(variant)
        card = get_card(recipe.model)  # type: ignore[arg-type]
        name = run_name(recipe)
        run_dir = output_dir / name
        weights = run_dir / WEIGHTS_FILE
        yield AblationEvent("variant-start", variant.name, index, total, {"run_name": name})

        finished = weights.is_file() and _finished_with(run_dir, recipe)
        if not finished:
            channels = "y" if card.input_channels == "y" else "rgb"
            if channels not in training_sets:
                training_sets[channels] = prepare_training_set(
                    recipe, data_root=data_root, images=images, device=device
                )
            for event in iter_train(
                recipe,
                output_dir=output_dir,
                data_root=data_root,
                device=str(device),
                resume=True,
                compile=compile,
                training_set=training_sets[channels],
            ):
                yield AblationEvent("train", variant.name, index, total, train_event=event)

        if main:
            sha = file_sha256(weights)
            model = create_model(card.name, recipe.scale, **recipe.model_overrides)
            load_weights(model, weights, card=card, scale=recipe.scale)
            params = trainable_params(model)
            stored = _stored(store, spec, variant.name, sha)
            if {r["dataset"] for r in stored} >= set(spec.datasets):
                scores = stored
                yield AblationEvent("variant-skip", variant.name, index, total, {"run_name": name})
            else:
                if card.input_channels not in eval_sets:
                    eval_sets[card.input_channels] = prepare_sources(
                        sources, recipe.scale, card.input_channels, spec.protocol
                    )
                dev = device
                scores = list(
                    iter_scores(model.to(dev), eval_sets[card.input_channels], spec.protocol, dev)
                )
                store.append(
                    result_records(
                        scores,
                        card=card,
                        scale=recipe.scale,
                        weights_sha256=sha,
                        protocol=spec.protocol,
                        device=dev,
                        seed=recipe.seed,
                        extra={
                            "ablation": spec.name,
                            "variant": variant.name,
                            "params": params,
                            "model_overrides": recipe.model_overrides,
                            "train_run": name,
                            "recipe_hash": recipe.hash,
                            "train_iterations": recipe.iterations,
                        },
                    )
                )
            row = {
                "variant": variant.name,
                "model": card.name,
                "overrides": recipe.model_overrides,
                "params": params,
                "run_name": name,
                "weights_sha256": sha,
                "results": summarise_scores(scores),
            }
            rows.append(row)
            yield AblationEvent("variant-done", variant.name, index, total, row)
        distributed.barrier(ctx)
    yield AblationEvent(
        "done",
        total=total,
        info={
            "ablation": spec.name,
            "protocol": spec.protocol,
            "datasets": list(spec.datasets),
            "rows": rows,
            "results_dir": str(store.root),
        },
    )


def _finished_with(run_dir: Path, recipe: Recipe) -> bool:
    path = run_dir / "run.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("recipe_hash") == recipe.hash
    except json.JSONDecodeError:
        return False


def ablate(spec: AblationSpec, **kwargs: Any) -> dict[str, Any]:
    """Run :func:`iter_ablate` to the end; returns the ``done`` info (one row per variant)."""
    info: dict[str, Any] = {}
    for event in iter_ablate(spec, **kwargs):
        if event.kind == "done":
            info = event.info
    return info
