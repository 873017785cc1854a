"""`srbench data list|verify`: where benchmark data is, and whether it verifies."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from srbench.cli.common import (
    DataRoot,
    console,
    fail,
    new_app,
    split,
)

app = new_app(help="Benchmark data: where it is, and whether it verifies.")


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
    keys = split(datasets) or available_benchmarks(root)
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
