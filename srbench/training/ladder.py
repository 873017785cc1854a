"""The budget ladder: every model trained under one recipe to several budgets (rungs).

A ladder spec (``srbench/recipes/ladder.yaml``) is a YAML mapping::

    name: ladder
    recipe: {...}              # one complete recipe (wsd schedule) without model/scale/seed
    rungs: [1000, 4000, 16000] # the budgets, in iterations
    steps:                     # what trains, in this order
      - {step: a, models: [drn_s, idn], scale: 2, seeds: [0], top: 16000}

A rung of ``N`` iterations is the recipe with ``iterations: N``: under the wsd schedule its rate
is constant until ``decay_start`` (80% of ``N``), so every rung of one (model, scale, seed)
shares one trunk. The rung-``N`` run starts from the trunk's snapshot at the latest iteration it
can use (``loop.is_branch_point``) and keeps a snapshot at its own decay start, where the next
rung continues: 1k, 4k and 16k together cost 1000 + 3200 + 12800 iterations, 1.06x the 16k run
alone, and every rung equals a dedicated run of its length (the tests check it bit for bit).

:func:`plan` orders the work rung by rung within each step (every model's 1k before any 4k),
so a partial ladder is already a comparison. :func:`iter_ladder` trains the plan; finished
rungs are skipped and interrupted ones resume, so the same command picks up after any stop.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srbench.files import atomic_path
from srbench.training.recipe import (
    Recipe,
    RecipeError,
    check_keys,
    data_tag,
    read_yaml,
    recipe_from_dict,
    run_name,
)
from srbench.training.zoo import ZooEvent, ZooRun, run_status

DEFAULT_LADDER_DIR = Path("~/.cache/srbench/ladder")
TRUNKS_DIR = "trunks"  # <output_dir>/trunks/<trunk name>/it<iteration>.pt: branch points
_SPEC_KEYS = ("name", "description", "recipe", "rungs", "steps")
_STEP_KEYS = ("step", "models", "scale", "seeds", "top")


@dataclass(frozen=True)
class LadderRun(ZooRun):
    """One rung of one (model, scale, seed): a wsd recipe of ``rung`` iterations."""

    step: str = ""

    @property
    def rung(self) -> int:
        return self.recipe.iterations

    @property
    def seed(self) -> int:
        return self.recipe.seed

    @property
    def label(self) -> str:
        return f"{self.model} x{self.recipe.scale} {_short(self.rung)} seed {self.seed}"


@dataclass(frozen=True)
class Ladder:
    name: str
    recipe: Recipe
    rungs: tuple[int, ...]
    runs: tuple[LadderRun, ...]
    description: str = ""
    source: str = "<dict>"
    steps: tuple[str, ...] = field(default=())


def _short(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def trunk_name(recipe: Recipe) -> str:
    """``{model}-x{scale}-{data}-b{batch}-s{seed}-{trunk hash}``: the folder of a trunk's
    branch-point snapshots (shared by every rung of that model, scale and seed)."""
    if recipe.trunk_hash is None:
        raise RecipeError(f"{recipe.source}: a ladder needs the wsd schedule")
    return "-".join(
        [
            str(recipe.model),
            f"x{recipe.scale}",
            data_tag(recipe.data.train),
            f"b{recipe.data.batch_size}",
            f"s{recipe.seed}",
            recipe.trunk_hash[:6],
        ]
    )


def ladder_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Ladder:
    check_keys(source, raw, _SPEC_KEYS, "ladder spec")
    base = raw.get("recipe")
    if not isinstance(base, dict):
        raise RecipeError(f"{source}: `recipe:` must be a mapping (the shared training recipe)")
    for key in ("model", "scale", "multiscale", "init_from", "run_name", "seed", "iterations"):
        if key in base:
            raise RecipeError(f"{source}: the shared recipe must not set {key!r} (set per step)")
    rungs = raw.get("rungs")
    if not isinstance(rungs, list) or not rungs or any(not isinstance(r, int) for r in rungs):
        raise RecipeError(f"{source}: `rungs:` must list iteration counts, e.g. [1000, 4000]")
    rungs = sorted(set(rungs))
    shared = recipe_from_dict({**base, "iterations": rungs[-1]}, source, check=False)
    if shared.schedule.name != "wsd":
        raise RecipeError(f"{source}: a ladder's recipe needs `schedule: {{name: wsd}}`")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise RecipeError(f"{source}: `steps:` must list at least one step")
    runs: list[LadderRun] = []
    seen: set[str] = set()
    for i, entry in enumerate(steps):
        where = f"{source}: steps[{i}]"
        if not isinstance(entry, dict):
            raise RecipeError(f"{where}: each step is a mapping with `models:` and `scale:`")
        check_keys(where, entry, _STEP_KEYS, "step")
        top = entry.get("top", rungs[-1])
        if top not in rungs:
            raise RecipeError(f"{where}: top {top} is not one of the rungs {rungs}")
        models = entry.get("models") or []
        seeds = entry.get("seeds", [0])
        for rung in [r for r in rungs if r <= top]:
            for seed in seeds:
                for model in models:
                    d = shared.to_dict()
                    d.update(model=model, scale=int(entry.get("scale", 2)), seed=int(seed))
                    d["iterations"] = rung
                    recipe = recipe_from_dict(d, source)
                    run = LadderRun(recipe, run_name(recipe), step=str(entry.get("step", i)))
                    if run.name not in seen:
                        seen.add(run.name)
                        runs.append(run)
    return Ladder(
        name=str(raw.get("name") or Path(source).stem),
        recipe=shared,
        rungs=tuple(rungs),
        runs=tuple(runs),
        description=str(raw.get("description") or ""),
        source=source,
        steps=tuple(dict.fromkeys(r.step for r in runs)),
    )


def load_ladder(name_or_path: str | Path = "ladder") -> Ladder:
    raw, source = read_yaml(name_or_path, "ladder spec")
    return ladder_from_dict(raw, source)


def select(
    ladder: Ladder,
    models: Sequence[str] | None = None,
    steps: Sequence[str] | None = None,
    scales: Sequence[int] | None = None,
) -> list[LadderRun]:
    """The ladder's runs for these models/steps/scales (all when None), in training order."""
    from srbench.registry import get_card

    wanted = {get_card(m).name for m in models} if models else None
    for s in steps or ():
        if s not in ladder.steps:
            raise RecipeError(f"step {s!r} is not in {ladder.source} (it has: {ladder.steps})")
    return [
        r
        for r in ladder.runs
        if (wanted is None or r.model in wanted)
        and (not steps or r.step in steps)
        and (not scales or r.recipe.scale in scales)
    ]


