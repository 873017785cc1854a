"""The ``srbench`` command line. Library code never prints; this module does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from srbench.errors import SRBenchError


class _OneErrorHandler(TyperGroup):
    """Every command's library errors and OS faults become one line and exit code 2, here."""

    def invoke(self, ctx: typer.Context):
        from srbench.devices import os_error_message

        try:
            return super().invoke(ctx)
        except SRBenchError as exc:
            _say_error(str(exc))
        except OSError as exc:
            _say_error(os_error_message(exc))
        raise typer.Exit(2)


app = typer.Typer(
    cls=_OneErrorHandler,
    help="Benchmark and ablation suite for single-image super-resolution.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
data_app = typer.Typer(
    cls=_OneErrorHandler, help="Benchmark data: where it is, and whether it verifies."
)
weights_app = typer.Typer(
    cls=_OneErrorHandler, help="Weights: convert official checkpoints to safetensors."
)
app.add_typer(data_app, name="data")
app.add_typer(weights_app, name="weights")

# Piped output keeps full tables instead of squeezing them into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


def _split(values: str | None) -> list[str]:
    return [v.strip() for v in values.split(",") if v.strip()] if values else []


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def main() -> None:  # pragma: no cover - thin wrapper used by `python -m srbench`
    """Entry point. Errors become one line in :class:`_OneErrorHandler`; warnings too, here."""
    import warnings

    def show_warning(message, category, filename, lineno, file=None, line=None):
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    warnings.showwarning = show_warning
    app()


def _say_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


DataRoot = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder holding Set5/, Set14/, ... (else $SRBENCH_DATA)."),
]


@app.command()
def run(
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated model names (`srbench models`; aliases such as drn, edsr; "
            "NAME.official for the authors' weights). Default: every model srbench ships "
            "weights for, plus bicubic."
        ),
    ] = None,
    datasets: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: set5,set14,b100,urban100,manga109 or demo. "
            "Default: every benchmark present, else the built-in demo set."
        ),
    ] = None,
    scales: Annotated[str, typer.Option(help="Comma-separated scales.")] = "2,3,4",
    protocol: Annotated[
        str, typer.Option(help="standard or legacy-y (docs/protocols.md).")
    ] = "standard",
    data_root: DataRoot = None,
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            help="safetensors file or folder (repeatable); matched to models and "
            "scales by the metadata srbench writes into each file."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")] = "cpu",
    self_ensemble: Annotated[
        bool, typer.Option("--self-ensemble", help="x8 geometric self-ensemble (the '+' variants).")
    ] = False,
    tile: Annotated[
        int | None,
        typer.Option(
            help="Tile size in LR pixels (default: whole image; tiles automatically on out-of-memory)."
        ),
    ] = None,
    tile_overlap: Annotated[int, typer.Option(help="LR pixels of context around each tile.")] = 32,
    results_dir: Annotated[Path, typer.Option(help="Result store folder.")] = Path("results"),
    force: Annotated[
        bool, typer.Option("--force", help="Recompute results already in the store.")
    ] = False,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help="Evaluate images whose fingerprints do not match (labelled non-standard).",
        ),
    ] = False,
    allow_random_weights: Annotated[
        bool,
        typer.Option(
            "--allow-random-weights",
            help="Run trainable models without weights (smoke tests only).",
        ),
    ] = False,
    save_images: Annotated[
        Path | None,
        typer.Option(help="Save SR images (PNG, RGB; Y models get bicubic chroma) here."),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also store params, MACs (720p output, 256x256 LR) and latency of each model "
            "in <results-dir>/profile.jsonl, as `srbench profile` does.",
        ),
    ] = False,
) -> None:
    """Measure PSNR/SSIM of models on benchmarks; resumable, results go to the store."""
    from srbench.data import available_benchmarks, resolve_data_root
    from srbench.protocols import get_protocol
    from srbench.runner import DEMO_NOTICE, RunConfig, benchmark_source, demo_source

    try:
        from srbench.registry import list_models, resolve

        # Fail fast on unknown names; an alias and its target are one model (deduplicated).
        model_names = list(dict.fromkeys(resolve(m).key for m in _split(models)))
        default_models = not model_names
        if default_models:
            model_names = list_models(pretrained=True)
        get_protocol(protocol)
        root = resolve_data_root(data_root)
        dataset_keys = _split(datasets)
        if not dataset_keys:
            dataset_keys = available_benchmarks(root) or ["demo"]
        sources = [
            demo_source() if key == "demo" else benchmark_source(key, root, verify=not no_verify)
            for key in dataset_keys
        ]
        if any(s.key == "demo" for s in sources):
            err_console.print(f"[yellow]note:[/] {DEMO_NOTICE}", highlight=False)
        config = RunConfig(
            models=model_names,
            datasets=dataset_keys,
            scales=_scales_list(scales) or [],
            protocol=protocol,
            data_root=root,
            weights=index_weights(weights or []),
            device=device,
            ensemble=self_ensemble,
            tile=tile,
            tile_overlap=tile_overlap,
            verify=not no_verify,
            results_dir=results_dir,
            force=force,
            allow_random_weights=allow_random_weights,
            save_images=save_images,
            skip_missing_weights=default_models,
        )
        keys, records = _run_with_progress(config, sources)
    except SRBenchError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(f"bad option value: {exc}")
    _print_and_save_summary(config, sources, keys, records)
    if profile:
        from srbench.profiling_cli import profile_command

        try:
            profile_command(
                ",".join(config.models),
                ",".join(map(str, config.scales)),
                "720p,256",
                device,
                "fp32",
                5,
                1,
                None,
                Path(results_dir) / "profile.jsonl",
                console=console,
                err_console=err_console,
            )
        except SRBenchError as exc:
            _fail(str(exc))


