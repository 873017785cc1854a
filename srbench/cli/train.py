"""`srbench train` and `srbench ablate`, and the training printers `srbench zoo|ladder` share.

Library errors (:class:`SRBenchError`) propagate with their one-line message; under ``torchrun``
only rank 0 prints.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from srbench.cli.common import (
    CompileOpt,
    DataRoot,
    Device,
    ResultsDir,
    SetOpt,
    app,
    console,
    err_console,
    progress_forced,
    store,
)
from srbench.parsing import key_values
from srbench.training import distributed

RunsDir = Annotated[Path, typer.Option(help="Folder for run folders.")]


@app.command()
def train(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML or built-in name.")] = "default",
    model: Annotated[str | None, typer.Option(help="Override the recipe's model.")] = None,
    scale: Annotated[int | None, typer.Option(help="Override the recipe's scale.")] = None,
    iterations: Annotated[int | None, typer.Option(help="Override the iterations.")] = None,
    data_root: DataRoot = None,
    output_dir: RunsDir = Path("runs"),
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint.")
    ] = False,
    device: Device = "cpu",
    benchmark: Annotated[
        bool, typer.Option("--benchmark", help="Measure loop vs bare-step patches/s instead.")
    ] = False,
    compile_model: CompileOpt = False,
    set_: SetOpt = None,
) -> None:
    """Train a model under a recipe (one recipe for every model)."""
    train_command(
        recipe=recipe,
        model=model,
        scale=scale,
        iterations=iterations,
        data_root=data_root,
        output_dir=output_dir,
        resume=resume,
        device=device,
        benchmark=benchmark,
        compile=compile_model,
        overrides=key_values(set_),
    )


@app.command()
def ablate(
    spec: Annotated[
        str, typer.Argument(help="Ablation spec YAML or built-in name.")
    ] = "ablation-drn",
    data_root: DataRoot = None,
    output_dir: RunsDir = Path("runs"),
    results_dir: ResultsDir = None,
    device: Device = "cpu",
    iterations: Annotated[int | None, typer.Option(help="Override the shared budget.")] = None,
    compile_model: CompileOpt = False,
    set_: SetOpt = None,
) -> None:
    """Train a grid of variants under one budget and store their scores."""
    ablate_command(
        spec=spec,
        data_root=data_root,
        output_dir=output_dir,
        results_dir=store(results_dir),
        device=device,
        iterations=iterations,
        compile=compile_model,
        overrides=key_values(set_),
    )


def train_progress() -> Progress:
    """A training progress bar (rank 0, on a terminal or with SRBENCH_PROGRESS=1)."""
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
        disable=not (err_console.is_terminal or progress_forced())
        or not distributed.is_main_process(),
    )


def say(message: str) -> None:
    if distributed.is_main_process():
        err_console.print(message, highlight=False)


class StopRequest(threading.Event):
    """Set by the first SIGINT or SIGTERM of a training command; ``signum`` says which."""

    signum = 0


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While training: the first SIGINT/SIGTERM asks the loop to stop after the iteration under
    way, with a checkpoint (so an ended session loses no training); a second ends it at once."""
    stop = StopRequest()
    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            restore()
            signal.raise_signal(signum)
            return
        stop.signum = signum
        stop.set()
        say(
            f"{signal.Signals(signum).name}: stopping after this iteration, with a checkpoint "
            "(again to stop at once)"
        )

    for s in signals:
        signal.signal(s, handle)
    try:
        yield stop
    finally:
        restore()


def exit_if_stopped(stop: StopRequest, resume: str) -> None:
    """A stopped training command says how to go on (``resume``) and exits as the signal would
    have: 128 + its number."""
    if stop.is_set():
        say(f"stopped on request: to go on, {resume}")
        raise typer.Exit(128 + stop.signum)


def scores_text(scores: dict[str, float]) -> str:
    """One dataset's means, every metric measured: ``37.12 dB / 0.9581``."""
    from srbench.schema import metric_specs

    return " / ".join(
        f"{m.fmt(scores[m.name])} {m.unit}".strip() for m in metric_specs() if m.name in scores
    )


