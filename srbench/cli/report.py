"""`srbench report|pareto|check` and `srbench baseline update`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from srbench.cli.common import (
    DataRoot,
    Device,
    ResultsDir,
    WeightsOpt,
    app,
    console,
    err_console,
    index_weights,
    new_app,
    store,
)

Reference = Annotated[
    bool,
    typer.Option(
        "--reference",
        help="Show the project's reference store (a clone's results/, or $SRBENCH_REFERENCE) "
        "beside yours, its models named NAME@ref.",
    ),
]


@app.command()
def report(
    results_dir: ResultsDir = None,
    output_dir: Annotated[Path, typer.Option(help="Report folder.")] = Path("reports"),
    visual_images: Annotated[
        int | None,
        typer.Option(
            help="Images per scale in the visual comparison (default: one per benchmark; 0: none)."
        ),
    ] = None,
    visual_scales: Annotated[
        str | None, typer.Option(help="Scales with a visual comparison (default: all).")
    ] = None,
    reference: Reference = False,
) -> None:
    """Render reports/index.html from the store alone: tables, figures, crops, verdict."""
    from srbench.report_cli import report_command

    report_command(
        store(results_dir),
        output_dir,
        visual_images=visual_images,
        visual_scales=visual_scales,
        reference=reference,
        console=console,
        err_console=err_console,
    )


@app.command()
def pareto(
    results_dir: ResultsDir = None,
    output_dir: Annotated[Path, typer.Option(help="Folder for the PNG/SVG plots.")] = Path(
        "reports"
    ),
    quality: Annotated[str, typer.Option(help="psnr_db or ssim.")] = "psnr_db",
    cost: Annotated[
        str, typer.Option(help="params, macs, network_macs, latency_ms or memory_bytes.")
    ] = "params",
    reference: Reference = False,
) -> None:
    """Pareto plots (quality vs cost) per dataset and scale, computed from the store."""
    from srbench.report_cli import pareto_command

    pareto_command(
        store(results_dir), output_dir, quality, cost, reference=reference, console=console,
        err_console=err_console,
    )  # fmt: skip


@app.command()
def check(
    baseline: Annotated[Path, typer.Option(help="Committed baseline JSON.")] = Path(
        "results/baseline.json"
    ),
    results_dir: ResultsDir = None,
    run_fresh: Annotated[
        bool, typer.Option("--run", help="Measure the baseline's entries afresh first.")
    ] = False,
    data_root: DataRoot = None,
    weights: WeightsOpt = None,
    device: Device = "cpu",
    show_all: Annotated[bool, typer.Option("--all", help="Show unchanged rows too.")] = False,
) -> None:
    """Compare results with the baseline (PSNR -0.01 dB, SSIM -0.0002, params/MACs exact)."""
    from srbench.report_cli import check_command

    code = check_command(
        baseline,
        store(results_dir),
        run=run_fresh,
        data_root=data_root,
        weights=index_weights(weights or []),
        device=device,
        show_all=show_all,
        console=console,
        err_console=err_console,
    )
    raise typer.Exit(code)


baseline_app = new_app(help="The committed metrics baseline (written only on request).")
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("update")
def baseline_update(
    baseline: Annotated[Path, typer.Option(help="Baseline JSON to write.")] = Path(
        "results/baseline.json"
    ),
    results_dir: ResultsDir = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models.")] = None,
    datasets: Annotated[str | None, typer.Option(help="Comma-separated datasets.")] = None,
    scales: Annotated[str | None, typer.Option(help="Comma-separated scales.")] = None,
) -> None:
    """Write the baseline from the store (explicitly; `check` never does)."""
    from srbench.report_cli import baseline_update_command

    baseline_update_command(
        baseline,
        store(results_dir),
        models=models,
        datasets=datasets,
        scales=scales,
        console=console,
    )


@app.command()
def verdict(
    results_dir: ResultsDir = None,
    protocol: Annotated[str, typer.Option(help="standard or legacy-y.")] = "standard",
    output: Annotated[
        Path | None,
        typer.Option(help="JSON file for the table (default: <results-dir>/verdict.json)."),
    ] = None,
) -> None:
    """DRN's claims at equal training: paired differences with 95% t intervals, from the store;
    with budget-ladder checkpoints in the store, the same per training budget."""
    import json

    from srbench.cli.compare import print_pairs
    from srbench.files import atomic_write, writable_target
    from srbench.results import ResultStore
    from srbench.verdict import VERDICT_PAIRS, sentence
    from srbench.verdict import verdict as compute

    results_dir = store(results_dir)
    path = writable_target(output or Path(results_dir) / "verdict.json")
    records = ResultStore(results_dir).shown_records()
    rows = compute(records, protocol=protocol)
    print_pairs(rows, f"paired A - B over the images ({protocol} protocol; 95% paired t interval)")
    for a, b, _ in VERDICT_PAIRS:
        console.print(sentence(rows, a, b), highlight=False)
    atomic_write(path, json.dumps([r.as_dict() for r in rows], indent=1) + "\n")
    err_console.print(f"wrote {path}", highlight=False)
    _budget_verdict(records, protocol, path.with_name("verdict_budget.json"))


def _budget_verdict(records: list[dict], protocol: str, path: Path) -> None:
    """The verdict per training budget (ladder checkpoints in the store), printed and saved."""
    import json

    from srbench.cli.compare import print_pairs
    from srbench.files import atomic_write
    from srbench.verdict import VERDICT_PAIRS, budget_sentence, budget_verdict

    rows = budget_verdict(records, protocol=protocol)
    if not rows:
        return
    from srbench.schema import headline

    spec = headline()
    shown = [r for r in rows if r.metric == spec.name]
    print_pairs(shown, f"{spec.label} A - B per training budget ({protocol}; 95% t interval)")
    for a, b, _ in VERDICT_PAIRS:
        console.print(budget_sentence(rows, a, b), highlight=False)
    atomic_write(path, json.dumps([r.as_dict() for r in rows], indent=1) + "\n")
    err_console.print(f"wrote {path}", highlight=False)
