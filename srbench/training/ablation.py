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
from typing import TYPE_CHECKING, Any

import torch

from srbench.errors import SRBenchError
from srbench.protocols import Protocol, get_protocol
from srbench.registry import create_model, get_card
from srbench.training import distributed
from srbench.training.loop import WEIGHTS_FILE
from srbench.training.naming import run_name
from srbench.training.recipe import (
    Recipe,
    RecipeError,
    apply_overrides,
    check_keys,
    check_model,
    read_yaml,
    recipe_from_dict,
)

if TYPE_CHECKING:
    from srbench.runner import Session
    from srbench.sources import DatasetSource

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
    protocol: Protocol = field(default_factory=lambda: get_protocol("standard"))
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
        protocol=_protocol(evaluate.get("protocol", "standard"), source),
        description=str(raw.get("description", "")),
        source=source,
    )
    for variant in spec.variants:
        if not variant.model:
            raise RecipeError(f"{source}: variant {variant.name!r} has no model")
        check_model(spec.variant_recipe(variant), f"{source}: variant {variant.name!r}")
    return spec


def _protocol(value: Any, source: str) -> Protocol:
    try:
        return get_protocol(str(value))
    except SRBenchError as exc:
        raise RecipeError(f"{source}: evaluate.protocol: {exc}") from None


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
            results_dir=Path(results_dir),
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
    results_dir: Path,
    device: torch.device,
    compile: bool | None,
    images: Any,
) -> Iterator[AblationEvent]:
    from srbench.runner import RunConfig, Session
    from srbench.training.evaluate import validation_sources

    sources = validation_sources(spec.datasets, data_root) if ctx.is_main else []
    # One run of the runner for all variants; torch's thread count is the training's.
    config = RunConfig(
        models=[], datasets=list(spec.datasets), scales=[], protocol=spec.protocol,
        results_dir=results_dir, device=str(device), seed=spec.recipe.seed, crops=False,
        count_costs=False, threads=torch.get_num_threads(),
    )  # fmt: skip
    session = Session(config, device) if ctx.is_main else None
    training_sets: dict[str, Any] = {}
    rows = []
    total = len(spec.variants)
    for index, variant in enumerate(spec.variants):
        recipe = spec.variant_recipe(variant)
        name = run_name(recipe)
        yield AblationEvent("variant-start", variant.name, index, total, {"run_name": name})
        run_dir = output_dir / name
        if not ((run_dir / WEIGHTS_FILE).is_file() and _finished_with(run_dir, recipe)):
            for event in _train_variant(recipe, training_sets, output_dir, data_root, device,
                                        compile, images):  # fmt: skip
                yield AblationEvent("train", variant.name, index, total, train_event=event)
        if session is not None:
            row, skipped = _score_variant(spec, variant, recipe, run_dir, session, sources)
            if skipped:
                yield AblationEvent("variant-skip", variant.name, index, total, {"run_name": name})
            rows.append(row)
            yield AblationEvent("variant-done", variant.name, index, total, row)
        distributed.barrier(ctx)
    info = {
        "ablation": spec.name,
        "protocol": spec.protocol.id,
        "datasets": list(spec.datasets),
        "rows": rows,
        "results_dir": str(results_dir),
    }
    yield AblationEvent("done", total=total, info=info)


def _train_variant(
    recipe: Recipe,
    training_sets: dict[str, Any],
    output_dir: Path,
    data_root: str | Path | None,
    device: torch.device,
    compile: bool | None,
    images: Any,
) -> Iterator[Any]:
    """Train (or resume) one variant; variants of one input kind share their training set."""
    from srbench.training.loop import iter_train, prepare_training_set

    channels = "y" if get_card(recipe.model).input_channels == "y" else "rgb"  # type: ignore[arg-type]
    if channels not in training_sets:
        training_sets[channels] = prepare_training_set(
            recipe, data_root=data_root, images=images, device=device
        )
    yield from iter_train(
        recipe,
        output_dir=output_dir,
        data_root=data_root,
        device=str(device),
        resume=True,
        compile=compile,
        training_set=training_sets[channels],
    )


def _score_variant(
    spec: AblationSpec,
    variant: Variant,
    recipe: Recipe,
    run_dir: Path,
    session: Session,
    sources: list[DatasetSource],
) -> tuple[dict[str, Any], bool]:
    """Score a trained variant through the runner's loop (results in the store are reused);
    returns its summary row and whether every result was in the store already."""
    from srbench.codehash import model_code_sha256
    from srbench.evaluation import Evaluand
    from srbench.inference import memory_format
    from srbench.profiling import trainable_params
    from srbench.runner import iter_model, quiet_blas
    from srbench.schema import record_key
    from srbench.threads import restored_threads
    from srbench.training.evaluate import summarise_scores
    from srbench.weights import load_weights

    card = get_card(recipe.model)  # type: ignore[arg-type]
    model = create_model(card.name, recipe.scale, **recipe.model_overrides)
    sha = load_weights(model, run_dir / WEIGHTS_FILE, card=card, scale=recipe.scale)
    params = trainable_params(model)
    device = session.record.device
    model = model.to(device).to(memory_format=memory_format(device)).eval()
    extra = {
        "ablation": spec.name,
        "variant": variant.name,
        "params": params,
        "model_overrides": recipe.model_overrides,
        "train_run": run_dir.name,
        "recipe_hash": recipe.hash,
        "train_iterations": recipe.iterations,
    }
    job = Evaluand(
        model, card.name, card, recipe.scale, sha, model_code_sha256(card.name), extra=extra
    )
    with quiet_blas(), restored_threads():
        events = [e for e in iter_model(job, sources, session) if e.kind in ("image", "skip")]
    assert session.store is not None  # an ablation's session stores its results
    stored = {record_key(r): r for r in session.store.latest_records()}
    scores = [e.record or stored[e.key or ()] for e in events]
    row = {
        "variant": variant.name,
        "model": card.name,
        "overrides": recipe.model_overrides,
        "params": params,
        "run_name": run_dir.name,
        "weights_sha256": sha,
        "results": summarise_scores(scores),
    }
    return row, all(e.kind == "skip" for e in events)


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
