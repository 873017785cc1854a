"""Printing front ends of ``srbench train`` and ``srbench ablate`` (the typer wiring is in
``srbench.cli``). Library errors (:class:`SRBenchError`) propagate with their one-line message.

Under ``torchrun`` only rank 0 prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from srbench.errors import SRBenchError
from srbench.training import distributed

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _progress_enabled() -> bool:
    return err_console.is_terminal or os.environ.get("SRBENCH_PROGRESS") == "1"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]} patches/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=not _progress_enabled() or not distributed.is_main_process(),
    )


def _say(message: str) -> None:
    if distributed.is_main_process():
        err_console.print(message, highlight=False)


def _val_text(results: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{key} {r['psnr_db']:.2f} dB / {r['ssim']:.4f}" for key, r in results.items())


class _TrainPrinter:
    """Turns :class:`TrainEvent` s into a progress bar and a few lines."""

    def __init__(self, progress: Progress, label: str = "") -> None:
        self.progress = progress
        self.label = label
        self.task = None
        self.next_line = 0

    def __call__(self, event) -> None:
        info = event.info
        if event.kind == "start":
            resumed = f", resumed at {info['resumed_from']}" if info["resumed_from"] else ""
            _say(
                f"{self.label}[bold]{info['run_name']}[/]: {info['model']} x{info['scale']}, "
                f"{info['params']:,} params, {info['images']} training images "
                f"({info['data_seconds']:.1f} s to load), {info['device']} {info['precision']}, "
                f"{info['world_size']} process(es) x batch {info['per_rank_batch']}{resumed}"
            )
            if info["images_too_small"]:
                _say(
                    f"[yellow]note:[/] {info['images_too_small']} images are smaller than the "
                    "patch and are never sampled"
                )
            self.task = self.progress.add_task(
                info["run_name"], total=event.total, completed=event.iteration, loss="-", rate="-"
            )
            self.next_line = event.iteration
        elif event.kind == "log" and self.task is not None:
            self.progress.update(
                self.task,
                completed=event.iteration,
                loss=f"{info['loss']:.4f}",
                rate=f"{info['patches_per_s']:.0f}",
            )
            if self.progress.disable and event.iteration >= self.next_line:
                _say(
                    f"{self.label}it {event.iteration}/{event.total}: loss {info['loss']:.4f}, "
                    f"lr {info['lr']:.2e}, {info['patches_per_s']:.0f} patches/s"
                )
                self.next_line = event.iteration + max(1, event.total // 20)
        elif event.kind == "validate":
            _say(
                f"{self.label}it {event.iteration}: {_val_text(info['results'])} "
                f"({info['protocol']})"
            )
        elif event.kind == "done":
            if not info.get("finished"):
                _say(f"stopped at iteration {event.iteration}; checkpoint in {info['run_dir']}")
            elif "weights_path" in info:
                _say(f"{self.label}weights: {info['weights_path']}")


def train_command(
    recipe: str | Path,
    model: str | None = None,
    scale: int | None = None,
    iterations: int | None = None,
    data_root: str | Path | None = None,
    output_dir: str | Path = "runs",
    resume: bool = False,
    device: str = "cpu",
    benchmark: bool = False,
    compile: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``srbench train RECIPE``: train (or, with ``benchmark``, measure throughput); prints.

    ``recipe``: a YAML path or a built-in name (``default``, ``tiny-cpu``); ``overrides``: dotted
    recipe keys (``{"data.batch_size": "8", "model_overrides.n_feats": "16"}``).
    """
    from srbench.training.loop import iter_train, train_benchmark
    from srbench.training.recipe import load_recipe, run_name

    rec = load_recipe(recipe, model=model, scale=scale, iterations=iterations, overrides=overrides)
    if benchmark:
        result = train_benchmark(
            rec.model,  # type: ignore[arg-type]
            rec.scale,
            rec.data.batch_size,
            rec.data.patch_size,
            rec.precision,
            device=device,
            overrides=rec.model_overrides,
            compile=compile or rec.compile,
        )
        print_benchmark(result)
        return result
    _say(f"recipe {rec.source} ({rec.hash}) -> {Path(output_dir) / run_name(rec)}")
    result: dict[str, Any] = {}
    with _progress() as progress:
        printer = _TrainPrinter(progress)
        for event in iter_train(
            rec,
            output_dir=output_dir,
            data_root=data_root,
            device=device,
            resume=resume,
            compile=compile or None,
        ):
            printer(event)
            if event.kind in ("start", "done"):
                result.update(event.info)
            elif event.kind == "validate":
                result["validation"] = event.info["results"]
    if result.get("finished") and result.get("validation") and distributed.is_main_process():
        table = Table(title=f"{result['run_name']} -- {rec.validation.protocol} protocol")
        for column in ("dataset", "PSNR_dB", "SSIM", "images"):
            table.add_column(column, justify="left" if column == "dataset" else "right")
        for key, r in result["validation"].items():
            table.add_row(key, f"{r['psnr_db']:.2f}", f"{r['ssim']:.4f}", str(r["images"]))
        console.print(table)
    return result