def best_snapshot(run: LadderRun, output_dir: Path) -> Path | None:
    """The latest trunk snapshot this rung may start from (at or before its decay start)."""
    from srbench.training.loop import snapshot_name

    folder = output_dir / TRUNKS_DIR / trunk_name(run.recipe)
    start = int(run.recipe.decay_start or 0)
    candidates = sorted(
        (int(p.stem[2:]), p)
        for p in folder.glob("it*.pt")
        if p.stem[2:].isdigit() and int(p.stem[2:]) <= start
    )
    if not candidates:
        return None
    path = candidates[-1][1]
    assert path.name == snapshot_name(candidates[-1][0])
    return path


def _seed_from_snapshot(run: LadderRun, output_dir: Path) -> int | None:
    """Copy the best trunk snapshot into a new rung's folder as its checkpoint (atomically)."""
    from srbench.training.loop import CHECKPOINT_FILE

    snapshot = best_snapshot(run, output_dir)
    if snapshot is None:
        return None
    with atomic_path(output_dir / run.name / CHECKPOINT_FILE) as tmp:
        shutil.copyfile(snapshot, tmp)
    return int(snapshot.stem[2:])


def iter_ladder(
    runs: Sequence[LadderRun],
    *,
    output_dir: str | Path = DEFAULT_LADDER_DIR,
    data_root: str | Path | None = None,
    device: str = "cpu",
    images: Sequence[Any] | None = None,
) -> Iterator[ZooEvent]:
    """Train ``runs`` in order: skip finished rungs, resume interrupted ones, start new ones
    from their trunk's latest usable snapshot (never prints)."""
    from srbench.training.loop import iter_train

    out = Path(output_dir).expanduser()
    total = len(runs)
    done: list[dict[str, Any]] = []
    for index, run in enumerate(runs):
        status = run_status(run, out)
        if status["state"] == "finished":
            done.append(status["run_json"])
            yield ZooEvent("run-skip", index, total, run, info=status)
            continue
        branched_from = None
        if status["state"] == "new":
            branched_from = _seed_from_snapshot(run, out)
        yield ZooEvent("run-start", index, total, run, info={**status, "branch": branched_from})
        for event in iter_train(
            run.recipe,
            output_dir=out,
            data_root=data_root,
            device=device,
            images=images,
            resume=True,
            snapshots=[int(run.recipe.decay_start or 0)],
            snapshot_dir=out / TRUNKS_DIR / trunk_name(run.recipe),
        ):
            yield ZooEvent("train", index, total, run, train_event=event)
            if event.kind == "done" and event.info.get("finished"):
                done.append(event.info)
    yield ZooEvent("zoo-done", total, total, info={"runs": done, "output_dir": str(out)})
