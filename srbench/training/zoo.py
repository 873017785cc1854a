"""The model zoo: every model trained under one recipe, as one resumable batch.

A zoo spec (``srbench/recipes/zoo.yaml``) is a YAML mapping::

    name: zoo
    recipe: {...}                  # one complete recipe without model/scale: the shared budget
    finetune_from: 2               # x3/x4 runs start from the same model's x2 weights
    runs:                          # models and their scales
      - {model: idn, scales: [2, 3, 4]}
      - {model: vdsr, multiscale: [2, 3, 4]}   # one network for all three (VDSR's paper)

:func:`plan` expands it into runs in training order -- every x2 run first (they are the
fine-tuning starts), then x3, x4, then multi-scale ones -- each a :class:`Recipe` that differs
from the others only in ``model``, ``scale``/``multiscale`` and ``init_from``. :func:`iter_zoo`
trains them one after the other: a finished run (``run.json`` present) is skipped, an interrupted
one resumes from its checkpoint exactly, so the same command can be started again after any stop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from srbench.errors import SRBenchError
from srbench.files import atomic_write, read_json_object
from srbench.training.naming import run_name
from srbench.training.recipe import Recipe, RecipeError, check_keys, read_yaml, recipe_from_dict

DEFAULT_ZOO_DIR = Path("~/.cache/srbench/zoo")
_SPEC_KEYS = ("name", "description", "recipe", "finetune_from", "runs")
_RUN_KEYS = ("model", "scales", "multiscale")

TRAINING_DIR = "training"  # <results_dir>/training/<run>.json: committed training records


@dataclass(frozen=True)
class ZooRun:
    recipe: Recipe
    name: str  # run folder name (srbench.training.naming.run_name)

    @property
    def model(self) -> str:
        return str(self.recipe.model)

    @property
    def scales(self) -> tuple[int, ...]:
        return self.recipe.train_scales()

    @property
    def label(self) -> str:
        return f"{self.model} {'/'.join(f'x{s}' for s in self.scales)}"

    # Where its committed training record lives (under the results dir), the record field that
    # says it is final, and the state a run with such a record and no run folder is in.
    records_subdir: ClassVar[str] = TRAINING_DIR
    final_field: ClassVar[str] = "shipped_sha256"
    committed_state: ClassVar[str] = "shipped"


@dataclass(frozen=True)
class Zoo:
    name: str
    recipe: Recipe  # the shared recipe (model unset)
    runs: tuple[ZooRun, ...]
    finetune_from: int | None = 2
    description: str = ""
    source: str = "<dict>"


@dataclass
class ZooEvent:
    """``kind``: run-skip (already finished), run-start, train (a training event), zoo-done."""

    kind: str
    index: int
    total: int
    run: ZooRun | None = None
    train_event: Any = None
    info: dict[str, Any] = field(default_factory=dict)


def zoo_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Zoo:
    check_keys(source, raw, _SPEC_KEYS, "zoo spec")
    base = raw.get("recipe")
    if not isinstance(base, dict):
        raise RecipeError(f"{source}: `recipe:` must be a mapping (the shared training recipe)")
    for key in ("model", "scale", "multiscale", "init_from", "run_name", "model_overrides"):
        if key in base:
            raise RecipeError(f"{source}: the shared recipe must not set {key!r} (set per run)")
    shared = recipe_from_dict(base, source, check=False)
    finetune = raw.get("finetune_from", 2)
    if finetune is not None and (not isinstance(finetune, int) or finetune < 1):
        raise RecipeError(f"{source}: finetune_from must be a scale (e.g. 2) or null")
    entries = raw.get("runs") or []
    if not isinstance(entries, list) or not entries:
        raise RecipeError(f"{source}: `runs:` must list at least one model")

    single: list[tuple[int, str]] = []  # (scale, model)
    multi: list[tuple[tuple[int, ...], str]] = []
    for i, entry in enumerate(entries):
        where = f"{source}: runs[{i}]"
        if not isinstance(entry, dict) or "model" not in entry:
            raise RecipeError(f"{where}: each run is a mapping with a `model:`")
        check_keys(where, entry, _RUN_KEYS, "run")
        if "multiscale" in entry:
            scales = entry["multiscale"]
            if "scales" in entry:
                raise RecipeError(f"{where}: give `scales` or `multiscale`, not both")
            multi.append((tuple(int(s) for s in scales), str(entry["model"])))
        else:
            for s in entry.get("scales", [2]):
                single.append((int(s), str(entry["model"])))

    def make(model: str, **changes: Any) -> Recipe:
        d = shared.to_dict()
        d.update(model=model, **changes)
        return recipe_from_dict(d, source)

    runs: list[ZooRun] = []
    seen: set[str] = set()
    by_model_scale: dict[tuple[str, int], ZooRun] = {}
    order = sorted(single, key=lambda t: (t[0] != (finetune or 0), t[0]))  # stable per scale
    for scale, model in order:
        changes: dict[str, Any] = {"scale": scale}
        start = by_model_scale.get((model, finetune)) if finetune else None
        if start is not None and scale != finetune:
            changes["init_from"] = start.name
        recipe = make(model, **changes)
        run = ZooRun(recipe, run_name(recipe))
        if run.name in seen:
            raise RecipeError(f"{source}: {run.label} is listed twice")
        seen.add(run.name)
        by_model_scale[(recipe.model, scale)] = run  # type: ignore[index]
        runs.append(run)
    for scales, model in multi:
        recipe = make(model, multiscale=list(scales))
        run = ZooRun(recipe, run_name(recipe))
        if run.name in seen:
            raise RecipeError(f"{source}: {run.label} is listed twice")
        seen.add(run.name)
        runs.append(run)
    return Zoo(
        name=str(raw.get("name") or Path(source).stem),
        recipe=shared,
        runs=tuple(runs),
        finetune_from=finetune,
        description=str(raw.get("description") or ""),
        source=source,
    )


def load_zoo(name_or_path: str | Path = "zoo") -> Zoo:
    raw, source = read_yaml(name_or_path, "zoo spec")
    return zoo_from_dict(raw, source)


def select(
    zoo: Zoo,
    models: Sequence[str] | None = None,
    scales: Sequence[int] | None = None,
    *,
    registered: bool = False,
) -> list[ZooRun]:
    """The zoo's runs for these models/scales (all when None), in training order.

    ``registered``: a registered model the spec does not list (a plugin) gets runs under the
    zoo's own shared recipe too (:func:`extra_runs`), instead of an error."""
    from srbench.registry import get_card

    wanted = {get_card(m).name for m in models} if models else None
    known = {r.model for r in zoo.runs}
    extra: list[ZooRun] = []
    for m in sorted(wanted or ()):
        if m in known:
            continue
        if not registered:
            raise RecipeError(
                f"{m} is not in the zoo {zoo.source} (it has: {', '.join(sorted(known))})"
            )
        extra += extra_runs(zoo, m, scales)
    return [
        r
        for r in zoo.runs
        if (wanted is None or r.model in wanted)
        and (not scales or any(s in scales for s in r.scales))
    ] + extra


