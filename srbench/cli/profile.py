"""`srbench profile`: parameters, MACs, latency and peak memory of registered models.

::

    srbench profile --models srcnn,edsr_baseline --scales 2,4 --sizes 720p,256 --device cpu \
        --precision fp32,bf16 --repeats 10 --warmup 2 --output results/profile.jsonl

Every combination is validated before anything is measured (a bad size or precision is one
line, exit code 2); one JSON line per (model, scale, size, precision) is appended to ``--output``
as each model finishes, then a table is printed. ``srbench run --profile`` calls :func:`profile`
with keywords. How each number is made: ``docs/efficiency.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import JustifyMethod
from rich.table import Table

from srbench.cli.common import Device, app, console, err_console, store
from srbench.errors import ProfilingError
from srbench.parsing import int_list, split_list

if TYPE_CHECKING:
    import torch

    from srbench.profiling import SizeSpec

__all__ = ["profile", "profile_table"]


@app.command()
def profile(
    models: Annotated[str, typer.Option(help="Names or wildcards, or 'all'.")] = "all",
    scales: Annotated[str, typer.Option(help="Comma-separated scales.")] = "2,3,4",
    sizes: Annotated[
        str, typer.Option(help="720p (1280x720 HR output), 256 (256x256 LR), WxH, hr:WxH.")
    ] = "720p,256",
    device: Device = "cpu",
    precision: Annotated[
        str, typer.Option(help="fp32, tf32, fp16, bf16 (comma-separated).")
    ] = "fp32",
    repeats: Annotated[int, typer.Option(help="Timed repeats (median, IQR, min).")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up passes.")] = 2,
    budget_s: Annotated[
        float | None, typer.Option(help="Stop timing after this many seconds.")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads (recorded). Default: as `srbench run` picks them, one per idle core."
        ),
    ] = None,
    cudnn_benchmark: Annotated[bool, typer.Option("--cudnn-benchmark")] = False,
    no_latency: Annotated[
        bool, typer.Option("--no-latency", help="Parameters and MACs only.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            help="JSON-lines file the records are appended to (default: profile.jsonl in your "
            "result store)."
        ),
    ] = None,
) -> list[dict[str, Any]]:
    """Parameters, MACs/FLOPs, latency and peak memory, labelled with units and environment."""
    from srbench.files import writable_target
    from srbench.results import PROFILE_FILE, append_jsonl

    path = writable_target(output or store(None) / PROFILE_FILE)  # refused before profiling
    jobs, size_list, precisions, dev = _jobs(models, scales, sizes, precision, device)
    _check_counts(repeats, warmup, budget_s, threads, latency=not no_latency)
    if dev.type == "cuda" and not no_latency:
        import torch

        if not torch.cuda.is_available():
            err_console.print(
                "[yellow]note:[/] no CUDA device on this machine: parameters and MACs are counted, "
                "GPU latency and memory are recorded as 'not measured'",
                highlight=False,
            )
    from srbench.profiling import profile_model

    records: list[dict[str, Any]] = []
    with err_console.status("") as status:
        for i, (name, scale) in enumerate(jobs, 1):
            status.update(f"[{i}/{len(jobs)}] profiling {name} x{scale} on {dev} ...")
            batch = profile_model(
                name,
                scale,
                device=dev,
                sizes=size_list,
                precisions=precisions,
                repeats=repeats,
                warmup=warmup,
                budget_s=budget_s,
                threads=threads,
                cudnn_benchmark=cudnn_benchmark,
                measure=not no_latency,
            )
            append_jsonl(path, batch)  # per model: an interrupted sweep keeps what it measured
            records += batch
    _print_summary(records, dev)
    err_console.print(f"{len(records)} records appended to {path}", highlight=False)
    return records


def _model_names(spec: str) -> list[str]:
    from srbench.registry import get_card, list_models

    names: list[str] = []
    for item in split_list(spec):
        if item.lower() == "all":
            found = list_models()
        elif any(ch in item for ch in "*?["):
            found = list_models(item)
            if not found:
                raise ProfilingError(f"no registered model matches {item!r} (`srbench models`)")
        else:
            found = [get_card(item).name]  # unknown names raise ModelNotFoundError with hints
        names += [n for n in found if n not in names]
    if not names:
        raise ProfilingError("no models given (use --models NAME[,NAME...] or all)")
    return names


def _scale_list(spec: str) -> list[int]:
    scales = list(dict.fromkeys(int_list(spec, "--scales")))
    if not scales:
        raise ProfilingError("no scales given (e.g. --scales 2,3,4)")
    if min(scales) < 1:
        raise ProfilingError(f"--scales {spec!r}: scales must be positive")
    return scales


def _jobs(
    models: str, scales: str, sizes: str, precision: str, device: str
) -> tuple[list[tuple[str, int]], list[SizeSpec], list[str], torch.device]:
    """(model, scale) pairs to profile, the sizes, precisions and device; every size and
    precision checked against every model first (nothing is measured before a bad one)."""
    from srbench.devices import requested_device
    from srbench.precision import inference_precision
    from srbench.profiling import lr_shape, parse_size
    from srbench.registry import get_card

    names, scale_list = _model_names(models), _scale_list(scales)
    size_specs = [parse_size(s) for s in split_list(sizes)]
    if not size_specs:
        raise ProfilingError("no sizes given (e.g. --sizes 720p,256)")
    precisions = [p.lower() for p in split_list(precision)]
    if not precisions:
        raise ProfilingError("no precision given (e.g. --precision fp32)")
    dev = requested_device(device)
    for p in precisions:
        inference_precision(p, dev)
    jobs: list[tuple[str, int]] = []
    for name in names:
        card = get_card(name)
        for scale in scale_list:
            if scale not in card.scales:
                supported = ", ".join(f"x{s}" for s in card.scales)
                err_console.print(
                    f"[yellow]note:[/] {name} does not support x{scale} (supported: {supported}); "
                    "skipped",
                    highlight=False,
                )
                continue
            for spec in size_specs:
                lr_shape(card, scale, spec)  # raises ProfilingError before anything is measured
            jobs.append((name, scale))
    if not jobs:
        raise ProfilingError("no model supports any of the requested scales")
    return jobs, size_specs, precisions, dev


def _check_counts(
    repeats: int, warmup: int, budget_s: float | None, threads: int | None, *, latency: bool
) -> None:
    if latency and (repeats < 1 or warmup < 0):
        raise ProfilingError(f"need --repeats >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    if budget_s is not None and not budget_s > 0:
        raise ProfilingError(f"--budget-s must be positive, got {budget_s}")
    if threads is not None and threads < 1:
        raise ProfilingError(f"--threads must be >= 1, got {threads}")


def _g(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e9:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("model", "left"), ("x", "right"), ("LR -> HR", "left"), ("params", "right"),
    ("frozen", "right"), ("net GMAC", "right"), ("bic GMAC", "right"), ("precision", "left"),
    ("median", "right"), ("IQR", "right"), ("min", "right"), ("n", "right"), ("peak MiB", "right"),
)  # fmt: skip


def profile_table(records: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    """The summary table for profile records (GMAC = 1e9 multiply-accumulates; times in ms)."""
    table = Table(
        title=title or "srbench profile: batch 1, GMAC = 1e9 multiply-accumulates, times in ms",
        caption="net = network MACs (the literature number); bic = bicubic pre-upsampling matmuls; "
        "peak MiB = CUDA peak allocated on a GPU, the process's peak RSS (VmHWM) on the CPU",
    )
    for name, justify in _COLUMNS:
        table.add_column(name, justify=justify, no_wrap=name in ("model", "LR -> HR"))
    for r in records:
        lat = r.get("latency", {})
        measured = lat.get("status") == "measured"
        absent = "-" if lat.get("reason") == "not requested" else "not measured"
        memory = r.get("peak_memory") or {}
        peak = memory.get("peak_allocated_bytes", memory.get("peak_rss_bytes"))
        table.add_row(
            r["model"],
            str(r["scale"]),
            f"{r['lr_width']}x{r['lr_height']} -> {r['hr_width']}x{r['hr_height']}",
            f"{r['trainable_params']:,}",
            f"{r['frozen_values']:,}",
            _g(r["network_macs"]),
            _g(r["bicubic_macs"]),
            r["precision_label"],
            _ms(lat.get("median_ms")) if measured else absent,
            _ms(lat.get("iqr_ms")) if measured else "-",
            _ms(lat.get("min_ms")) if measured else "-",
            str(lat.get("repeats", "-")) if measured else "-",
            f"{peak / 2**20:.0f}" if peak is not None else absent,
        )
    return table


def _print_summary(records: list[dict[str, Any]], dev: torch.device) -> None:
    """The table, the units and conventions under it, and what was not counted."""
    console.print(profile_table(records))
    env = records[0]["env"]
    where = env.get("gpu_name") or env.get("cpu_model")
    console.print(
        f"MACs = multiply-accumulates counted by fvcore (FLOPs = 2 x MACs); network MACs exclude "
        f"the bicubic pre-upsampling matmuls, shown apart. Sizes: {_size_notes(records)}. "
        f"Device: {dev} ({where}); torch {env.get('torch')}; {records[0]['threads']} CPU "
        f"threads. Method: docs/efficiency.md.",
        highlight=False,
        soft_wrap=True,
    )
    uncounted = sorted({op for r in records for op in r["macs"]["uncounted_ops"]})
    if uncounted:
        err_console.print(
            f"[yellow]warning:[/] ops with no MAC handle were not counted: {', '.join(uncounted)}",
            highlight=False,
        )
    fallbacks = sorted(
        {f"{r['model']} x{r['scale']}" for r in records if "refused" in r["macs"]["method"]}
    )
    if fallbacks:
        err_console.print(
            f"[yellow]note:[/] MACs traced at full size (extrapolation not verified): "
            f"{', '.join(fallbacks)}",
            highlight=False,
        )


def _size_notes(records: Sequence[dict[str, Any]]) -> str:
    notes: list[str] = []
    for r in records:
        note = f"{r['size']} x{r['scale']} = {r['size_description']}"
        if note not in notes:
            notes.append(note)
    return "; ".join(notes)
