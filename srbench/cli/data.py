"""`srbench data list|verify|fetch|import`: where benchmark data is, whether it verifies, and
getting it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID
from rich.table import Table

from srbench.cli.common import (
    DataRoot,
    console,
    err_console,
    fail,
    new_app,
    progress_forced,
)
from srbench.parsing import split_list

app = new_app(help="Benchmark data: where it is, whether it verifies, fetch and import.")


@app.command("list")
def data_list(data_root: DataRoot = None) -> None:
    """Show where data is looked for and which benchmarks are present."""
    from srbench.data import hr_folder, list_benchmarks, resolve_data_root

    root = resolve_data_root(data_root)
    table = Table(title=f"benchmarks under {root}")
    for column in ("key", "name", "images expected", "files present", "folder"):
        table.add_column(column)
    for spec in list_benchmarks():
        folder = hr_folder(spec, root)
        present = len([p for p in folder.iterdir() if p.is_file()]) if folder.is_dir() else 0
        table.add_row(spec.key, spec.name, str(spec.count), str(present), str(folder))
    console.print(table)
    console.print(
        "Verify pixels with `srbench data verify`. Data root: --data-root, then "
        "$SRBENCH_DATA, then the user cache.",
        highlight=False,
    )


@app.command("verify")
def data_verify(
    datasets: Annotated[
        str | None, typer.Option(help="Comma-separated keys (default: all present).")
    ] = None,
    data_root: DataRoot = None,
) -> None:
    """Check every image against its pixel fingerprint; names each bad image."""
    from srbench.data import (
        available_benchmarks,
        get_benchmark,
        hr_folder,
        resolve_data_root,
        verify_benchmark,
    )

    root = resolve_data_root(data_root)
    keys = split_list(datasets) or available_benchmarks(root)
    if not keys:
        fail(f"no benchmark folders under {root}; see `srbench data list`")
    bad = 0
    for key in keys:
        spec = get_benchmark(key)
        if not hr_folder(spec, root).is_dir():
            console.print(
                f"{spec.name}: [red]missing[/] ({hr_folder(spec, root)})", highlight=False
            )
            bad += 1
            continue
        statuses = verify_benchmark(spec, root)
        ok = sum(s.status == "ok" for s in statuses)
        colour = "green" if ok == spec.count else "red"
        console.print(f"{spec.name}: [{colour}]{ok}/{spec.count} verified[/]", highlight=False)
        for status in statuses:
            if status.status != "ok":
                bad += 1
                console.print(f"  {status.name}: {status.status}: {status.detail}", highlight=False)
    if bad:
        raise typer.Exit(1)


@app.command("fetch")
def data_fetch(
    datasets: Annotated[list[str], typer.Argument(help="set5 set14 b100 urban100, or all.")],
    data_root: DataRoot = None,
) -> None:
    """Download the pinned public archives, verify every HR image by its pixel fingerprint, and
    install only what verifies (Manga109: `srbench data import manga109 FOLDER`)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from srbench.data import BENCHMARK_KEYS
    from srbench.datafetch import fetch_benchmark, sources

    root = _target_root(data_root)
    keys = [k for k in BENCHMARK_KEYS if sources(k)] if datasets == ["all"] else datasets
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err_console,
        disable=not err_console.is_terminal and not progress_forced(),
    ) as progress:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def show(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        for key in keys:
            console.print(fetch_benchmark(key.lower(), root, progress=show), highlight=False)


@app.command("import")
def data_import(
    dataset: Annotated[str, typer.Argument(help="manga109 (or any benchmark key).")],
    folder: Annotated[Path, typer.Argument(help="Your copy: a folder holding its HR images.")],
    data_root: DataRoot = None,
) -> None:
    """Install a benchmark from your own copy (e.g. Manga109, which may not be redistributed):
    every lossless image under FOLDER is matched by its pixels; only a complete, verified set is
    installed."""
    from srbench.datafetch import import_benchmark

    root = _target_root(data_root)
    console.print(import_benchmark(dataset.lower(), folder, root), highlight=False)


def _target_root(data_root: Path | None) -> Path:
    """The data root fetch/import fill (--data-root, $SRBENCH_DATA, the user cache), created
    if absent: unlike `run`, these commands are how it gets made."""
    import os

    from srbench.data import ENV_DATA_ROOT, default_cache_dir

    named = data_root or os.environ.get(ENV_DATA_ROOT)
    root = Path(named).expanduser() if named else default_cache_dir() / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    return root