def extra_runs(zoo: Zoo, model: str, scales: Sequence[int] | None = None) -> list[ZooRun]:
    """Runs of a registered model the spec does not list, under the zoo's shared recipe and
    fine-tuning rule: the same budget as every zoo model, so its numbers compare with theirs."""
    from srbench.registry import get_card

    card = get_card(model)
    if not card.trainable:
        raise RecipeError(f"{card.name} has no trainable parameters: nothing to train")
    wanted = [s for s in (scales or card.scales) if s in card.scales]
    if not wanted:
        have = ", ".join(f"x{s}" for s in card.scales)
        raise RecipeError(f"{card.name} supports {have}, not {', '.join(map(str, scales or []))}")
    per_run = ("model", "scale", "multiscale", "init_from", "run_name", "model_overrides")
    shared = {k: v for k, v in zoo.recipe.to_dict().items() if k not in per_run}
    spec = {"recipe": shared, "finetune_from": zoo.finetune_from,
            "runs": [{"model": card.name, "scales": wanted}]}  # fmt: skip
    return list(zoo_from_dict(spec, zoo.source).runs)


def run_status(
    run: ZooRun, output_dir: str | Path, results_dir: str | Path | None = None
) -> dict[str, Any]:
    """``{"state": finished|interrupted|new|shipped, "iteration", "train_seconds", "run_json"}``.

    ``shipped`` (a ladder rung: ``recorded``, ``run.committed_state``): no run folder here, but
    ``results_dir`` holds the committed training record of this very recipe (a fresh machine has
    only the committed records).
    """
    run_dir = Path(output_dir).expanduser() / run.name
    summary = run_dir / "run.json"
    if summary.is_file() and (run_dir / "weights.safetensors").is_file():
        info = read_json_object(
            summary,
            "delete it and run `srbench zoo train` again: the run resumes from its checkpoint "
            "and writes it anew",
        )
        return {
            "state": "finished",
            "iteration": info.get("iterations"),
            "train_seconds": info.get("train_seconds"),
            "lr_backoffs": list(info.get("lr_backoffs") or []),
            "run_json": info,
        }
    from srbench.training.loop import read_checkpoint

    state = read_checkpoint(run_dir)
    if state is not None:
        return {
            "state": "interrupted",
            "iteration": int(state["iteration"]),
            "train_seconds": float(state.get("train_seconds", 0.0)),
            "lr_backoffs": list(state.get("backoffs", [])),
        }
    shipped = _committed_summary(run, results_dir) if results_dir is not None else None
    if shipped is not None:
        return {
            "state": run.committed_state,
            "iteration": shipped.get("iterations"),
            "train_seconds": shipped.get("train_seconds"),
            "run_json": shipped,
        }
    return {"state": "new", "iteration": 0, "train_seconds": 0.0}


