"""`srbench zoo train|status|ship` and `srbench ladder train|status|record|ship`: each command is its
own body (callable with keywords, as the tests do); they print and return what they printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from srbench.cli.common import (
    DataRoot,
    Device,
    ReferenceResultsDir,
    app,
    console,
    new_app,
)
from srbench.cli.train import TrainPrinter, exit_if_stopped, say, stop_on_signals, train_progress
from srbench.errors import SRBenchError
from srbench.parsing import int_list, split_list

zoo_app = new_app(help="The model zoo: every model trained under one recipe (zoo.yaml).")
app.add_typer(zoo_app, name="zoo")
ZooSpec = Annotated[str, typer.Option("--spec", help="Zoo spec YAML or built-in name.")]
ZooDir = Annotated[
    Path | None,
    typer.Option("--output-dir", help="Run folders (default ~/.cache/srbench/zoo)."),
]
ZooModels = Annotated[str | None, typer.Option(help="Comma-separated subset of the zoo's models.")]
ZooScales = Annotated[str | None, typer.Option(help="Comma-separated subset of scales.")]


@zoo_app.command("train")
def zoo_train(
    spec: ZooSpec = "zoo",
    output_dir: ZooDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
    data_root: DataRoot = None,
    device: Device = "cpu",
) -> dict[str, Any]:
    """Train every zoo run in order; finished runs are skipped, interrupted ones resume."""
    from srbench.training.zoo import iter_zoo

    zoo, out, runs = _zoo_runs(spec, output_dir, models, scales, registered=True)
    r = zoo.recipe
    say(
        f"zoo [bold]{zoo.name}[/] ({zoo.source}): {len(runs)} runs, {r.iterations} iterations "
        f"each, batch {r.data.batch_size}, LR patch {r.data.patch_size}, recipe hash of the "
        f"shared part {r.hash}; run folders in {out}"
    )
    with stop_on_signals() as stop:
        events = iter_zoo(runs, output_dir=out, data_root=data_root, device=device, stop=stop)
        info = _train_runs(events, len(runs), "zoo")
    exit_if_stopped(stop, "the same command")
    return info


@zoo_app.command("status")
def zoo_status(
    spec: ZooSpec = "zoo",
    output_dir: ZooDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
    results_dir: ReferenceResultsDir = Path("results"),
) -> list[dict[str, Any]]:
    """Which zoo runs are finished, interrupted, shipped (committed training record in
    <results-dir>/training/, no run folder here) or not started, with their training time."""
    zoo, out, runs = _zoo_runs(spec, output_dir, models, scales, registered=True)
    return _run_table(f"zoo {zoo.name} ({zoo.source}) in {out}", runs, out, results_dir)


@zoo_app.command("ship")
def zoo_ship(
    spec: ZooSpec = "zoo",
    output_dir: ZooDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
    results_dir: ReferenceResultsDir = Path("results"),
) -> list[dict[str, Any]]:
    """Copy finished zoo runs' weights into the package (float16) and pin their sha256; their
    summaries and learning curves go to <results-dir>/training/ for the report (shipping
    changes the project, so the default is the project's reference store)."""
    from srbench.training.zoo import ship, write_zoo_doc

    zoo, out, runs = _zoo_runs(spec, output_dir, models, scales, registered=False)
    shipped = ship(runs, output_dir=out, results_dir=results_dir)
    doc = Path(__file__).resolve().parents[2] / "docs" / "zoo.md"  # in a source checkout
    if write_zoo_doc(doc, zoo.runs, out, results_dir):
        say(f"updated the table of runs in {doc}")
    for row in shipped:
        say(
            f"{row['model']} {'/'.join(f'x{s}' for s in row['scales'])}: {row['file']} "
            f"sha256 {row['sha256']} ({row['run']}, {_hours(row['train_seconds'])})"
        )
    left = len(runs) - len(shipped)
    say(f"shipped {len(shipped)} runs" + (f"; {left} not finished yet" if left else ""))
    return shipped


def _zoo_runs(
    spec: str | Path,
    output_dir: str | Path | None,
    models: str | None,
    scales: str | None,
    *,
    registered: bool,
) -> tuple[Any, Path, list[Any]]:
    """The zoo, its run folder and the runs ``--models``/``--scales`` select (``registered``:
    plugins' models too, trained under the same recipe)."""
    from srbench.training.zoo import DEFAULT_ZOO_DIR, load_zoo, select

    zoo = load_zoo(spec)
    out = Path(output_dir or DEFAULT_ZOO_DIR).expanduser()
    wanted, scale_list = split_list(models) or None, int_list(scales, "--scales") or None
    return zoo, out, select(zoo, wanted, scale_list, registered=registered)


ladder_app = new_app(
    help="The budget ladder: every model under one recipe at 1k, 4k and 16k iterations."
)
app.add_typer(ladder_app, name="ladder")
LadderSpec = Annotated[str, typer.Option("--spec", help="Ladder spec YAML or built-in name.")]
LadderDir = Annotated[
    Path | None,
    typer.Option("--output-dir", help="Run folders (default ~/.cache/srbench/ladder)."),
]
LadderSteps = Annotated[
    str | None, typer.Option(help="Comma-separated subset of the spec's steps (a, b, ...).")
]
LadderRungs = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated subset of the rungs, in iterations (e.g. 1000,4000: a pair's "
        "lower rungs before any 16k); a rung's recipe never depends on it."
    ),
]


