"""`srbench run` and `srbench models`: the benchmark itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from srbench.cli.common import (
    DataRoot,
    Device,
    ProtocolOpt,
    ResultsDir,
    TileOpt,
    TileOverlapOpt,
    WeightsOpt,
    app,
    console,
    err_console,
    fail,
    index_weights,
    progress_forced,
    store,
)
from srbench.errors import SRBenchError
from srbench.parsing import int_list, split_list

RunModels = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated model names (`srbench models`; aliases such as drn, edsr; "
        "NAME.official for the authors' weights). Default: every model srbench ships "
        "weights for, plus bicubic."
    ),
]

RunDatasets = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated: set5,set14,b100,urban100,manga109, demo, or a folder of your "
        "own HR images (an ad-hoc, unverified benchmark named by the folder and a content "
        "hash). Default: every benchmark present, else the built-in demo set."
    ),
]

RunScales = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated scales (2,3,4 or x2,x3,x4). Default: 2,3,4, skipping (and "
        "naming) any a model has no weights for."
    ),
]

DetectedName = Annotated[
    str | None,
    typer.Option(
        help="With --weights FILE and no --models: the name to store the detected model under "
        "(default: <architecture>_<sha256[:8]> of the file)."
    ),
]

SelfEnsemble = Annotated[
    bool, typer.Option("--self-ensemble", help="x8 geometric self-ensemble (the '+' variants).")
]

Force = Annotated[bool, typer.Option("--force", help="Recompute results already in the store.")]

NoVerify = Annotated[
    bool,
    typer.Option(
        "--no-verify",
        help="Evaluate images whose fingerprints do not match (labelled non-standard).",
    ),
]

AllowRandomWeights = Annotated[
    bool,
    typer.Option(
        "--allow-random-weights",
        help="Run trainable models without weights (smoke tests only).",
    ),
]

AllowDirty = Annotated[
    bool,
    typer.Option(
        "--allow-dirty",
        help="Write into a store committed to git (a clone's results/) although srbench's "
        "code has uncommitted changes; the records say code_dirty: true.",
    ),
]

SaveImages = Annotated[
    Path | None,
    typer.Option(help="Save SR images (PNG, RGB; Y models get bicubic chroma) here."),
]

WeightsTag = Annotated[
    str | None,
    typer.Option(
        help="With --models M --weights FILE: store the results as M.TAG (e.g. mine), so "
        "two weight files of one model are told apart by name.",
    ),
]

Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="CPU threads for torch. Default: as many as the machine has idle cores, "
        "re-measured during the run (docs/efficiency.md, Threads).",
    ),
]

AlsoProfile = Annotated[
    bool,
    typer.Option(
        "--profile",
        help="Also store params, MACs (720p output, 256x256 LR) and latency of each model "
        "in <results-dir>/profile.jsonl, as `srbench profile` does.",
    ),
]


@app.command()
def run(
    models: RunModels = None,
    datasets: RunDatasets = None,
    scales: RunScales = None,
    protocol: ProtocolOpt = "standard",
    data_root: DataRoot = None,
    weights: WeightsOpt = None,
    name: DetectedName = None,
    device: Device = "cpu",
    self_ensemble: SelfEnsemble = False,
    tile: TileOpt = None,
    tile_overlap: TileOverlapOpt = None,
    results_dir: ResultsDir = None,
    force: Force = False,
    no_verify: NoVerify = False,
    allow_random_weights: AllowRandomWeights = False,
    allow_dirty: AllowDirty = False,
    save_images: SaveImages = None,
    tag: WeightsTag = None,
    threads: Threads = None,
    profile: AlsoProfile = False,
) -> None:
    """Measure PSNR/SSIM of models on benchmarks; resumable, results go to the store."""
    from srbench.data import available_benchmarks, resolve_data_root
    from srbench.protocols import get_protocol
    from srbench.runner import RunConfig
    from srbench.sources import DEMO_NOTICE

    results_dir = store(results_dir)
    from srbench.provenance import refuse_dirty_store

    refuse_dirty_store(results_dir, allow_dirty=allow_dirty)
    try:
        from srbench.registry import list_models, resolve

        # Names parsed once, here: unknown ones fail before anything runs.
        refs = [resolve(m) for m in split_list(models)]
        if tag and not weights:
            fail("--tag names the weights given with --weights; pass --weights FILE too")
        weights_index = {} if models is None and weights else index_weights(weights or [])
        if models is None and weights:  # third-party checkpoints: the architecture is detected
            names, weights_index, scales = _detected(weights, name, scales)
            refs = [resolve(n) for n in names]
        default_models = not refs
        if default_models:
            refs = [resolve(n) for n in list_models(pretrained=True)]
        root = resolve_data_root(data_root)
        dataset_keys = split_list(datasets)
        if not dataset_keys:
            dataset_keys = available_benchmarks(root) or ["demo"]
        sources = [_source(key, root, not no_verify) for key in dataset_keys]
        if any(s.key == "demo" for s in sources):
            err_console.print(f"[yellow]note:[/] {DEMO_NOTICE}", highlight=False)
        config = RunConfig(
            models=refs,
            datasets=[s.key for s in sources],
            scales=int_list(scales, "--scales") or [2, 3, 4],
            protocol=get_protocol(protocol),
            data_root=root,
            weights=weights_index,
            weights_named=list(weights or []),
            weights_tag=tag,
            device=device,
            ensemble=self_ensemble,
            tile=tile,
            tile_overlap=tile_overlap,
            verify=not no_verify,
            results_dir=results_dir,
            force=force,
            allow_random_weights=allow_random_weights,
            save_images=save_images,
            skip_missing_weights=default_models or scales is None,
            count_costs=not profile,  # --profile writes the measured records instead
            threads=threads,
        )
        keys, records = _run_with_progress(config, sources)
    except ValueError as exc:
        fail(f"bad option value: {exc}")
    _print_and_save_summary(config, sources, keys, records)
    if profile:
        from srbench.cli.profile import profile as profile_models

        profile_models(
            models=",".join(ref.key for ref in config.models),
            scales=",".join(map(str, config.scales)),
            device=device,
            repeats=5,
            warmup=1,
            threads=threads,
            output=Path(results_dir) / "profile.jsonl",
        )


def _detected(
    weights: list[Path], name: str | None, scales: str | None
) -> tuple[list[str], dict[tuple[str, int], Path], str | None]:
    """--weights with no --models: srbench files by their metadata, any other checkpoint by
    the architecture spandrel detects (registered for this run)."""
    from srbench.checkpoints import detect_checkpoint
    from srbench.weights import index_weights as index_files
    from srbench.weights import read_metadata

    index: dict[tuple[str, int], Path] = {}
    for path in weights:
        if path.is_dir():  # a folder: srbench files only, as with --models
            index.update(index_files([path]))
            continue
        try:
            meta = read_metadata(path)
        except SRBenchError:  # not an srbench file: a third-party checkpoint
            found = detect_checkpoint(path, name=name)
            err_console.print(
                f"[yellow]note:[/] {path}: {found.architecture} x{found.scale} detected by "
                f"spandrel {found.spandrel_version}; stored as {found.name}",
                highlight=False,
            )
            index[(found.name, found.scale)] = found.weights
        else:
            index.update({(meta["model"], s): Path(path) for s in meta["scales"]})
    given = sorted({s for _, s in index})
    return list(dict.fromkeys(m for m, _ in index)), index, scales or ",".join(map(str, given))


def _source(key: str, root: Path, verify: bool):
    """The demo set, a standard benchmark, or a folder of the user's HR images."""
    from srbench.sources import benchmark_source, demo_source
    from srbench.userdata import folder_source, is_folder

    if key == "demo":
        return demo_source()
    if not is_folder(key):
        return benchmark_source(key, root, verify=verify)
    source = folder_source(key)
    err_console.print(
        f"[yellow]note:[/] {key}: ad-hoc benchmark {source.key} ({len(source.names)} images; "
        "your own images, unverified: not a standard benchmark, not comparable with any paper)",
        highlight=False,
    )
    return source


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
        disable=not err_console.is_terminal and not progress_forced(),
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