def _committed_summary(run: ZooRun, results_dir: str | Path) -> dict[str, Any] | None:
    """The committed training record's summary of ``run`` when it was shipped (a ladder rung:
    recorded) from this very recipe."""
    path = training_record_path(run, results_dir)
    if not path.is_file():
        return None
    record = read_json_object(path, _RECORD_FIX)
    if record.get("recipe_hash") != run.recipe.hash or not record.get(run.final_field):
        return None
    summary = record.get("summary")
    return summary if isinstance(summary, dict) else None


def iter_zoo(
    runs: Sequence[ZooRun],
    *,
    output_dir: str | Path = DEFAULT_ZOO_DIR,
    data_root: str | Path | None = None,
    device: str = "cpu",
    stop: threading.Event | None = None,
) -> Iterator[ZooEvent]:
    """Train ``runs`` in order; skip finished ones, resume interrupted ones (never prints)."""

    def prepare(run: ZooRun, status: dict[str, Any]) -> tuple[dict, dict]:
        return {}, {"resume": status["state"] == "interrupted"}

    out = Path(output_dir).expanduser()
    yield from iter_queue(runs, out, prepare, stop=stop, data_root=data_root, device=device)


def iter_queue(
    runs: Sequence[ZooRun],
    out: Path,
    prepare: Callable[[Any, dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]],
    *,
    stop: threading.Event | None = None,
    results_dir: str | Path | None = None,
    **common: Any,
) -> Iterator[ZooEvent]:
    """Train ``runs`` (a zoo's or a ladder's) in order into ``out``: finished ones are skipped,
    and so are those with a committed record in ``results_dir`` (``run.committed_state``);
    for each other one ``prepare(run, status)`` gives what its run-start event adds and its own
    ``iter_train`` options (beside ``common``). A ``stop`` ends the queue after the run under
    way, at a checkpoint: the next ones wait for a resume (never prints)."""
    from srbench.training.loop import iter_train

    total = len(runs)
    done: list[dict[str, Any]] = []
    for index, run in enumerate(runs):
        status = run_status(run, out, results_dir)
        if status["state"] in ("finished", run.committed_state):
            done.append(status["run_json"])
            yield ZooEvent("run-skip", index, total, run, info=status)
            continue
        extra, options = prepare(run, status)
        yield ZooEvent("run-start", index, total, run, info={**status, **extra})
        for event in iter_train(run.recipe, output_dir=out, stop=stop, **common, **options):
            yield ZooEvent("train", index, total, run, train_event=event)
            if event.kind == "done" and event.info.get("finished"):
                done.append(event.info)
        if stop is not None and stop.is_set():
            break
    info = {"runs": done, "output_dir": str(out), "stopped": stop is not None and stop.is_set()}
    yield ZooEvent("zoo-done", total, total, info=info)


