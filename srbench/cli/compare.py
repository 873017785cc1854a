"""`srbench compare`: any two models in the store, paired over the images (the verdict's method)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from srbench.cli.common import (
    ProtocolOpt,
    ResultsDir,
    app,
    console,
    err_console,
    fail,
    store,
)
from srbench.parsing import int_list, split_list


@app.command()
def compare(
    a: Annotated[
        str | None, typer.Argument(help="Model A (NAME, alias, NAME.official, NAME@ref).")
    ] = None,
    b: Annotated[str | None, typer.Argument(help="Model B, compared as A - B.")] = None,
    datasets: Annotated[
        str | None, typer.Option(help="Comma-separated datasets (default: every one stored).")
    ] = None,
    scales: Annotated[
        str | None, typer.Option(help="Comma-separated scales (default: all).")
    ] = None,
    protocol: ProtocolOpt = "standard",
    preset: Annotated[
        str | None,
        typer.Option(help="A named set of pairs instead of A B: drn (the DRN verdict)."),
    ] = None,
    results_dir: ResultsDir = None,
    output_dir: Annotated[
        Path, typer.Option(help="Folder for the forest plot (PNG) and the table (JSON).")
    ] = Path("reports"),
) -> None:
    """Paired A - B per dataset and scale: mean PSNR/SSIM difference, the verdict's 95% interval
    over the images, wins/ties/losses; a table, a forest plot and a JSON file."""
    from srbench.comparison import compare_models, preset_pairs, stored_name
    from srbench.figures import forest_plot
    from srbench.files import atomic_write
    from srbench.results import ResultStore
    from srbench.stores import is_reference_name, reference_records
    from srbench.verdict import sentence, unequal_training

    if preset is not None and a is not None:
        fail("give either two models or --preset, not both")
    if preset is not None:
        pairs = preset_pairs(preset)
    elif a is None or b is None:
        fail("give two models (srbench compare drn_s idn) or --preset drn")
    else:
        pairs = ((a, b, f"{a} vs {b}"),)
    results = store(results_dir)
    records = ResultStore(results).latest_records()
    if any(is_reference_name(n) for pair in pairs for n in pair[:2]):
        records += reference_records()
    stored = {r["model"] for r in records if r["protocol"] == protocol}
    if not preset:
        names = [stored_name(n, stored, str(results)) for n in (a, b)]  # type: ignore[arg-type]
        pairs = ((names[0], names[1], f"{names[0]} vs {names[1]}"),)
    rows = compare_models(
        records,
        pairs,
        datasets=split_list(datasets),
        scales=int_list(scales, "--scales") or None,
        protocol=protocol,
        equal_training=preset is not None,
    )
    if not rows:
        fail(
            f"no images that both models have ({protocol} protocol, datasets "
            f"{datasets or 'all'}, scales {scales or 'all'}): run both on the same benchmark first"
        )
    _print_table(rows, protocol)
    unequal = unequal_training(records, pairs=pairs, protocol=protocol) if preset else []
    for x, y, _ in pairs:
        text = sentence(rows, x, y, unequal)
        console.print(text if preset else text.replace(" at equal training", ""), highlight=False)
    name = preset or f"{pairs[0][0]}_vs_{pairs[0][1]}"
    output_dir.mkdir(parents=True, exist_ok=True)
    titles = {(x, y): t for x, y, t in pairs}
    plot = forest_plot(
        rows, output_dir / f"compare_{name}", titles=titles, title=preset or "paired comparison"
    )
    table = output_dir / f"compare_{name}.json"
    atomic_write(table, json.dumps([r.as_dict() for r in rows], indent=1) + "\n")
    err_console.print(f"wrote {plot} and {table}", highlight=False)


def _print_table(rows, protocol: str) -> None:
    method = rows[0].diff.method  # the verdict's interval method, whatever it is
    print_pairs(rows, f"paired A - B over the images ({protocol} protocol; 95% {method})")


def print_pairs(rows, title: str) -> None:
    """One table of paired comparisons (:class:`srbench.verdict.PairResult`): the verdict's,
    `compare`'s and the verdict per training budget (a budget column where rows have one)."""
    from rich.table import Table

    from srbench.schema import metric

    budgets = any(r.budget for r in rows)
    table = Table(title=title)
    columns = ["A", "B", *(["budget"] if budgets else []), "dataset", "scale", "metric"]
    columns += ["images x seeds" if budgets else "images", "A - B", "95% interval", "W/T/L"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("A", "B", "dataset") else "right")
    for r in rows:
        digits = metric(r.metric).decimals + 1  # differences: one decimal finer than means
        n = f"{r.images} x {r.diff.seeds}" if budgets else str(r.images)
        table.add_row(
            r.a, r.b, *([str(r.budget)] if budgets else []), r.dataset, f"x{r.scale}", r.metric,
            n, f"{r.diff.mean:+.{digits}f}",
            f"[{r.diff.low:+.{digits}f}, {r.diff.high:+.{digits}f}]",
            f"{r.wins}/{r.ties}/{r.losses}",
        )  # fmt: skip
    console.print(table)
