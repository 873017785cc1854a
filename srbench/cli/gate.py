"""`srbench check` and `srbench baseline update`: the committed metrics baseline and the gate.

``check_command`` returns the exit code: 0 when nothing regressed, 1 otherwise. User errors raise
:class:`srbench.errors.SRBenchError` with a one-line message (the CLI prints it and exits 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, JustifyMethod
from rich.table import Table

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
from srbench.errors import SRBenchError
from srbench.parsing import int_list, split_list

DEFAULT_BASELINE = Path("results/baseline.json")


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
    code = check_command(
        baseline=baseline,
        results_dir=store(results_dir),
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
    baseline_update_command(
        baseline=baseline,
        results_dir=store(results_dir),
        models=models,
        datasets=datasets,
        scales=scales,
        console=console,
    )


def _weights_text(sha: str) -> str:
    return "random weights" if sha == "random-init" else sha[:8]


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and digits == 0):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


_STYLE = {
    "ok": "green",
    "improved": "cyan",
    "regressed": "bold red",
    "changed": "bold red",
    "missing": "bold red",
    "new": "yellow",
}


def _metric_cell(m, digits: int, relative: bool = False) -> str:
    if m is None:
        return ""
    style = _STYLE.get(m.status, "dim")
    if m.status.startswith("skipped"):
        return f"[dim]{m.status.removeprefix('skipped: ')}[/]"
    if m.metric in ("params", "macs", "images"):
        if m.status == "ok":
            return f"[{style}]{_fmt(m.current, 0)}[/]"
        return f"[{style}]{_fmt(m.baseline, 0)} -> {_fmt(m.current, 0)}[/]"
    if relative:
        delta = f"{m.delta:+.1%}" if m.delta is not None else ""
        return f"[{style}]{_fmt(m.current, 2)} ({delta})[/]"
    delta = f"{m.delta:+.{digits}f}" if m.delta is not None else ""
    return f"[{style}]{_fmt(m.current, digits)} ({delta})[/]"


def gate_table(result, show_all: bool = False) -> Table:
    """The diff table: one row per baseline entry (only the ones that are not ok, unless asked)."""
    from srbench.schema import metric_specs

    tol = result.tolerances
    specs = metric_specs()
    quality = ", ".join(
        f"{m.label} {'-' if m.higher_is_better else '+'}{tol.of(m.name):g}"
        + (f" {m.unit}" if m.unit else "")
        for m in specs
    )
    table = Table(
        title="srbench check: current vs baseline",
        caption=(
            f"tolerances: {quality}, params/MACs/images exact, "
            f"latency +{tol.latency_rel:.0%} (same device and threads only). "
            "Cells: current (delta)."
        ),
    )
    columns: list[tuple[str, JustifyMethod]] = [
        *((name, "left") for name in ("model", "weights", "protocol", "dataset")),
        ("x", "right"),
        *((m.header, "right") for m in specs),
        *((name, "right") for name in ("images", "params", "MACs", "latency ms")),
        ("status", "left"),
    ]
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name in ("model", "weights", "protocol"))
    for entry in result.entries:
        if not show_all and entry.status == "ok":
            continue
        k = entry.key
        by = {m.metric: m for m in entry.metrics}
        status = f"[{_STYLE.get(entry.status, 'dim')}]{entry.status}[/]"
        table.add_row(
            k["model"], _weights_text(str(k["weights_sha256"])), f"{k['protocol']}@{str(k['protocol_hash'])[:6]}",
            k["dataset"] + (" +ens" if k["ensemble"] else ""), str(k["scale"]),
            # one more decimal than the tables: the gate's tolerances are that fine
            *(_metric_cell(by.get(m.name), m.decimals + 1) for m in specs),
            _metric_cell(by.get("images"), 0), _metric_cell(by.get("params"), 0),
            _metric_cell(by.get("macs"), 0), _metric_cell(by.get("latency_ms"), 2, relative=True),
            status,
        )  # fmt: skip
    return table


def _wide_console() -> Console:
    """A console for the diff table: CI logs are not terminals, and 80 columns squash it."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _run_missing(
    baseline: dict,
    current: list[dict],
    results_dir: Path,
    *,
    force: bool,
    data_root: Path | str | None,
    weights: Mapping[tuple[str, int], Path] | None,
    device: str,
    err_console: Console,
) -> None:
    from srbench.data import resolve_data_root
    from srbench.gate import missing_runs
    from srbench.runner import RunConfig, run
    from srbench.sources import benchmark_source, demo_source

    root = resolve_data_root(data_root)
    for job in missing_runs(baseline, [] if force else current):
        what = f"{job['model']} x{','.join(map(str, job['scales']))} on {','.join(job['datasets'])}"
        try:
            sources = [
                demo_source() if key == "demo" else benchmark_source(key, root)
                for key in job["datasets"]
            ]
            config = RunConfig(
                models=[job["model"]],
                datasets=job["datasets"],
                scales=job["scales"],
                protocol=job["protocol"],
                data_root=root,
                weights=dict(weights or {}),
                device=device,
                ensemble=job["ensemble"],
                results_dir=results_dir,
                force=force,
            )
            with err_console.status(f"running {what} ({job['protocol']}) ..."):
                records = run(config, sources)
        except SRBenchError as exc:
            err_console.print(f"[yellow]note:[/] could not run {what}: {exc}", highlight=False)
            continue
        err_console.print(f"ran {what}: {len(records)} new results", highlight=False)


