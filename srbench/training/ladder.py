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
alone, and every rung equals a dedicated run of its length (the tests check it bit for bit, a
run that diverged and backed off too: every decay start must be a periodic checkpoint -- a
multiple of ``checkpoint_interval``, checked -- so that a branch starts where a divergence of
the dedicated run could go back to).

:func:`plan` orders the work rung by rung within each step (every model's 1k before any 4k),
so a partial ladder is already a comparison. :func:`iter_ladder` trains the plan; finished
rungs are skipped and interrupted ones resume, so the same command picks up after any stop.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from srbench.files import atomic_path, atomic_write
from srbench.training.naming import data_tag, run_name
from srbench.training.recipe import Recipe, RecipeError, check_keys, read_yaml, recipe_from_dict
from srbench.training.zoo import (
    ZooEvent,
    ZooRun,
    iter_queue,
    run_status,
    training_record_path,
)

BRANCH_FILE = "branch.json"  # in a rung's folder: the trunk snapshot it started from
TRUNKS_DIR = "trunks"  # <output_dir>/trunks/<trunk name>/it<iteration>.pt: branch points
LADDER_RECORDS = "training/ladder"  # <results_dir>/training/ladder/<run>.json: committed records
_SPEC_KEYS = ("name", "description", "recipe", "rungs", "steps", "weights")
_STEP_KEYS = ("step", "models", "scale", "seeds", "top")


@dataclass(frozen=True)
class LadderRun(ZooRun):
    """One rung of one (model, scale, seed): a wsd recipe of ``rung`` iterations."""

    step: str = ""
    records_subdir: ClassVar[str] = LADDER_RECORDS
    final_field: ClassVar[str] = "weights_sha256"
    committed_state: ClassVar[str] = "recorded"

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
    weights: str = "raw"  # which final weights a rung's checkpoint is: raw or ema (measured)


def ladder_output_dir(output_dir: str | Path | None) -> Path:
    """The run folders: ``output_dir``, else ``$SRBENCH_LADDER_DIR`` or ~/.cache/srbench/ladder."""
    from srbench.weights import ladder_dir

    return Path(output_dir).expanduser() if output_dir else ladder_dir()


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
    _check_branch_points(shared, rungs, source)
    weights = raw.get("weights", "raw")
    if weights not in ("raw", "ema"):
        raise RecipeError(f"{source}: weights must be raw or ema, got {weights!r}")
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
        step = str(entry.get("step", i))
        models = entry.get("models") or []
        scale = int(entry.get("scale", 2))
        for run in _rung_runs(shared, models, scale, entry.get("seeds", [0]), rungs, top, step):
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
        weights=weights,
    )


def _check_branch_points(shared: Recipe, rungs: Sequence[int], source: str) -> None:
    """Every rung's decay start (a longer rung's branch point) must be a periodic checkpoint:
    a branch then starts on a point a divergence can go back to (training.divergence)."""
    interval = shared.checkpoint_interval
    for rung in rungs:
        start = shared.replace(iterations=rung).decay_start
        if interval > 0 and start and start % interval:
            raise RecipeError(
                f"{source}: rung {rung}'s decay starts at iteration {start}, not a multiple of "
                f"checkpoint_interval {interval}; choose rungs or a checkpoint_interval so that "
                "every branch point is a periodic checkpoint"
            )


def _rung_runs(
    shared: Recipe,
    models: Sequence[str],
    scale: int,
    seeds: Sequence[int],
    rungs: Sequence[int],
    top: int,
    step: str,
) -> Iterator[LadderRun]:
    """The shared recipe at every rung up to ``top`` for these models and seeds, rung by rung
    (every model's 1k before any 4k): only model, scale, seed and length differ."""
    for rung in [r for r in rungs if r <= top]:
        for seed in seeds:
            for model in models:
                d = shared.to_dict()
                d.update(model=model, scale=scale, seed=int(seed), iterations=rung)
                recipe = recipe_from_dict(d, shared.source)
                yield LadderRun(recipe, run_name(recipe), step=step)


def load_ladder(name_or_path: str | Path = "ladder") -> Ladder:
    raw, source = read_yaml(name_or_path, "ladder spec")
    return ladder_from_dict(raw, source)


