"""`srbench report|pareto|verdict`: what the store shows (the gate is in ``cli.gate``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from srbench.cli.common import (
    ProtocolOpt,
    ResultsDir,
    app,
    console,
    err_console,
    store,
)
from srbench.errors import SRBenchError
from srbench.parsing import int_list, split_list

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
    report_command(
        results_dir=store(results_dir),
        output_dir=output_dir,
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
    pareto_command(
        results_dir=store(results_dir), output_dir=output_dir, quality=quality, cost=cost,
        reference=reference, console=console, err_console=err_console,
    )  # fmt: skip


@app.command()
def verdict(
    results_dir: ResultsDir = None,
    protocol: ProtocolOpt = "standard",
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
    from srbench.verdict import VERDICT_PAIRS, sentence, unequal_training
    from srbench.verdict import verdict as compute

    results_dir = store(results_dir)
    path = writable_target(output or Path(results_dir) / "verdict.json")
    records = ResultStore(results_dir).shown_records()
    rows = compute(records, protocol=protocol)
    print_pairs(rows, f"paired A - B over the images ({protocol} protocol; 95% paired t interval)")
    unequal = unequal_training(records, protocol=protocol)
    for a, b, _ in VERDICT_PAIRS:
        console.print(sentence(rows, a, b, unequal), highlight=False)
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


def report_command(
    results_dir: Path | str = Path("results"),
    output_dir: Path | str = Path("reports"),
    *,
    visual_images: int | None = None,
    visual_scales: str | Sequence[int] | None = None,
    title: str = "srbench report",
    reference: bool = False,
    console: Console | None = None,
    err_console: Console | None = None,
) -> Path:
    """Render ``output_dir/index.html`` from the store alone; returns its path.

    ``visual_images``: images per scale (``None``: the report's default, one per benchmark;
    0 leaves the visual comparisons out); ``visual_scales``: e.g. ``"4"``
    (default: every scale). The crops and costs are the ones ``srbench run``/``srbench profile``
    stored; nothing is re-run. ``reference``: the project's reference store beside this one, its
    models named ``NAME@ref``.
    """
    from srbench.pareto import load_profiles
    from srbench.report import build_report
    from srbench.stores import reference_profiles, reference_records

    console = console or Console()
    err_console = err_console or Console(stderr=True)
    if visual_images is not None and visual_images < 0:
        raise SRBenchError(f"--visual-images must be >= 0, got {visual_images}")
    results = Path(results_dir)
    if not reference and not (results / "records.jsonl").is_file():
        raise SRBenchError(
            f"{results}: no result store (records.jsonl); run `srbench run` first, or add "
            "--reference for the project's results"
        )
    extra = reference_records() if reference else []
    profiles = [*load_profiles(results), *reference_profiles()] if reference else None
    with err_console.status("building the report ...") as status:
        index = build_report(
            results,
            output_dir,
            extra_records=extra,
            profiles=profiles,
            visual_images=visual_images,
            visual_scales=int_list(visual_scales, "--visual-scales") or None,
            title=title,
            progress=lambda msg: status.update(msg),
        )
    console.print(f"wrote {index} (open it offline; the folder is self-contained)", highlight=False)
    return index


def pareto_command(
    results_dir: Path | str = Path("results"),
    output_dir: Path | str = Path("reports"),
    quality: str = "psnr_db",
    cost: str = "params",
    *,
    datasets: str | Sequence[str] | None = None,
    scales: str | Sequence[int] | None = None,
    protocol: str | None = None,
    reference: bool = False,
    console: Console | None = None,
    err_console: Console | None = None,
) -> list[Path]:
    """One Pareto plot (PNG + SVG) per protocol, dataset and scale in the store; returns the PNGs.
    ``reference``: the project's reference store beside this one, its models named ``NAME@ref``."""
    from srbench.pareto import COSTS, load_profiles, plot_all, quality_spec
    from srbench.results import load_results
    from srbench.stores import reference_profiles, with_reference

    console = console or Console()
    err_console = err_console or Console(stderr=True)
    quality_spec(quality)  # an unknown one: refused before reading the store
    if cost not in COSTS:
        raise SRBenchError(f"unknown cost {cost!r}; choose from {', '.join(COSTS)}")
    frame = load_results(results_dir)
    profiles = load_profiles(results_dir)
    if reference:
        frame, profiles = with_reference(frame), [*profiles, *reference_profiles()]
    if frame.empty:
        raise SRBenchError(
            f"{results_dir}: the result store is empty; run `srbench run` first, or add "
            "--reference for the project's results"
        )
    if "ablation" in frame.columns:
        frame = frame[frame["ablation"].isna()]
    wanted = split_list(datasets)
    if wanted:
        frame = frame[frame["dataset"].isin(wanted)]
    wanted_scales = int_list(scales, "--scales")
    if wanted_scales:
        frame = frame[frame["scale"].astype(int).isin(wanted_scales)]
    if protocol:
        frame = frame[frame["protocol"] == protocol]
    random = frame["weights_sha256"] == "random-init"
    if random.any():
        names = ", ".join(sorted(set(frame[random]["model"])))
        err_console.print(
            f"[yellow]note:[/] random-weight results left out: {names}", highlight=False
        )
        frame = frame[~random]
    if frame.empty:
        raise SRBenchError("no results match the requested datasets, scales and protocol")
    with err_console.status("plotting ..."):
        results = plot_all(frame, output_dir, quality=quality, cost=cost, profiles=profiles)
    written: list[Path] = []
    for group, paths in results:
        where = f"{group['protocol']}@{group['protocol_hash']} {group['dataset']} x{group['scale']}"
        if isinstance(paths, dict):
            written.append(paths["png"])
            console.print(f"{where}: {paths['png']} (+ .svg)", highlight=False, soft_wrap=True)
        else:
            err_console.print(
                f"[yellow]note:[/] {where}: not plotted: {paths}", highlight=False, soft_wrap=True
            )
    if not written:
        raise SRBenchError(f"no plot could be made for {quality} vs {cost}")
    return written