def check_command(
    baseline: Path | str = DEFAULT_BASELINE,
    results_dir: Path | str = Path("results"),
    *,
    run: bool = False,
    force: bool = False,
    data_root: Path | str | None = None,
    weights: Mapping[tuple[str, int], Path] | None = None,
    device: str = "cpu",
    psnr_tolerance: float | None = None,
    ssim_tolerance: float | None = None,
    latency_tolerance: float | None = None,
    show_all: bool = False,
    console: Console | None = None,
    err_console: Console | None = None,
) -> int:
    """Compare the store with the baseline; print the diff table; 0 if nothing regressed, else 1.

    ``run=True`` first runs (resumably, into ``results_dir``) every baseline entry the store does
    not have -- the baseline's models, datasets (e.g. Set5/Set14), scales and protocols, with
    ``weights`` as ``--weights``; ``force=True`` re-runs all of them. Tolerances default to the
    baseline file's (else PSNR 0.01 dB, SSIM 0.0002, latency 10%).
    """
    from srbench.gate import (
        Tolerances,
        compare,
        current_entries,
        environment_summary,
        read_baseline,
    )

    console = console or _wide_console()
    err_console = err_console or Console(stderr=True)
    data = read_baseline(baseline)
    results = Path(results_dir)
    tol = Tolerances.from_dict(data.get("tolerances"))
    for name, value in (
        ("psnr_db", psnr_tolerance), ("ssim", ssim_tolerance), ("latency_rel", latency_tolerance)
    ):  # fmt: skip
        if value is not None:
            if value < 0:
                raise SRBenchError(f"tolerances must be >= 0, got {name}={value}")
            tol = tol.replaced(name, float(value))

    keys = data["entries"]
    scope: dict[str, Any] = {
        "models": sorted({e["model"] for e in keys}),
        "datasets": sorted({e["dataset"] for e in keys}),
        "scales": sorted({int(e["scale"]) for e in keys}),
    }
    # With --run, results another version of the code made are re-run, not compared.
    scope["current_code"] = run or force
    with err_console.status("reading the store and counting parameters/MACs ..."):
        current = current_entries(results, **scope)
    if run or force:
        _run_missing(
            data, current, results, force=force, data_root=data_root, weights=weights,
            device=device, err_console=err_console,
        )  # fmt: skip
        with err_console.status("reading the store ..."):
            current = current_entries(results, **scope)
    result = compare(
        data, current, tolerances=tol, current_environment=environment_summary(results)
    )
    console.print(gate_table(result, show_all=show_all))
    for entry in result.entries:
        notes = [entry.note] if entry.note else []
        notes += [f"{m.metric}: {m.note}" for m in entry.metrics if m.note]
        if notes:
            k = entry.key
            where = (
                f"{k['model']} {k['dataset']} x{k['scale']} ({k['protocol']}@{k['protocol_hash']})"
            )
            console.print(f"  {entry.status}: {where}: {'; '.join(notes)}", highlight=False)
    counts = result.counts()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if result.failed:
        console.print(f"[bold red]FAIL[/]: {summary} (baseline {baseline})", highlight=False)
        return 1
    console.print(f"[green]PASS[/]: {summary} (baseline {baseline})", highlight=False)
    return 0


def baseline_update_command(
    baseline: Path | str = DEFAULT_BASELINE,
    results_dir: Path | str = Path("results"),
    *,
    models: str | Sequence[str] | None = None,
    datasets: str | Sequence[str] | None = None,
    scales: str | Sequence[int] | None = None,
    protocols: str | Sequence[str] | None = None,
    psnr_tolerance: float | None = None,
    ssim_tolerance: float | None = None,
    latency_tolerance: float | None = None,
    console: Console | None = None,
) -> Path:
    """Write the baseline from the store (explicitly: nothing else ever writes it); returns it."""
    from srbench.files import writable_target
    from srbench.gate import (
        Tolerances,
        current_entries,
        environment_summary,
        make_baseline,
        write_baseline,
    )

    writable_target(baseline)  # refused before reading the store, not after
    console = console or Console()
    tol = Tolerances()
    for name, value in (
        ("psnr_db", psnr_tolerance), ("ssim", ssim_tolerance), ("latency_rel", latency_tolerance)
    ):  # fmt: skip
        if value is not None:
            tol = tol.replaced(name, float(value))
    entries = current_entries(
        Path(results_dir),
        models=split_list(models) or None,
        datasets=split_list(datasets) or None,
        scales=int_list(scales, "--scales") or None,
        protocols=split_list(protocols) or None,
    )
    if not entries:
        raise SRBenchError(
            f"{results_dir}: no results match; run `srbench run` first (or widen the filters)"
        )
    _refuse_not_benchmark_means(entries, results_dir)
    data = make_baseline(entries, environment=environment_summary(results_dir), tolerances=tol)
    path = write_baseline(baseline, data)
    with_latency = sum(e["latency_ms"] is not None for e in entries)
    console.print(
        f"wrote {path}: {len(entries)} entries ({with_latency} with latency); commit it to make "
        "it the reference for `srbench check`",
        highlight=False,
    )
    return path


def _refuse_not_benchmark_means(entries: Sequence[dict], results_dir: Path | str) -> None:
    """A baseline holds benchmark means only: over one verified copy, exactly its image count."""
    from srbench.pareto import mean_problem

    bad = [
        f"{e['model']} x{e['scale']} {e['dataset']} ({problem})"
        for e in entries
        if (problem := mean_problem(e["dataset"], e["images"], e.get("verified")))
    ]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise SRBenchError(
            f"{results_dir}: refusing to write a baseline: not benchmark means: "
            f"{'; '.join(bad[:5])}{more}; run the missing images on the verified copy "
            "(`srbench run`), or leave them out with --models/--datasets/--scales"
        )
