"""`srbench train|ablate` and `srbench zoo train|status|ship`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from srbench.cli.common import (
    DataRoot,
    Device,
    ReferenceResultsDir,
    ResultsDir,
    app,
    new_app,
    scales_list,
    split,
    split_dict,
    store,
)


@app.command()
def train(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML or built-in name.")] = "default",
    model: Annotated[str | None, typer.Option(help="Override the recipe's model.")] = None,
    scale: Annotated[int | None, typer.Option(help="Override the recipe's scale.")] = None,
    iterations: Annotated[int | None, typer.Option(help="Override the iterations.")] = None,
    data_root: DataRoot = None,
    output_dir: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint.")
    ] = False,
    device: Device = "cpu",
    benchmark: Annotated[
        bool, typer.Option("--benchmark", help="Measure loop vs bare-step patches/s instead.")
    ] = False,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model.")
    ] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Recipe override KEY=VALUE (repeatable).")
    ] = None,
) -> None:
    """Train a model under a recipe (one recipe for every model)."""
    from srbench.training.cli import train_command

    train_command(
        recipe,
        model,
        scale,
        iterations,
        data_root,
        output_dir,
        resume,
        device,
        benchmark,
        compile_model,
        split_dict(set_),
    )


@app.command()
def ablate(
    spec: Annotated[
        str, typer.Argument(help="Ablation spec YAML or built-in name.")
    ] = "ablation-drn",
    data_root: DataRoot = None,
    output_dir: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    results_dir: ResultsDir = None,
    device: Device = "cpu",
    iterations: Annotated[int | None, typer.Option(help="Override the shared budget.")] = None,
    compile_model: Annotated[bool, typer.Option("--compile")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE (repeatable).")] = None,
) -> None:
    """Train a grid of variants under one budget and store their scores."""
    from srbench.training.cli import ablate_command

    ablate_command(
        spec,
        data_root,
        output_dir,
        store(results_dir),
        device,
        iterations,
        compile_model,
        split_dict(set_),
    )


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
) -> None:
    """Train every zoo run in order; finished runs are skipped, interrupted ones resume."""
    from srbench.training.cli import zoo_train_command

    zoo_train_command(
        spec, output_dir, split(models) or None, scales_list(scales), data_root, device
    )


@zoo_app.command("status")
def zoo_status(
    spec: ZooSpec = "zoo",
    output_dir: ZooDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
    results_dir: ReferenceResultsDir = Path("results"),
) -> None:
    """Which zoo runs are finished, interrupted, shipped (committed training record in
    <results-dir>/training/, no run folder here) or not started, with their training time."""
    from srbench.training.cli import zoo_status_command

    zoo_status_command(
        spec, output_dir, split(models) or None, scales_list(scales), results_dir=results_dir
    )


@zoo_app.command("ship")
def zoo_ship(
    spec: ZooSpec = "zoo",
    output_dir: ZooDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
    results_dir: ReferenceResultsDir = Path("results"),
) -> None:
    """Copy finished zoo runs' weights into the package (float16) and pin their sha256; their
    summaries and learning curves go to <results-dir>/training/ for the report (shipping
    changes the project, so the default is the project's reference store)."""
    from srbench.training.cli import zoo_ship_command

    zoo_ship_command(spec, output_dir, split(models) or None, scales_list(scales), results_dir)


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


@ladder_app.command("train")
def ladder_train(
    spec: LadderSpec = "ladder",
    output_dir: LadderDir = None,
    models: ZooModels = None,
    steps: LadderSteps = None,
    scales: ZooScales = None,
    data_root: DataRoot = None,
    device: Device = "cpu",
) -> None:
    """Train the ladder in order: finished rungs are skipped, interrupted ones resume, new ones
    branch off their trunk's latest snapshot."""
    from srbench.training.cli import ladder_train_command

    ladder_train_command(
        spec,
        output_dir,
        split(models) or None,
        split(steps) or None,
        scales_list(scales),
        data_root,
        device,
    )


@ladder_app.command("status")
def ladder_status(
    spec: LadderSpec = "ladder",
    output_dir: LadderDir = None,
    models: ZooModels = None,
    steps: LadderSteps = None,
    scales: ZooScales = None,
) -> None:
    """Which rungs are finished, interrupted or not started, with their training time."""
    from srbench.training.cli import ladder_status_command

    ladder_status_command(
        spec, output_dir, split(models) or None, split(steps) or None, scales_list(scales)
    )


@ladder_app.command("record")
def ladder_record(
    spec: LadderSpec = "ladder",
    output_dir: LadderDir = None,
    results_dir: ReferenceResultsDir = Path("results"),
) -> None:
    """Record finished rungs: <results-dir>/training/ladder/<run>.json and their weights tags
    (drn_s.zoo1k, ...) in srbench/pretrained/ladder.json, so `srbench run` can evaluate them."""
    from srbench.training.cli import ladder_record_command

    ladder_record_command(spec, output_dir, results_dir)