def select(
    ladder: Ladder,
    models: Sequence[str] | None = None,
    steps: Sequence[str] | None = None,
    scales: Sequence[int] | None = None,
    rungs: Sequence[int] | None = None,
) -> list[LadderRun]:
    """The ladder's runs for these models/steps/scales/rungs (all when None), in training order.
    A registered model at a scale the spec does not list (a plugin, or a listed model at another
    scale) gets the ladder's shared recipe at every rung, seed 0, as step ``extra``. ``rungs``
    only chooses what trains now (e.g. a pair's 4k rungs before any 16k): the recipe of a rung
    never depends on it."""
    from srbench.registry import get_card

    wanted = {get_card(m).name for m in models} if models else None
    for s in steps or ():
        if s not in ladder.steps:
            raise RecipeError(f"step {s!r} is not in {ladder.source} (it has: {ladder.steps})")
    for n in rungs or ():
        if n not in ladder.rungs:
            raise RecipeError(f"rung {n} is not in {ladder.source} (it has: {list(ladder.rungs)})")
    chosen = [
        r
        for r in ladder.runs
        if (wanted is None or r.model in wanted)
        and (not steps or r.step in steps)
        and (not scales or r.recipe.scale in scales)
    ]
    listed = {(r.model, r.recipe.scale) for r in ladder.runs}
    for model in sorted(wanted or ()):
        for scale in [s for s in scales or [2] if (model, s) not in listed]:
            top = ladder.rungs[-1]
            chosen += _rung_runs(ladder.recipe, [model], scale, [0], ladder.rungs, top, "extra")
    return [r for r in chosen if not rungs or r.rung in rungs]


def best_snapshot(run: LadderRun, output_dir: Path) -> Path | None:
    """The latest trunk snapshot this rung may start from (at or before its decay start)."""
    folder = output_dir / TRUNKS_DIR / trunk_name(run.recipe)
    start = int(run.recipe.decay_start or 0)
    usable = [
        (int(p.stem[2:]), p)
        for p in folder.glob("it*.pt")
        if p.stem[2:].isdigit() and int(p.stem[2:]) <= start
    ]
    return max(usable)[1] if usable else None


def _seed_from_snapshot(run: LadderRun, output_dir: Path) -> int | None:
    """Copy the best trunk snapshot into a new rung's folder as its checkpoint (atomically)."""
    import torch

    from srbench.training.loop import CHECKPOINT_FILE

    snapshot = best_snapshot(run, output_dir)
    if snapshot is None:
        return None
    run_dir = output_dir / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    state = torch.load(snapshot, map_location="cpu", weights_only=True)
    # What the branch inherits, so that its own cost can be told from the trunk's.
    _write_json(
        run_dir / BRANCH_FILE,
        {
            "iteration": int(state["iteration"]),
            "train_seconds": float(state.get("train_seconds", 0.0)),
            "snapshot": str(snapshot.relative_to(output_dir)),
        },
    )
    with atomic_path(run_dir / CHECKPOINT_FILE) as tmp:
        shutil.copyfile(snapshot, tmp)
    return int(state["iteration"])


def iter_ladder(
    runs: Sequence[LadderRun],
    *,
    output_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    device: str = "cpu",
    images: Sequence[Any] | None = None,
    stop: threading.Event | None = None,
    results_dir: str | Path | None = None,
) -> Iterator[ZooEvent]:
    """Train ``runs`` in order: skip finished rungs (and, with ``results_dir``, rungs recorded
    there: a fresh machine has no run folders, and must not train them again), resume
    interrupted ones, start new ones from their trunk's latest usable snapshot (never prints)."""

    def prepare(run: LadderRun, status: dict[str, Any]) -> tuple[dict, dict]:
        branched_from = _seed_from_snapshot(run, out) if status["state"] == "new" else None
        options = {
            "resume": True,
            "snapshots": [int(run.recipe.decay_start or 0)],
            "snapshot_dir": out / TRUNKS_DIR / trunk_name(run.recipe),
        }
        return {"branch": branched_from}, options

    out = ladder_output_dir(output_dir)
    yield from iter_queue(
        runs,
        out,
        prepare,
        stop=stop,
        results_dir=results_dir,
        data_root=data_root,
        device=device,
        images=images,
    )


# ----------------------------------------------------------------------------------------------
# Recording: finished rungs -> committed training records and the tag manifest
# ----------------------------------------------------------------------------------------------

WEIGHTS_KINDS = {"ema": "weights.safetensors", "raw": "weights_raw.safetensors"}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1) + "\n")