@ladder_app.command("train")
def ladder_train(
    spec: LadderSpec = "ladder",
    output_dir: LadderDir = None,
    models: ZooModels = None,
    steps: LadderSteps = None,
    scales: ZooScales = None,
    rungs: LadderRungs = None,
    data_root: DataRoot = None,
    device: Device = "cpu",
    results_dir: ReferenceResultsDir = Path("results"),
) -> dict[str, Any]:
    """Train the ladder in order: finished rungs (and rungs recorded in <results-dir>) are
    skipped, interrupted ones resume, new ones branch off their trunk's latest snapshot."""
    from srbench.training.ladder import iter_ladder

    ladder, out, runs = _ladder_runs(spec, output_dir, models, steps, scales, rungs)
    r = ladder.recipe
    say(
        f"ladder [bold]{ladder.name}[/] ({ladder.source}): {len(runs)} rungs (of "
        f"{', '.join(str(x) for x in ladder.rungs)} iterations), batch {r.data.batch_size}, LR "
        f"patch {r.data.patch_size}, {r.schedule.name} schedule; run folders in {out}"
    )
    with stop_on_signals() as stop:
        events = iter_ladder(
            runs,
            output_dir=out,
            data_root=data_root,
            device=device,
            stop=stop,
            results_dir=results_dir,
        )
        info = _train_runs(events, len(runs), "ladder")
    exit_if_stopped(stop, "the same command")
    return info


@ladder_app.command("status")
def ladder_status(
    spec: LadderSpec = "ladder",
    output_dir: LadderDir = None,
    models: ZooModels = None,
    steps: LadderSteps = None,
    scales: ZooScales = None,
    rungs: LadderRungs = None,
    results_dir: ReferenceResultsDir = Path("results"),
) -> list[dict[str, Any]]:
    """Which rungs are finished, interrupted, recorded (committed training record in
    <results-dir>/training/ladder/, no run folder here) or not started, with their training
    time."""
    ladder, out, runs = _ladder_runs(spec, output_dir, models, steps, scales, rungs)
    return _run_table(f"ladder {ladder.name} ({ladder.source}) in {out}", runs, out, results_dir)


@ladder_app.command("record")
def ladder_record(
    spec: LadderSpec = "ladder",
    output_dir: LadderDir = None,
    results_dir: ReferenceResultsDir = Path("results"),
) -> list[dict[str, Any]]:
    """Record finished rungs: <results-dir>/training/ladder/<run>.json and their weights tags
    (drn_s.zoo1k, ...) in srbench/pretrained/ladder.json, so `srbench run` can evaluate them."""
    from srbench.training.ladder import ladder_output_dir, load_ladder, record

    ladder = load_ladder(spec)
    out = ladder_output_dir(output_dir)
    rows = record(ladder.runs, weights=ladder.weights, output_dir=out, results_dir=results_dir)
    for row in rows:
        say(
            f"{row['model']}.{row['tag']}: {row['run']} ({row['weights']} weights, sha256 "
            f"{row['sha256'][:12]}, {_hours(row['train_seconds'])})"
        )
    names = sorted({f"{r['model']}.{r['tag']}" for r in rows})
    say(f"recorded {len(rows)} finished rungs of {len(ladder.runs)}")
    _ladder_docs(results_dir)
    if names:
        say(
            f"evaluate them with: SRBENCH_LADDER_DIR={out} srbench run --models "
            f"{','.join(names)} --datasets set5,set14,b100 --results-dir {results_dir}"
        )
    return rows