def val_text(results: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{key} {scores_text(r)}" for key, r in results.items())


class TrainPrinter:
    """Turns :class:`TrainEvent` s into a progress bar and a few lines."""

    def __init__(self, progress: Progress, label: str = "") -> None:
        self.progress = progress
        self.label = label
        self.task: TaskID | None = None
        self.next_line = 0

    def __call__(self, event) -> None:
        info = event.info
        if event.kind == "start":
            resumed = f", resumed at {info['resumed_from']}" if info["resumed_from"] else ""
            say(
                f"{self.label}[bold]{info['run_name']}[/]: {info['model']} x{info['scale']}, "
                f"{info['params']:,} params, {info['images']} training images "
                f"({info['data_seconds']:.1f} s to load), {info['device']} {info['precision']}, "
                f"{info['world_size']} process(es) x batch {info['per_rank_batch']}{resumed}"
            )
            if info["images_too_small"]:
                say(
                    f"[yellow]note:[/] {info['images_too_small']} images are smaller than the "
                    "patch and are never sampled"
                )
            if self.task is not None:  # a start again after a divergence's backoff
                self.progress.remove_task(self.task)
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
                say(
                    f"{self.label}it {event.iteration}/{event.total}: loss {info['loss']:.4f}, "
                    f"lr {info['lr']:.2e}, {info['patches_per_s']:.0f} patches/s"
                )
                self.next_line = event.iteration + max(1, event.total // 20)
        elif event.kind == "backoff":
            say(
                f"{self.label}[yellow]diverged[/] at iteration {info['diverged_at']} (loss "
                f"{info['loss'] if info['loss'] is None else format(info['loss'], '.4g')}): back "
                f"to the checkpoint of iteration {info['restored']}, "
                f"the rate x{info['lr_scale']:g} from there"
            )
        elif event.kind == "validate":
            say(
                f"{self.label}it {event.iteration}: {val_text(info['results'])} "
                f"({info['protocol']})"
            )
        elif event.kind == "done":
            if not info.get("finished"):
                say(
                    f"{self.label}stopped at iteration {event.iteration}; checkpoint in "
                    f"{info['run_dir']}"
                )
            elif "weights_path" in info:
                say(f"{self.label}weights: {info['weights_path']}")


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
    from srbench.training.naming import run_name
    from srbench.training.recipe import load_recipe

    rec = load_recipe(recipe, model=model, scale=scale, iterations=iterations, overrides=overrides)
    if benchmark:
        bench = train_benchmark(
            rec.model,  # type: ignore[arg-type]
            rec.scale,
            rec.data.batch_size,
            rec.data.patch_size,
            rec.precision,
            device=device,
            overrides=rec.model_overrides,
            compile=compile or rec.compile,
        )
        print_benchmark(bench)
        return bench
    say(f"recipe {rec.source} ({rec.hash}) -> {Path(output_dir) / run_name(rec)}")
    result: dict[str, Any] = {}
    with train_progress() as progress, stop_on_signals() as stop:
        printer = TrainPrinter(progress)
        for event in iter_train(
            rec,
            output_dir=output_dir,
            data_root=data_root,
            device=device,
            resume=resume,
            compile=compile or None,
            stop=stop,
        ):
            printer(event)
            if event.kind in ("start", "done"):
                result.update(event.info)
            elif event.kind == "validate":
                result["validation"] = event.info["results"]
    if result.get("finished") and result.get("validation") and distributed.is_main_process():
        print_validation(
            result["validation"], f"{result['run_name']} -- {rec.validation.protocol} protocol"
        )
    exit_if_stopped(stop, "the same command with --resume")
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
    say(
        f"ablation [bold]{ablation.name}[/] ({ablation.source}): {len(ablation.variants)} variants, "
        f"{ablation.recipe.iterations} iterations each, batch {ablation.recipe.data.batch_size}, "
        f"scored on {', '.join(ablation.datasets)} ({ablation.protocol.id})"
    )
    info: dict[str, Any] = {}
    with train_progress() as progress:
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
                printer = TrainPrinter(progress, label)
            elif event.kind == "train" and printer is not None:
                printer(event.train_event)
            elif event.kind == "variant-skip":
                say(f"{label}already trained and scored; skipped")
            elif event.kind == "variant-done":
                say(f"{label}{val_text(event.info['results'])}")
            elif event.kind == "done":
                info = event.info
    if info and distributed.is_main_process():
        print_ablation(info)
    return info


def print_validation(results: dict[str, dict[str, float]], title: str) -> None:
    """A run's final validation: one row per dataset, a column per metric."""
    from srbench.schema import metric_specs

    specs = metric_specs()
    table = Table(title=title)
    for column in ("dataset", *(m.header for m in specs), "images"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for key, r in results.items():
        table.add_row(key, *(m.fmt(r.get(m.name)) for m in specs), str(r["images"]))
    console.print(table)


def print_ablation(info: dict[str, Any]) -> None:
    from srbench.schema import metric_specs

    labels = " / ".join(m.label for m in metric_specs())
    table = Table(title=f"ablation {info['ablation']} -- {info['protocol']} protocol, {labels}")
    table.add_column("variant")
    table.add_column("model")
    table.add_column("overrides")
    table.add_column("params", justify="right")
    for key in info["datasets"]:
        table.add_column(key, justify="right")
    for row in info["rows"]:
        overrides = ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "-"
        cells = [
            scores_text(row["results"][k]) if k in row["results"] else "-" for k in info["datasets"]
        ]
        table.add_row(row["variant"], row["model"], overrides, f"{row['params']:,}", *cells)
    console.print(table)
    console.print(
        f"records tagged ablation={info['ablation']} in {Path(info['results_dir']) / 'records.jsonl'}",
        highlight=False,
    )