def _run_with_progress(config, sources) -> tuple[list[tuple], list[dict]]:
    from srbench.runner import iter_run

    records: list[dict] = []
    keys: list[tuple] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal and not _progress_forced(),
    ) as progress:
        task = None
        for event in iter_run(config, sources):
            if event.kind == "start":
                task = progress.add_task(
                    f"{event.model} x{event.scale} {event.dataset}", total=event.total
                )
            elif event.kind in ("image", "skip") and task is not None:
                progress.advance(task)
                if event.key is not None:
                    keys.append(event.key)
                if event.record:
                    records.append(event.record)
            elif event.kind in ("tiled", "no-weights", "note"):
                err_console.print(f"[yellow]note:[/] {event.message}", highlight=False)
    return keys, records


def _progress_forced() -> bool:
    import os

    return os.environ.get("SRBENCH_PROGRESS") == "1"


def _print_and_save_summary(config, sources, run_keys: list[tuple], new_records: list[dict]):
    from srbench.protocols import get_protocol
    from srbench.runner import write_summary

    protocol = get_protocol(config.protocol)
    summary, path = write_summary(config, sources, run_keys, new_records)
    table = Table(title=f"PSNR (dB) / SSIM on Y -- protocol {protocol.label}")
    for column in ("model", "scale", "dataset", "PSNR_dB", "SSIM", "images"):
        table.add_column(column, justify="right" if column not in ("model", "dataset") else "left")
    for row in summary.sort_values(["model", "scale", "dataset"]).itertuples():
        table.add_row(
            row.model,
            f"x{row.scale}",
            row.dataset,
            f"{row.psnr_db:.2f}",
            f"{row.ssim:.4f}",
            str(row.images),
        )
    console.print(table)
    err_console.print(
        f"{len(new_records)} new per-image results in "
        f"{Path(config.results_dir) / 'records.jsonl'}; summary with provenance in {path}",
        highlight=False,
    )


def index_weights(paths: list[Path]) -> dict[tuple[str, int], Path]:
    from srbench.weights import index_weights as index

    return index(paths)


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Wildcard, e.g. 'drn*'.")] = "*",
) -> None:
    """List registered models (built-in and plugins) with parameters per scale."""
    from srbench.registry import create_model, get_card, list_models, model_origin

    table = Table(title="srbench models (trainable parameters)")
    for column in ("name", "aliases", "family", "input", "x2", "x3", "x4", "weights", "paper"):
        table.add_column(column)
    for name in list_models(pattern):
        card = get_card(name)
        counts = {}
        for scale in (2, 3, 4):
            if scale in card.scales:
                model = create_model(name, scale=scale)
                counts[scale] = f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}"

        def scales(refs: dict) -> str:
            return "/".join(f"x{s}" for s in sorted(refs))

        weights = []
        if card.weights:
            weights.append(f"shipped {scales(card.weights)}")
        if card.official_weights:
            weights.append(f"{name}.official {scales(card.official_weights)}")
        table.add_row(
            name,
            ", ".join(card.aliases) or "-",
            card.family,
            card.input_channels,
            counts.get(2, "-"),
            counts.get(3, "-"),
            counts.get(4, "-"),
            "; ".join(weights) or ("none needed" if not card.trainable else "-"),
            f"{card.paper.split(',')[0]} ({card.year}) [{model_origin(name)}]",
        )
    console.print(table)


@data_app.command("list")
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


@data_app.command("verify")
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
    keys = _split(datasets) or available_benchmarks(root)
    if not keys:
        _fail(f"no benchmark folders under {root}; see `srbench data list`")
    bad = 0
    for key in keys:
        try:
            spec = get_benchmark(key)
        except SRBenchError as exc:
            _fail(str(exc))
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


