"""Bodies of ``srbench report``, ``srbench pareto``, ``srbench check`` and ``srbench baseline update``.

Plain functions taking plain Python values, so the typer app only forwards its options::

    srbench report --results-dir results --output-dir reports [--visual-images N]
    srbench pareto --results-dir results --output-dir reports --quality psnr_db --cost params
    srbench check --baseline results/baseline.json [--run] [--results-dir results]
    srbench baseline update --baseline results/baseline.json [--results-dir results]

User errors raise :class:`srbench.errors.SRBenchError` with a one-line message (the CLI prints it
and exits 2). ``check_command`` returns the exit code: 0 when nothing regressed, 1 otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, JustifyMethod
from rich.table import Table

from srbench.errors import SRBenchError

__all__ = [
    "DEFAULT_BASELINE",
    "baseline_update_command",
    "check_command",
    "gate_table",
    "pareto_command",
    "report_command",
]

DEFAULT_BASELINE = Path("results/baseline.json")


def _weights_text(sha: str) -> str:
    return "random weights" if sha == "random-init" else sha[:8]


def _items(values: str | Sequence[Any] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = values.split(",")
    out = [str(v).strip() for v in values if str(v).strip()]
    return out or None


def _ints(values: str | Sequence[Any] | None, what: str) -> list[int] | None:
    items = _items(values)
    if items is None:
        return None
    try:
        return [int(v.lower().removeprefix("x")) for v in items]
    except ValueError:
        raise SRBenchError(
            f"{what}: {values!r} is not a comma-separated list of integers"
        ) from None


# ------------------------------------------------------------------------------------------------
# srbench report / srbench pareto
# ------------------------------------------------------------------------------------------------


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
            visual_scales=_ints(visual_scales, "--visual-scales"),
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
    wanted = _items(datasets)
    if wanted:
        frame = frame[frame["dataset"].isin(wanted)]
    wanted_scales = _ints(scales, "--scales")
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


# ------------------------------------------------------------------------------------------------
# srbench check / srbench baseline update
# ------------------------------------------------------------------------------------------------


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
    from srbench.runner import RunConfig, benchmark_source, demo_source, run

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
        models=_items(models),
        datasets=_items(datasets),
        scales=_ints(scales, "--scales"),
        protocols=_items(protocols),
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