def _print_and_save_summary(config, sources, run_keys: list[tuple], new_records: list[dict]):
    from srbench.runner import write_summary

    protocol = config.protocol
    summary, path = write_summary(config, sources, run_keys, new_records)
    from srbench.schema import metric_specs

    specs = metric_specs()
    table = Table(title=f"{' / '.join(m.axis_label() for m in specs)} -- protocol {protocol.label}")
    for column in ("model", "scale", "dataset", *(m.header for m in specs), "images"):
        table.add_column(column, justify="right" if column not in ("model", "dataset") else "left")
    for row in summary.sort_values(["model", "scale", "dataset"]).itertuples():
        random = getattr(row, "weights_sha256", "") == "random-init"
        table.add_row(
            row.model + (" (random weights)" if random else ""),
            f"x{row.scale}",
            row.dataset,
            *(m.fmt(getattr(row, m.name)) for m in specs),
            str(row.images),
        )
    console.print(table)
    err_console.print(
        f"{len(new_records)} new per-image results in "
        f"{Path(config.results_dir) / 'records.jsonl'}; summary with provenance in {path}",
        highlight=False,
    )


def _installed(card) -> str:
    """Whether the authors' weights are in the weights cache (checked against the card)."""
    from srbench.errors import WeightsError
    from srbench.registry import ModelRef
    from srbench.weights import resolve_default_weights

    have = []
    for scale in sorted(card.official_weights):
        try:
            resolve_default_weights(ModelRef(card, "official"), scale)
            have.append(scale)
        except WeightsError:
            pass
    if len(have) == len(card.official_weights):
        return "(installed)"
    fetch = f"`srbench weights fetch {card.name}`"
    if not have:
        return f"(not installed: {fetch})"
    return f"(installed: {'/'.join(f'x{s}' for s in have)}; the rest: {fetch})"


@app.command()
def upscale(
    inputs: Annotated[list[Path], typer.Argument(help="LR images or folders of them.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the SR PNGs.")],
    models: Annotated[str, typer.Option(help="One model name (aliases, NAME.official).")] = "drn",
    scale: Annotated[str, typer.Option(help="2, 3 or 4 (or x2 ...).")] = "2",
    weights: Annotated[
        Path | None, typer.Option(help="safetensors file (default: the weights the name selects).")
    ] = None,
    device: Device = "cpu",
    tile: TileOpt = None,
    tile_overlap: TileOverlapOpt = None,
) -> None:
    """Super-resolve your own LR images (no metrics): OUT/<name>_x<scale>.png, RGB, with the
    standard protocol's colour handling."""
    from srbench.userdata import upscale_files

    names = split_list(models)
    scales = int_list(scale, "--scale")
    if len(names) != 1 or len(scales) != 1:
        fail("upscale takes one model and one scale, e.g. --models drn --scale 2")
    done = 0
    for path, out in upscale_files(
        names[0], scales[0], inputs, output, weights=weights, device=device, tile=tile,
        overlap=tile_overlap,
    ):  # fmt: skip
        console.print(f"{path} -> {out}", highlight=False)
        done += 1
    err_console.print(f"{done} image(s) super-resolved x{scales[0]} by {names[0]}", highlight=False)


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
            weights.append(f"{name}.official {scales(card.official_weights)} {_installed(card)}")
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