def print_benchmark(result: dict[str, Any]) -> None:
    if not distributed.is_main_process():
        return
    table = Table(
        title=(
            f"training throughput: {result['model']} x{result['scale']}, batch {result['batch']}, "
            f"LR patch {result['patch']}, {result['precision']}, {result['device']}"
        )
    )
    for column in ("measure", "patches/s (median)", "ms/step", "runs"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for kind, label in (("loop", "full loop (sampling + step)"), ("bare", "bare model step")):
        runs = ", ".join(f"{r:.0f}" for r in result[f"{kind}_patches_per_s_runs"])
        table.add_row(
            label,
            f"{result[f'{kind}_patches_per_s']:.1f}",
            f"{result[f'{kind}_ms_per_step']:.1f}",
            runs,
        )
    console.print(table)
    console.print(
        f"loop / bare = {result['ratio']:.3f} ({result['steps']} steps x {result['repeats']} "
        f"repeats after {result['warmup']} warm-up steps; {result['torch_threads']} torch threads)",
        highlight=False,
    )


def ablate_command(
    spec: str | Path,
    data_root: str | Path | None = None,
    output_dir: str | Path = "runs",
    results_dir: str | Path = "results",
    device: str = "cpu",
    iterations: int | None = None,
    compile: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``srbench ablate SPEC``: train every variant under one budget, score, store; prints.

    ``spec``: a YAML path or a built-in name (``ablation-drn``); ``iterations``/``overrides``
    change the shared recipe (dotted keys, as for ``train_command``).
    """
    from srbench.training.ablation import iter_ablate, load_spec

    ablation = load_spec(spec, iterations=iterations, overrides=overrides)
    _say(
        f"ablation [bold]{ablation.name}[/] ({ablation.source}): {len(ablation.variants)} variants, "
        f"{ablation.recipe.iterations} iterations each, batch {ablation.recipe.data.batch_size}, "
        f"scored on {', '.join(ablation.datasets)} ({ablation.protocol.id})"
    )
    info: dict[str, Any] = {}
    with _progress() as progress:
        printer = None
        for event in iter_ablate(
            ablation,
            data_root=data_root,
            output_dir=output_dir,
            results_dir=results_dir,
            device=device,
            compile=compile or None,
        ):
            label = f"[{event.index + 1}/{event.total} {event.variant}] "
            if event.kind == "variant-start":
                printer = _TrainPrinter(progress, label)
            elif event.kind == "train" and printer is not None:
                printer(event.train_event)
            elif event.kind == "variant-skip":
                _say(f"{label}already trained and scored; skipped")
            elif event.kind == "variant-done":
                _say(f"{label}{_val_text(event.info['results'])}")
            elif event.kind == "done":
                info = event.info
    if info and distributed.is_main_process():
        print_ablation(info)
    return info


def print_ablation(info: dict[str, Any]) -> None:
    table = Table(title=f"ablation {info['ablation']} -- {info['protocol']} protocol, PSNR / SSIM")
    table.add_column("variant")
    table.add_column("model")
    table.add_column("overrides")
    table.add_column("params", justify="right")
    for key in info["datasets"]:
        table.add_column(key, justify="right")
    for row in info["rows"]:
        overrides = ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "-"
        cells = [
            f"{row['results'][k]['psnr_db']:.2f} / {row['results'][k]['ssim']:.4f}"
            if k in row["results"]
            else "-"
            for k in info["datasets"]
        ]
        table.add_row(row["variant"], row["model"], overrides, f"{row['params']:,}", *cells)
    console.print(table)
    console.print(
        f"records tagged ablation={info['ablation']} in {Path(info['results_dir']) / 'records.jsonl'}",
        highlight=False,
    )


def _hours(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def _run_table(
    title: str, runs, out: Path, results_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Print one row per run: finished / interrupted / shipped / new, iteration, time, Set5."""
    from srbench.training.zoo import run_status

    table = Table(title=title)
    for column in ("run", "state", "iteration", "train time", "Set5 PSNR_dB (standard)"):
        table.add_column(column, justify="left" if column in ("run", "state") else "right")
    rows = []
    for run in runs:
        try:
            status = run_status(run, out, results_dir)
        except SRBenchError as exc:  # one damaged run folder: say so, list the others
            _say(f"[yellow]note:[/] {exc}")
            status = {"state": "damaged", "iteration": "?", "train_seconds": None}
        val = (status.get("run_json") or {}).get("validation") or {}
        psnr = ", ".join(f"{k} {v['psnr_db']:.2f}" for k, v in val.items()) or "-"
        table.add_row(
            run.label,
            status["state"],
            f"{status['iteration']}/{run.recipe.iterations}",
            _hours(status["train_seconds"]),
            psnr,
        )
        rows.append({"run": run.name, **{k: v for k, v in status.items() if k != "run_json"}})
    console.print(table)
    return rows


def _train_runs(events, total: int, what: str) -> dict[str, Any]:
    """Print the events of ``iter_zoo`` / ``iter_ladder``; returns the final info."""
    info: dict[str, Any] = {}
    with _progress() as progress:
        printer = None
        for event in events:
            label = f"[{event.index + 1}/{event.total} {event.run.label}] " if event.run else ""
            if event.kind == "run-skip":
                _say(f"{label}finished earlier ({_hours(event.info['train_seconds'])}); skipped")
            elif event.kind == "run-start":
                if event.info.get("branch") is not None:
                    _say(f"{label}branches off its trunk at iteration {event.info['branch']}")
                printer = _TrainPrinter(progress, label)
            elif event.kind == "train" and printer is not None:
                printer(event.train_event)
            elif event.kind == "zoo-done":
                info = event.info
    _say(f"{what} done: {len(info.get('runs', []))} of {total} runs finished")
    return info


def ladder_status_command(
    spec: str | Path = "ladder",
    output_dir: str | Path | None = None,
    models: list[str] | None = None,
    steps: list[str] | None = None,
    scales: list[int] | None = None,
) -> list[dict[str, Any]]:
    """``srbench ladder status``: every rung, finished / interrupted / new; prints."""
    from srbench.training.ladder import ladder_output_dir, load_ladder, select

    ladder = load_ladder(spec)
    out = ladder_output_dir(output_dir)
    runs = select(ladder, models, steps, scales)
    return _run_table(f"ladder {ladder.name} ({ladder.source}) in {out}", runs, out)


def ladder_train_command(
    spec: str | Path = "ladder",
    output_dir: str | Path | None = None,
    models: list[str] | None = None,
    steps: list[str] | None = None,
    scales: list[int] | None = None,
    data_root: str | Path | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """``srbench ladder train``: train the ladder (or a subset) in order; prints."""
    from srbench.training.ladder import iter_ladder, ladder_output_dir, load_ladder, select

    ladder = load_ladder(spec)
    runs = select(ladder, models, steps, scales)
    out = ladder_output_dir(output_dir)
    r = ladder.recipe
    _say(
        f"ladder [bold]{ladder.name}[/] ({ladder.source}): {len(runs)} rungs (of "
        f"{', '.join(str(x) for x in ladder.rungs)} iterations), batch {r.data.batch_size}, LR "
        f"patch {r.data.patch_size}, {r.schedule.name} schedule; run folders in {out}"
    )
    events = iter_ladder(runs, output_dir=out, data_root=data_root, device=device)
    return _train_runs(events, len(runs), "ladder")


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
        _say(f"updated the ladder table in {doc}")
    for scale in sorted({r["scales"][0] for r in records}):
        path = learning_curves(
            records, root / "reports" / f"ladder_curves_x{scale}.png", scale=scale
        )
        if path is not None:
            _say(f"wrote {path}")


def ladder_record_command(
    spec: str | Path = "ladder",
    output_dir: str | Path | None = None,
    results_dir: str | Path = "results",
) -> list[dict[str, Any]]:
    """``srbench ladder record``: finished rungs -> training records and the tag manifest."""
    from srbench.training.ladder import ladder_output_dir, load_ladder, record

    ladder = load_ladder(spec)
    out = ladder_output_dir(output_dir)
    rows = record(ladder.runs, weights=ladder.weights, output_dir=out, results_dir=results_dir)
    for row in rows:
        _say(
            f"{row['model']}.{row['tag']}: {row['run']} ({row['weights']} weights, sha256 "
            f"{row['sha256'][:12]}, {_hours(row['train_seconds'])})"
        )
    names = sorted({f"{r['model']}.{r['tag']}" for r in rows})
    _say(f"recorded {len(rows)} finished rungs of {len(ladder.runs)}")
    _ladder_docs(results_dir)
    if names:
        _say(
            f"evaluate them with: SRBENCH_LADDER_DIR={out} srbench run --models "
            f"{','.join(names)} --datasets set5,set14,b100 --results-dir {results_dir}"
        )
    return rows


def zoo_status_command(
    spec: str | Path = "zoo",
    output_dir: str | Path | None = None,
    models: list[str] | None = None,
    scales: list[int] | None = None,
    *,
    results_dir: str | Path | None = "results",
) -> list[dict[str, Any]]:
    """``srbench zoo status``: every run of the zoo, finished / interrupted / shipped / new;
    prints."""
    from srbench.training.zoo import DEFAULT_ZOO_DIR, load_zoo, select

    zoo = load_zoo(spec)
    out = Path(output_dir or DEFAULT_ZOO_DIR).expanduser()
    runs = select(zoo, models, scales, registered=True)
    return _run_table(f"zoo {zoo.name} ({zoo.source}) in {out}", runs, out, results_dir)


def zoo_train_command(
    spec: str | Path = "zoo",
    output_dir: str | Path | None = None,
    models: list[str] | None = None,
    scales: list[int] | None = None,
    data_root: str | Path | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """``srbench zoo train``: train the zoo (or a subset), skipping finished runs; prints."""
    from srbench.training.zoo import DEFAULT_ZOO_DIR, iter_zoo, load_zoo, select

    zoo = load_zoo(spec)
    runs = select(zoo, models, scales, registered=True)  # plugins train under the same recipe
    out = Path(output_dir or DEFAULT_ZOO_DIR).expanduser()
    r = zoo.recipe
    _say(
        f"zoo [bold]{zoo.name}[/] ({zoo.source}): {len(runs)} runs, {r.iterations} iterations "
        f"each, batch {r.data.batch_size}, LR patch {r.data.patch_size}, recipe hash of the "
        f"shared part {r.hash}; run folders in {out}"
    )
    events = iter_zoo(runs, output_dir=out, data_root=data_root, device=device)
    return _train_runs(events, len(runs), "zoo")


def zoo_ship_command(
    spec: str | Path = "zoo",
    output_dir: str | Path | None = None,
    models: list[str] | None = None,
    scales: list[int] | None = None,
    results_dir: str | Path = "results",
) -> list[dict[str, Any]]:
    """``srbench zoo ship``: finished runs' weights into srbench/pretrained (fp16); prints."""
    from srbench.training.zoo import DEFAULT_ZOO_DIR, load_zoo, select, ship

    zoo = load_zoo(spec)
    runs = select(zoo, models, scales)
    shipped = ship(runs, output_dir=output_dir or DEFAULT_ZOO_DIR, results_dir=results_dir)
    from srbench.training.zoo import write_zoo_doc

    doc = Path(__file__).resolve().parents[2] / "docs" / "zoo.md"  # in a source checkout
    if write_zoo_doc(doc, zoo.runs, output_dir or DEFAULT_ZOO_DIR, results_dir):
        _say(f"updated the table of runs in {doc}")
    for row in shipped:
        _say(
            f"{row['model']} {'/'.join(f'x{s}' for s in row['scales'])}: {row['file']} "
            f"sha256 {row['sha256']} ({row['run']}, {_hours(row['train_seconds'])})"
        )
    left = len(runs) - len(shipped)
    _say(f"shipped {len(shipped)} runs" + (f"; {left} not finished yet" if left else ""))
    return shipped
