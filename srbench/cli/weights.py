"""`srbench weights convert|fetch`: the authors' files into strict safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from srbench.cli.common import (
    console,
    err_console,
    new_app,
    progress_forced,
)

app = new_app(help="Weights: convert or fetch the authors' weights into safetensors.")


@app.command("convert")
def weights_convert(
    source: Annotated[
        Path,
        typer.Argument(
            help="The authors' file: IDN .caffemodel, VDSR .mat, EDSR-PyTorch .pt, an .npz, a "
            "PyTorch state dict or a foreign safetensors file (detected from its bytes)."
        ),
    ],
    model: Annotated[
        str | None, typer.Option(help="Registered model name, where the file cannot tell.")
    ] = None,
    scale: Annotated[
        int | None, typer.Option(help="Scale the weights are for, where the file cannot tell.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="safetensors file to write (default: the weights cache)."
        ),
    ] = None,
) -> None:
    """Convert weights to a strict-loading srbench safetensors file."""
    from srbench.convert import convert
    from srbench.files import writable_target

    if output is not None:
        writable_target(output)  # refused before the conversion's work, not after
    result = convert(source, output, model=model, scale=scale)
    scales = "/".join(f"x{s}" for s in result.scales)
    console.print(
        f"wrote {result.path} ({result.model} {scales}, from {result.format}; sha256 "
        f"{result.sha256})",
        highlight=False,
    )
    if result.note:
        err_console.print(f"[yellow]note:[/] {result.note}", highlight=False)


@app.command("fetch")
def weights_fetch(
    names: Annotated[
        list[str], typer.Argument(help="Models whose authors' weights to get: idn, vdsr, edsr.")
    ],
) -> None:
    """Download the authors' weights (pinned by URL and sha256 in the card), check, convert.

    They are then used by `srbench run --models NAME.official`. $SRBENCH_WEIGHTS_MIRROR fetches
    the same file names from a mirror.
    """
    from srbench.fetch import fetch

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        disable=not err_console.is_terminal and not progress_forced(),
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done)

        for name in dict.fromkeys(names):
            for got in fetch(name, progress=report):
                scales = "/".join(f"x{s}" for s in got.scales)
                console.print(
                    f"{got.key} {scales}: {got.path} (sha256 {got.sha256}, from {got.url})",
                    highlight=False,
                )