@ladder_app.command("ship")
def ladder_ship(
    spec: LadderSpec = "ladder",
    output_dir: LadderDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
    rung: Annotated[
        int | None,
        typer.Option(
            help="The rung you mean to ship (e.g. 16000): refused for a model whose "
            "top finished seed-0 rung is another."
        ),
    ] = None,
) -> list[dict[str, Any]]:
    """Ship each model's top finished seed-0 rung (recorded by `srbench ladder record`) into
    the package as float16, pinned in shipped.json: the plain name (drn_s, drn, edsr) runs it.
    The zoo file it replaces keeps its results apart under the zoo's tag (zoo1k_cosine)."""
    from srbench.training.ladder import ladder_output_dir, load_ladder
    from srbench.training.ladder_ship import ship

    ladder = load_ladder(spec)
    out = ladder_output_dir(output_dir)
    rows = ship(
        ladder,
        output_dir=out,
        models=split_list(models) or None,
        scales=int_list(scales, "--scales") or None,
        rung=rung,
    )
    for row in rows:
        was = f"; the zoo file's results are now {row['model']}.{row['retired']}" if row[
            "retired"] else ""  # fmt: skip
        say(
            f"{row['model']} x{row['scale']}: {row['model']}.{row['tag']} ({row['run']}) -> "
            f"{row['file']} sha256 {row['sha256'][:12]}{was}"
        )
    say(f"shipped {len(rows)} rungs")
    if any(row["retired"] for row in rows):
        say(
            "rename the replaced files' results in the committed store: "
            "python tools/migrate_store.py results/records.jsonl"
        )
    return rows


def _ladder_runs(
    spec: str | Path,
    output_dir: str | Path | None,
    models: str | None,
    steps: str | None,
    scales: str | None,
    rungs: str | None = None,
) -> tuple[Any, Path, list[Any]]:
    """The ladder, its run folder and the rungs ``--models``/``--steps``/``--scales``/``--rungs``
    select."""
    from srbench.training.ladder import ladder_output_dir, load_ladder, select

    ladder = load_ladder(spec)
    wanted = (split_list(models) or None, split_list(steps) or None)
    runs = select(
        ladder, *wanted, int_list(scales, "--scales") or None, int_list(rungs, "--rungs") or None
    )
    return ladder, ladder_output_dir(output_dir), runs


def _ladder_docs(results_dir: str | Path) -> None:
    """In a source checkout: the ladder table in docs/zoo.md and the learning curves under
    reports/ (one figure per scale), from the committed training records."""
    from srbench.figures import learning_curves
    from srbench.training.ladder import ladder_table, read_ladder_records
    from srbench.training.zoo import replace_between

    root = Path(__file__).resolve().parents[2]
    doc = root / "docs" / "zoo.md"
    records = read_ladder_records(results_dir)
    if replace_between(doc, "ladder", ladder_table(records)):
        say(f"updated the ladder table in {doc}")
    for scale in sorted({r["scales"][0] for r in records}):
        path = learning_curves(
            records, root / "reports" / f"ladder_curves_x{scale}.png", scale=scale
        )
        if path is not None:
            say(f"wrote {path}")


def _hours(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def _run_table(
    title: str, runs, out: Path, results_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Print one row per run: finished / interrupted / shipped / new, iteration, time, Set5."""
    from srbench.schema import headline
    from srbench.training.zoo import run_status

    spec = headline()
    table = Table(title=title)
    for column in ("run", "state", "iteration", "train time", f"Set5 {spec.header} (standard)"):
        table.add_column(column, justify="left" if column in ("run", "state") else "right")
    rows = []
    for run in runs:
        try:
            status = run_status(run, out, results_dir)
        except SRBenchError as exc:  # one damaged run folder: say so, list the others
            say(f"[yellow]note:[/] {exc}")
            status = {"state": "damaged", "iteration": "?", "train_seconds": None}
        val = (status.get("run_json") or {}).get("validation") or {}
        shown = ", ".join(f"{k} {spec.fmt(v.get(spec.name))}" for k, v in val.items()) or "-"
        state = status["state"]
        for b in (
            status.get("lr_backoffs") or []
        ):  # the divergence rule's (training.divergence.back_off)
            state += f", rate x{b['lr_scale']:g} from {b['restored']:,}"
        table.add_row(
            run.label,
            state,
            f"{status['iteration']}/{run.recipe.iterations}",
            _hours(status["train_seconds"]),
            shown,
        )
        rows.append({"run": run.name, **{k: v for k, v in status.items() if k != "run_json"}})
    console.print(table)
    return rows


def _train_runs(events, total: int, what: str) -> dict[str, Any]:
    """Print the events of ``iter_zoo`` / ``iter_ladder``; returns the final info."""
    info: dict[str, Any] = {}
    with train_progress() as progress:
        printer = None
        for event in events:
            label = f"[{event.index + 1}/{event.total} {event.run.label}] " if event.run else ""
            if event.kind == "run-skip":
                where = "earlier" if event.info["state"] == "finished" else "(committed record)"
                say(f"{label}finished {where} ({_hours(event.info['train_seconds'])}); skipped")
            elif event.kind == "run-start":
                if event.info.get("branch") is not None:
                    say(f"{label}branches off its trunk at iteration {event.info['branch']}")
                printer = TrainPrinter(progress, label)
            elif event.kind == "train" and printer is not None:
                printer(event.train_event)
            elif event.kind == "zoo-done":
                info = event.info
    say(f"{what} done: {len(info.get('runs', []))} of {total} runs finished")
    return info