# ----------------------------------------------------------------------------------------------
# Shipping: finished runs -> float16 files in the package, pinned in srbench/pretrained
# ----------------------------------------------------------------------------------------------


def shipped_filename(run: ZooRun) -> str:
    return f"{run.model}_{''.join(f'x{s}' for s in run.scales)}.safetensors"


def ship(
    runs: Sequence[ZooRun],
    *,
    output_dir: str | Path = DEFAULT_ZOO_DIR,
    package_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Copy the final weights of the finished ``runs`` into the package as float16 and pin them.

    Writes ``<package_dir>/<model>_x<s>.safetensors`` and their rows in the manifest
    ``<package_dir>/shipped.json`` (rows of runs not given are kept). Returns one
    ``{model, scales, file, sha256, run, train_seconds, iterations}`` per shipped run;
    unfinished runs are left out. With ``results_dir``, each run's summary and learning curve
    (its validations) go to ``<results_dir>/training/<run>.json``, where the report reads them.
    """
    import torch
    from safetensors.torch import load_file

    from srbench.pretrained import SHIPPED_MANIFEST, clear_caches
    from srbench.registry import budget_tag
    from srbench.weights import save_tensors, shipped_dir

    out = Path(output_dir).expanduser()
    pkg = Path(package_dir) if package_dir else shipped_dir()
    manifest = pkg / SHIPPED_MANIFEST.name
    table = read_json_object(manifest, _MANIFEST_FIX) if manifest.exists() else {}
    shipped = []
    for run in runs:
        status = run_status(run, out)
        if status["state"] != "finished":
            continue
        ladder = [s for s in run.scales if table.get(run.model, {}).get(str(s), {}).get(
            "recipe") == "ladder"]  # fmt: skip
        if ladder:
            raise SRBenchError(
                f"{manifest}: {run.model} x{ladder[0]} ships the budget ladder's top rung; "
                f"`srbench zoo ship` does not replace it (leave {run.model} out of --models)"
            )
        info = status["run_json"]
        src = out / run.name / "weights.safetensors"
        tensors = load_file(str(src), device="cpu")
        name = shipped_filename(run)
        sha = save_tensors(
            tensors, pkg / name, model_name=run.model, scale=run.scales, dtype=torch.float16
        )
        recipe = run.recipe
        row = {
            "file": name,
            "sha256": sha,
            "run": run.name,
            "recipe": "zoo",
            "tag": budget_tag(recipe.iterations, recipe.seed, recipe.schedule.name),
            "seed": recipe.seed,
            "train_seconds": float(info.get("train_seconds") or 0.0),
            "iterations": int(info["iterations"]),
            "machine": (
                f"{info.get('cpu_model', 'unknown CPU')}, {info.get('torch_threads', '?')} threads"
            ),
            "precision": str(info.get("precision", "?")),
        }
        if info.get("lr_backoffs"):  # the divergence rule's backoffs, for the card
            row["lr_backoffs"] = info["lr_backoffs"]
        for s in run.scales:
            table.setdefault(run.model, {})[str(s)] = row
        if results_dir is not None:
            write_training_record(run, out, Path(results_dir), shipped_sha256=sha)
        shipped.append(
            {
                "model": run.model,
                "scales": list(run.scales),
                "file": str(pkg / name),
                "sha256": sha,
                "run": run.name,
                "train_seconds": row["train_seconds"],
                "iterations": row["iterations"],
            }
        )
    atomic_write(manifest, json.dumps(table, indent=1, sort_keys=True) + "\n")
    clear_caches()  # this process reads the new pins from now on
    return shipped


_MANIFEST_FIX = "restore it with `git checkout -- srbench/pretrained/shipped.json`"


_RECORD_FIX = "restore it with `git checkout -- results/training` or run `srbench zoo ship` again"


def training_record_path(run: ZooRun, results_dir: str | Path) -> Path:
    return Path(results_dir) / run.records_subdir / f"{run.name}.json"


def _finished_summary(
    run: ZooRun, output_dir: Path, results_dir: Path | None
) -> dict[str, Any] | None:
    """A finished run's ``run.json``: from its run folder, else from the committed training
    record (run folders are a cache: a fresh machine has only the shipped runs' records)."""
    status = run_status(run, output_dir)
    if status["state"] == "finished":
        return status["run_json"]
    record = training_record_path(run, results_dir) if results_dir else None
    if record is not None and record.is_file():
        summary = read_json_object(record, _RECORD_FIX).get("summary")
        return summary if isinstance(summary, dict) else None
    return None


def zoo_table(
    runs: Sequence[ZooRun],
    output_dir: str | Path = DEFAULT_ZOO_DIR,
    results_dir: str | Path | None = None,
) -> str:
    """Markdown table of the finished runs: budget, wall time, machine, Set5 at the end."""
    from srbench.schema import headline

    spec = headline()
    unit = f"{spec.unit}, " if spec.unit else ""
    out = Path(output_dir).expanduser()
    committed = Path(results_dir) if results_dir is not None else None
    lines = [
        "| model | scale | iterations | training wall time | machine, precision | "
        f"Set5 {spec.label} ({unit}standard, at the end) | run |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    total = 0.0
    for run in runs:
        info = _finished_summary(run, out, committed)
        if info is None:
            continue
        seconds = float(info.get("train_seconds") or 0.0)
        total += seconds
        val = info.get("validation") or {}
        shown = " / ".join(spec.fmt(v.get(spec.name)) for v in val.values()) or "-"
        scales = "/".join(f"x{s}" for s in run.scales)
        cpu = info.get("cpu_model", "?") + (f" ({info['cpu_id']})" if info.get("cpu_id") else "")
        machine = f"{cpu}, {info.get('torch_threads', '?')} threads, "
        machine += str(info.get("precision", "?"))
        lines.append(
            f"| {run.model} | {scales} | {info.get('iterations')} | {seconds / 60:.1f} min | "
            f"{machine} | {shown} | `{run.name}` |"
        )
    lines.append("")
    lines.append(
        f"Training wall time of these runs: {total / 3600:.2f} h in all (measured on a shared "
        "machine: other work ran beside the training, so these are upper bounds)."
    )
    return "\n".join(lines)


def replace_between(doc: Path, marker: str, text: str) -> bool:
    """Replace what lies between ``<!-- srbench:{marker}:begin/end -->`` in ``doc`` (False if
    there is no such doc or marker)."""
    begin, end_mark = f"<!-- srbench:{marker}:begin -->", f"<!-- srbench:{marker}:end -->"
    if not doc.is_file():
        return False
    body = doc.read_text(encoding="utf-8")
    if begin not in body or end_mark not in body:
        return False
    start = body.index(begin) + len(begin)
    end = body.index(end_mark)
    atomic_write(doc, body[:start] + "\n" + text + "\n" + body[end:])
    return True


def write_zoo_doc(
    doc: Path,
    runs: Sequence[ZooRun],
    output_dir: str | Path,
    results_dir: str | Path | None = None,
) -> bool:
    """Replace the table between the markers of ``docs/zoo.md`` (False if there is no such doc)."""
    return replace_between(doc, "zoo", zoo_table(runs, output_dir, results_dir))


def write_training_record(
    run: ZooRun, output_dir: Path, results_dir: Path, *, shipped_sha256: str | None = None
) -> Path:
    """``<results_dir>/training/<run>.json``: the run's summary (recipe hash, wall time, machine,
    precision) and its Set5 learning curve, from the run folder, for the report."""
    from srbench.training.loop import read_log

    run_dir = Path(output_dir).expanduser() / run.name
    info = read_json_object(run_dir / "run.json", "delete it and run `srbench zoo train` again")
    curve = [
        {"iteration": r["iteration"], "scale": r.get("scale", run.recipe.scale), **r["results"]}
        for r in read_log(run_dir)
        if r.get("kind") == "val"
    ]
    record = {
        "zoo_run": run.name,
        "model": run.model,
        "scales": list(run.scales),
        "recipe_hash": run.recipe.hash,
        "shipped_sha256": shipped_sha256,
        "summary": info,
        "curve": curve,
    }
    return atomic_write(training_record_path(run, results_dir), json.dumps(record, indent=1) + "\n")


def read_training_records(results_dir: str | Path) -> list[dict[str, Any]]:
    folder = Path(results_dir) / TRAINING_DIR
    if not folder.is_dir():
        return []
    return [read_json_object(p, _RECORD_FIX) for p in sorted(folder.glob("*.json"))]