def _curve(run_dir: Path) -> list[dict[str, Any]]:
    from srbench.training.loop import read_log

    return [
        {"iteration": r["iteration"], "scale": r["scale"], "ema": r.get("ema"), **r["results"]}
        for r in read_log(run_dir)
        if r.get("kind") == "val"
    ]


def record(
    runs: Sequence[LadderRun],
    *,
    weights: str,
    output_dir: str | Path | None = None,
    results_dir: str | Path = "results",
    manifest: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Record every finished rung of ``runs``: ``<results_dir>/training/ladder/<run>.json`` (summary,
    Set5 learning curve of both the EMA and the raw weights, branch point) and its tag
    (``drn_s.zoo1k``) in the manifest ``srbench/pretrained/ladder.json`` with the sha256 of the
    ``weights`` kind (ema or raw) chosen for the ladder. Returns one row per recorded rung."""
    from srbench.pretrained import LADDER_MANIFEST
    from srbench.registry import budget_tag
    from srbench.weights import file_sha256

    if weights not in WEIGHTS_KINDS:
        raise RecipeError(f"weights must be one of {', '.join(WEIGHTS_KINDS)}, got {weights!r}")
    out = ladder_output_dir(output_dir)
    path = Path(manifest) if manifest else LADDER_MANIFEST
    table = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    rows = []
    for run in runs:
        status = run_status(run, out)
        if status["state"] != "finished":
            continue
        if run.recipe.model_overrides:  # a tag names the registered architecture, nothing else
            raise RecipeError(
                f"{run.name}: a ladder run with model_overrides cannot be recorded under "
                f"{run.model}'s name; register the variant as a model of its own"
            )
        info = status["run_json"]
        run_dir = out / run.name
        file = run_dir / WEIGHTS_KINDS[weights]
        sha = file_sha256(file)
        tag = budget_tag(run.rung, run.seed)
        row = {
            "file": f"{run.name}/{file.name}",
            "sha256": sha,
            "run": run.name,
            "iterations": run.rung,
            "seed": run.seed,
            "weights": weights,
            "train_seconds": float(info.get("train_seconds") or 0.0),
            "machine": f"{info.get('cpu_model', '?')} ({info.get('cpu_id', '?')}), "
            f"{info.get('torch_threads', '?')} threads",
            "precision": str(info.get("precision", "?")),
        }
        if info.get(
            "lr_backoffs"
        ):  # only then: the rows of runs that never diverged stay as they were
            row["lr_backoffs"] = info["lr_backoffs"]
        by_scale = table.setdefault(run.model, {}).setdefault(tag, {})
        before = by_scale.get(str(run.recipe.scale), {})
        if before.get("shipped") and before.get("sha256") == sha:  # `srbench ladder ship`'s mark
            row["shipped"] = True
        by_scale[str(run.recipe.scale)] = row
        branch_file = run_dir / BRANCH_FILE
        branch = json.loads(branch_file.read_text("utf-8")) if branch_file.is_file() else None
        record_path = training_record_path(run, results_dir)
        body = {
            "ladder_run": run.name,
            "model": run.model,
            "tag": tag,
            "scales": [run.recipe.scale],
            "rung": run.rung,
            "decay_start": run.recipe.decay_start,
            "seed": run.seed,
            "step": run.step,
            "trunk": trunk_name(run.recipe),
            "recipe_hash": run.recipe.hash,
            "trunk_hash": run.recipe.trunk_hash,
            "weights": weights,
            "weights_sha256": sha,
            "branched_from": branch,  # None: trained from iteration 0 in this folder
            "own_train_seconds": float(info.get("train_seconds") or 0.0)
            - (branch["train_seconds"] if branch else 0.0),
            "own_cpu_seconds": own_cpu_seconds(info, branch),
            "summary": info,
            "curve": _curve(run_dir),
        }
        _write_json(record_path, body)
        rows.append({"model": run.model, "tag": tag, **row})
    write_tag_manifest(path, table)
    return rows


def own_cpu_seconds(info: dict[str, Any], branch: dict[str, Any] | None) -> float | None:
    """Process-CPU seconds of a rung's own iterations (from its branch point on), work undone
    by its divergences included; None where part of them trained before CPU time was recorded.
    Unlike wall time it leaves out pauses (``kill -STOP``) and time other work held the core."""
    from srbench.training.segments import cpu_seconds, rounded

    return rounded(
        cpu_seconds(
            info.get("segments") or (),
            info.get("lr_backoffs") or (),
            after=int(branch["iteration"]) if branch else 0,
        )
    )


def write_tag_manifest(path: Path, table: dict[str, dict[str, dict]]) -> None:
    """Write ``ladder.json`` (models and tags sorted, so that rewriting it is byte-stable) and
    make this process read it anew."""
    from srbench.pretrained import clear_caches

    _write_json(path, {m: {t: table[m][t] for t in sorted(table[m])} for m in sorted(table)})
    clear_caches()


def ladder_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown: every recorded ladder run -- budget, seed, where it branched, its own and its
    cumulative training time, machine and precision, Set5 at the end (raw and EMA weights;
    the headline metric, :func:`srbench.schema.headline`)."""
    from srbench.schema import headline

    spec = headline()
    lines = [
        "| model | scale | rung | seed | from | own time | own CPU time | total time "
        "| machine, precision | Set5 raw | Set5 EMA | run |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    own_total = 0.0
    rows = [r for r in records if r.get("ladder_run")]
    for r in sorted(rows, key=lambda r: (r["scales"], r["model"], r["seed"], r["rung"])):
        info = r["summary"]
        end = {
            bool(p.get("ema")): p["set5"][spec.name]
            for p in r["curve"]
            if p["iteration"] == r["rung"] and "set5" in p
        }
        branch = r.get("branched_from")
        own_total += r["own_train_seconds"]
        machine = _machine_text(info)
        shown = [spec.fmt(end[k]) if k in end else "-" for k in (False, True)]
        lines.append(
            f"| {r['model']} | x{r['scales'][0]} | {_short(r['rung'])} | {r['seed']} | "
            f"{branch['iteration'] if branch else 0} | {r['own_train_seconds'] / 60:.1f} min | "
            f"{_minutes(r.get('own_cpu_seconds'))} | "
            f"{float(info.get('train_seconds') or 0) / 60:.1f} min | {machine} | {shown[0]} | "
            f"{shown[1]} | `{r['ladder_run']}` |"
        )
    lines += [
        "",
        f"Own training time of these runs: {own_total / 3600:.2f} h in all (2-core CPUs; "
        "the total of a rung counts its trunk too). Times are wall-clock; own CPU time is the "
        "training process's CPU time (rank 0's under DDP), which leaves out pauses and time "
        "other work held the core (-: the run trained before srbench recorded CPU time).",
    ]
    return "\n".join(lines)


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _machine_text(info: dict[str, Any]) -> str:
    """Where a run trained: one machine and precision, or each segment's where they differed
    (a run resumed elsewhere, a branch off a trunk trained elsewhere); iterations trained before
    checkpoints recorded their segments are named as such."""
    segments = info.get("segments") or []
    known = [x for x in segments if x.get("precision")]
    unknown = "".join(
        f"; {x['from']:,}-{x['to']:,}: not recorded" for x in segments if not x.get("precision")
    )
    threads = {x["threads"] for x in known if x.get("threads")}  # older segments: not recorded
    # listed one by one where machines, precisions or thread counts differ -- or may differ:
    # a segment from before thread counts were recorded beside one with a count
    partly = bool(threads) and any(not x.get("threads") for x in known)
    if len({(x["machine"], x["precision"]) for x in known}) > 1 or len(threads) > 1 or partly:
        show_threads = len(threads) > 1 or partly

        def where(x: dict[str, Any]) -> str:
            count = f"{x['threads']} threads, " if show_threads and x.get("threads") else ""
            return f"{x['machine']}, {count}{x['precision']} ({x['from']:,}-{x['to']:,})"

        return "; ".join(where(x) for x in known) + unknown
    return (
        f"{info.get('cpu_model', '?')} ({info.get('cpu_id', '?')}), "
        f"{info.get('torch_threads', '?')} threads, {info.get('precision', '?')}{unknown}"
    )


def read_ladder_records(results_dir: str | Path) -> list[dict[str, Any]]:
    """The committed training records of the ladder's recorded rungs."""
    from srbench.files import read_json_object

    fix = "restore it with `git checkout -- results/training` or run `srbench ladder record`"
    folder = Path(results_dir) / LADDER_RECORDS
    return [read_json_object(p, fix) for p in sorted(folder.glob("*.json"))]