@weights_app.command("convert")
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

    result = convert(source, output, model=model, scale=scale)
    scales = "/".join(f"x{s}" for s in result.scales)
    console.print(
        f"wrote {result.path} ({result.model} {scales}, from {result.format}; sha256 "
        f"{result.sha256})",
        highlight=False,
    )
    if result.note:
        err_console.print(f"[yellow]note:[/] {result.note}", highlight=False)


@weights_app.command("fetch")
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
        disable=not err_console.is_terminal and not _progress_forced(),
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


def _split_dict(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SRBenchError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set data.batch_size=8")
        out[key.strip()] = value.strip()
    return out


ResultsDir = Annotated[Path, typer.Option(help="Result store folder.")]
WeightsOpt = Annotated[
    list[Path] | None, typer.Option(help="safetensors files or folders (repeatable).")
]


@app.command()
def profile(
    models: Annotated[str, typer.Option(help="Names or wildcards, or 'all'.")] = "all",
    scales: Annotated[str, typer.Option(help="Comma-separated scales.")] = "2,3,4",
    sizes: Annotated[
        str, typer.Option(help="720p (1280x720 HR output), 256 (256x256 LR), WxH, hr:WxH.")
    ] = "720p,256",
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    precision: Annotated[
        str, typer.Option(help="fp32, tf32, fp16, bf16 (comma-separated).")
    ] = "fp32",
    repeats: Annotated[int, typer.Option(help="Timed repeats (median, IQR, min).")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up passes.")] = 2,
    budget_s: Annotated[
        float | None, typer.Option(help="Stop timing after this many seconds.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (recorded).")] = None,
    cudnn_benchmark: Annotated[bool, typer.Option("--cudnn-benchmark")] = False,
    no_latency: Annotated[
        bool, typer.Option("--no-latency", help="Parameters and MACs only.")
    ] = False,
    output: Annotated[
        Path, typer.Option(help="JSON-lines file the records are appended to.")
    ] = Path("results/profile.jsonl"),
) -> None:
    """Parameters, MACs/FLOPs, latency and peak memory, labelled with units and environment."""
    from srbench.profiling_cli import profile_command

    try:
        profile_command(
            models,
            scales,
            sizes,
            device,
            precision,
            repeats,
            warmup,
            budget_s,
            output,
            threads=threads,
            cudnn_benchmark=cudnn_benchmark,
            latency=not no_latency,
            console=console,
            err_console=err_console,
        )
    except SRBenchError as exc:
        _fail(str(exc))


@app.command()
def report(
    results_dir: ResultsDir = Path("results"),
    output_dir: Annotated[Path, typer.Option(help="Report folder.")] = Path("reports"),
    data_root: DataRoot = None,
    weights: WeightsOpt = None,
    visual_images: Annotated[int, typer.Option(help="Images in the visual comparison.")] = 3,
    device: Annotated[str, typer.Option(help="Device for the visual crops.")] = "cpu",
) -> None:
    """Render reports/index.html: tables, Pareto plots, paper vs measured, visual crops."""
    from srbench.report_cli import report_command

    try:
        report_command(
            results_dir,
            output_dir,
            data_root,
            index_weights(weights or []),
            visual_images=visual_images,
            device=device,
            console=console,
            err_console=err_console,
        )
    except SRBenchError as exc:
        _fail(str(exc))


@app.command()
def pareto(
    results_dir: ResultsDir = Path("results"),
    output_dir: Annotated[Path, typer.Option(help="Folder for the PNG/SVG plots.")] = Path(
        "reports"
    ),
    quality: Annotated[str, typer.Option(help="psnr_db or ssim.")] = "psnr_db",
    cost: Annotated[
        str, typer.Option(help="params, macs, network_macs, latency_ms or memory_bytes.")
    ] = "params",
) -> None:
    """Pareto plots (quality vs cost) per dataset and scale, computed from the store."""
    from srbench.report_cli import pareto_command

    try:
        pareto_command(
            results_dir, output_dir, quality, cost, console=console, err_console=err_console
        )
    except SRBenchError as exc:
        _fail(str(exc))


@app.command()
def check(
    baseline: Annotated[Path, typer.Option(help="Committed baseline JSON.")] = Path(
        "results/baseline.json"
    ),
    results_dir: ResultsDir = Path("results"),
    run_fresh: Annotated[
        bool, typer.Option("--run", help="Measure the baseline's entries afresh first.")
    ] = False,
    data_root: DataRoot = None,
    weights: WeightsOpt = None,
    device: Annotated[str, typer.Option()] = "cpu",
    show_all: Annotated[bool, typer.Option("--all", help="Show unchanged rows too.")] = False,
) -> None:
    """Compare results with the baseline (PSNR -0.01 dB, SSIM -0.0002, params/MACs exact)."""
    from srbench.report_cli import check_command

    try:
        code = check_command(
            baseline,
            results_dir,
            run=run_fresh,
            data_root=data_root,
            weights=index_weights(weights or []),
            device=device,
            show_all=show_all,
            console=console,
            err_console=err_console,
        )
    except SRBenchError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


baseline_app = typer.Typer(
    cls=_OneErrorHandler, help="The committed metrics baseline (written only on request)."
)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("update")
def baseline_update(
    baseline: Annotated[Path, typer.Option(help="Baseline JSON to write.")] = Path(
        "results/baseline.json"
    ),
    results_dir: ResultsDir = Path("results"),
    models: Annotated[str | None, typer.Option(help="Comma-separated models.")] = None,
    datasets: Annotated[str | None, typer.Option(help="Comma-separated datasets.")] = None,
    scales: Annotated[str | None, typer.Option(help="Comma-separated scales.")] = None,
) -> None:
    """Write the baseline from the store (explicitly; `check` never does)."""
    from srbench.report_cli import baseline_update_command

    try:
        baseline_update_command(
            baseline, results_dir, models=models, datasets=datasets, scales=scales, console=console
        )
    except SRBenchError as exc:
        _fail(str(exc))


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
    device: Annotated[str, typer.Option()] = "cpu",
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

    try:
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
            _split_dict(set_),
        )
    except SRBenchError as exc:
        _fail(str(exc))


@app.command()
def ablate(
    spec: Annotated[
        str, typer.Argument(help="Ablation spec YAML or built-in name.")
    ] = "ablation-drn",
    data_root: DataRoot = None,
    output_dir: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    results_dir: ResultsDir = Path("results"),
    device: Annotated[str, typer.Option()] = "cpu",
    iterations: Annotated[int | None, typer.Option(help="Override the shared budget.")] = None,
    compile_model: Annotated[bool, typer.Option("--compile")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE (repeatable).")] = None,
) -> None:
    """Train a grid of variants under one budget and store their scores."""
    from srbench.training.cli import ablate_command

    try:
        ablate_command(
            spec,
            data_root,
            output_dir,
            results_dir,
            device,
            iterations,
            compile_model,
            _split_dict(set_),
        )
    except SRBenchError as exc:
        _fail(str(exc))


zoo_app = typer.Typer(
    cls=_OneErrorHandler, help="The model zoo: every model trained under one recipe (zoo.yaml)."
)
app.add_typer(zoo_app, name="zoo")
ZooSpec = Annotated[str, typer.Option("--spec", help="Zoo spec YAML or built-in name.")]
ZooDir = Annotated[
    Path | None,
    typer.Option("--output-dir", help="Run folders (default ~/.cache/srbench/zoo)."),
]
ZooModels = Annotated[str | None, typer.Option(help="Comma-separated subset of the zoo's models.")]
ZooScales = Annotated[str | None, typer.Option(help="Comma-separated subset of scales.")]


def _scales_list(scales: str | None) -> list[int] | None:
    """``"2,3"`` or ``"x2,x3"`` -> [2, 3]."""
    return [int(s.lower().removeprefix("x")) for s in _split(scales)] or None


@zoo_app.command("train")
def zoo_train(
    spec: ZooSpec = "zoo",
    output_dir: ZooDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
    data_root: DataRoot = None,
    device: Annotated[str, typer.Option()] = "cpu",
) -> None:
    """Train every zoo run in order; finished runs are skipped, interrupted ones resume."""
    from srbench.training.cli import zoo_train_command

    try:
        zoo_train_command(
            spec, output_dir, _split(models) or None, _scales_list(scales), data_root, device
        )
    except SRBenchError as exc:
        _fail(str(exc))


@zoo_app.command("status")
def zoo_status(
    spec: ZooSpec = "zoo",
    output_dir: ZooDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
) -> None:
    """Which zoo runs are finished, interrupted or not started, with their training time."""
    from srbench.training.cli import zoo_status_command

    try:
        zoo_status_command(spec, output_dir, _split(models) or None, _scales_list(scales))
    except SRBenchError as exc:
        _fail(str(exc))


@zoo_app.command("ship")
def zoo_ship(
    spec: ZooSpec = "zoo",
    output_dir: ZooDir = None,
    models: ZooModels = None,
    scales: ZooScales = None,
) -> None:
    """Copy finished zoo runs' weights into the package (float16) and pin their sha256."""
    from srbench.training.cli import zoo_ship_command

    try:
        zoo_ship_command(spec, output_dir, _split(models) or None, _scales_list(scales))
    except SRBenchError as exc:
        _fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    main()
