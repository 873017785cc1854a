"""What every command module shares: consoles, the one error handler, options declared once."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from srbench.errors import SRBenchError

# Piped output keeps full tables instead of squeezing them into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


def say_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


# The order `srbench --help` lists the commands in: the main job first.
COMMAND_ORDER = (
    "run", "upscale", "models", "report", "compare", "verdict", "pareto", "check", "baseline", "profile", "data", "weights",
    "zoo", "train", "ablate",
)  # fmt: skip


class OneErrorHandler(TyperGroup):
    """Every command's library errors and OS faults become one line and exit code 2, here."""

    def list_commands(self, ctx):
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and command.short_help is None and command.help:
            # The commands panel shows a docstring's first paragraph; typer's "rich" markup
            # mode keeps its line breaks there (and only there), which breaks the lines mid-phrase.
            first = inspect.cleandoc(command.help).partition("\f")[0].split("\n\n")[0]
            if not first.startswith("\b"):  # click's "keep these lines" marker: typer's own
                command.short_help = " ".join(first.split())
        return command

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except SRBenchError as exc:
            say_error(str(exc))
        except OSError as exc:
            from srbench.devices import os_error_message  # imports torch: only when needed

            say_error(os_error_message(exc))
        raise typer.Exit(2)


def new_app(help: str, **kwargs) -> typer.Typer:
    return typer.Typer(cls=OneErrorHandler, help=help, **kwargs)


def fail(message: str) -> NoReturn:
    say_error(message)
    raise typer.Exit(2)


def progress_forced() -> bool:
    return os.environ.get("SRBENCH_PROGRESS") == "1"


# -- options declared once ----------------------------------------------------------------------

DataRoot = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder holding Set5/, Set14/, ... (else $SRBENCH_DATA)."),
]
ResultsDir = Annotated[
    Path | None,
    typer.Option(
        help="Result store folder (default: your store, $SRBENCH_RESULTS else "
        "~/.cache/srbench/results; a clone's results/ is the project's reference store)."
    ),
]

# Commands that change the project itself (shipping weights, recording ladder rungs) write their
# training records into the project's reference store, a clone's results/.
ReferenceResultsDir = Annotated[
    Path, typer.Option("--results-dir", help="Store for the training records: the project's.")
]


def store(results_dir: Path | None) -> Path:
    """``--results-dir``, else the user's store (never the committed reference)."""
    from srbench.stores import results_dir_or_default

    return results_dir_or_default(results_dir)


WeightsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        help="safetensors file or folder (repeatable); matched to models and scales by the "
        "metadata srbench writes into each file."
    ),
]
Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Recipe override KEY=VALUE (repeatable).")
]
ProtocolOpt = Annotated[
    str, typer.Option(help="Evaluation protocol id (an unknown id lists the known ones).")
]
TileOpt = Annotated[
    int | None,
    typer.Option(
        help="Tile size in LR pixels (default: whole image; tiles automatically on out-of-memory)."
    ),
]
TileOverlapOpt = Annotated[
    int | None,
    typer.Option(
        help="LR pixels of context around each tile (default: the model's receptive "
        "field, measured; a smaller overlap is refused, as it would change the numbers)."
    ),
]
CompileOpt = Annotated[bool, typer.Option("--compile", help="torch.compile the model.")]


def index_weights(paths: list[Path]) -> dict[tuple[str, int], Path]:
    from srbench.weights import index_weights as index

    return index(paths)


app = new_app(
    help="Benchmark and ablation suite for single-image super-resolution.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
