"""Body of ``srbench profile``: parameters, MACs, latency and peak memory of registered models.

:func:`profile_command` takes plain Python values (comma-separated strings or lists, ints,
paths), so the typer app only has to forward its options::

    srbench profile --models srcnn,edsr_baseline --scales 2,4 --sizes 720p,256 --device cpu \
        --precision fp32,bf16 --repeats 10 --warmup 2 --output results/profile.jsonl

It validates every combination before measuring anything (a bad size or precision raises
:class:`srbench.errors.ProfilingError` with a one-line message), appends one JSON line per
(model, scale, size, precision) to ``output`` as each model finishes, and prints a rich table.
How each number is made: ``docs/efficiency.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from srbench.errors import ProfilingError
from srbench.files import writable_target
from srbench.profiling import (
    DEFAULT_SIZES,
    lr_shape,
    parse_size,
    profile_model,
    resolve_device,
    resolve_precision,
)
from srbench.registry import get_card, list_models
from srbench.results import append_jsonl

DEFAULT_OUTPUT = Path("results/profile.jsonl")

__all__ = ["DEFAULT_OUTPUT", "append_records", "profile_command", "profile_table"]


def _items(values: str | Sequence[Any] | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = values.split(",")
    return [str(v).strip() for v in values if str(v).strip()]


def _models(spec: str | Sequence[str]) -> list[str]:
    names: list[str] = []
    for item in _items(spec):
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


def _scales(spec: str | Sequence[int | str]) -> list[int]:
    scales: list[int] = []
    for item in _items(spec):
        try:
            value = int(item.lower().removeprefix("x"))
        except ValueError:
            raise ProfilingError(f"scale {item!r} is not an integer (e.g. 2,3,4)") from None
        if value < 1:
            raise ProfilingError(f"scale must be positive, got {item!r}")
        if value not in scales:
            scales.append(value)
    if not scales:
        raise ProfilingError("no scales given (e.g. --scales 2,3,4)")
    return scales


def append_records(path: Path | str, records: Sequence[dict[str, Any]]) -> None:
    """Append records as JSON lines, with the result store's locking and torn-line sealing."""
    append_jsonl(path, records)


def _g(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e9:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def profile_table(records: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    """The summary table for profile records (GMAC = 1e9 multiply-accumulates; times in ms)."""
    table = Table(
        title=title or "srbench profile: batch 1, GMAC = 1e9 multiply-accumulates, times in ms",
        caption="net = network MACs (the literature number); bic = bicubic pre-upsampling matmuls; "
        "peak MiB = CUDA peak allocated on a GPU, the process's peak RSS (VmHWM) on the CPU",
    )
    for name, justify in (
        ("model", "left"), ("x", "right"), ("LR -> HR", "left"), ("params", "right"),
        ("frozen", "right"), ("net GMAC", "right"), ("bic GMAC", "right"), ("precision", "left"),
        ("median", "right"), ("IQR", "right"), ("min", "right"), ("n", "right"),
        ("peak MiB", "right"),
    ):  # fmt: skip
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


def profile_command(
    models: str | Sequence[str] = "all",
    scales: str | Sequence[int | str] = "2,3,4",
    sizes: str | Sequence[str] = ",".join(DEFAULT_SIZES),
    device: str = "cpu",
    precision: str | Sequence[str] = "fp32",
    repeats: int = 10,
    warmup: int = 2,
    budget_s: float | None = None,
    output: Path | str | None = DEFAULT_OUTPUT,
    *,
    threads: int | None = None,
    cudnn_benchmark: bool = False,
    latency: bool = True,
    console: Console | None = None,
    err_console: Console | None = None,
) -> list[dict[str, Any]]:
    """Profile models x scales x sizes x precisions; print a table, append JSON lines, return them.

    ``models``: names, shell wildcards or ``all``; ``scales``: e.g. ``"2,3,4"`` (a scale a model
    does not support is skipped with a note); ``sizes``: ``720p`` (1280x720 HR output), ``256``
    (256x256 LR input), ``WxH``/``lr:WxH`` (LR) or ``hr:WxH`` (HR); ``precision``: fp32, tf32,
    fp16, bf16; ``budget_s``: stop timing a configuration after this many seconds of timed passes;
    ``output``: JSON-lines file appended to (``None``: do not store); ``latency=False`` counts
    parameters and MACs only.
    """
    console = console or Console()
    err_console = err_console or Console(stderr=True)
    if output is not None:
        writable_target(output)  # refused before profiling, not after the first model
    model_names = _models(models)
    scale_list = _scales(scales)
    size_specs = [parse_size(s) for s in _items(sizes)]
    if not size_specs:
        raise ProfilingError("no sizes given (e.g. --sizes 720p,256)")
    precisions = [p.lower() for p in _items(precision)]
    if not precisions:
        raise ProfilingError("no precision given (e.g. --precision fp32)")
    dev = resolve_device(device)
    for p in precisions:
        resolve_precision(p, dev)
    if latency and (repeats < 1 or warmup < 0):
        raise ProfilingError(f"need --repeats >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    if budget_s is not None and not budget_s > 0:
        raise ProfilingError(f"--budget-s must be positive, got {budget_s}")
    if threads is not None and threads < 1:
        raise ProfilingError(f"--threads must be >= 1, got {threads}")

    jobs: list[tuple[str, int]] = []
    for name in model_names:
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
    if dev.type == "cuda" and latency:
        import torch

        if not torch.cuda.is_available():
            err_console.print(
                "[yellow]note:[/] no CUDA device on this machine: parameters and MACs are counted, "
                "GPU latency and memory are recorded as 'not measured'",
                highlight=False,
            )

    records: list[dict[str, Any]] = []
    with err_console.status("") as status:
        for i, (name, scale) in enumerate(jobs, 1):
            status.update(f"[{i}/{len(jobs)}] profiling {name} x{scale} on {dev} ...")
            batch = profile_model(
                name,
                scale,
                device=dev,
                sizes=size_specs,
                precisions=precisions,
                repeats=repeats,
                warmup=warmup,
                budget_s=budget_s,
                threads=threads,
                cudnn_benchmark=cudnn_benchmark,
                measure=latency,
            )
            if output is not None:
                append_records(output, batch)
            records += batch

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
    if output is not None:
        err_console.print(f"{len(records)} records appended to {output}", highlight=False)
    return records


def _size_notes(records: Sequence[dict[str, Any]]) -> str:
    notes: list[str] = []
    for r in records:
        note = f"{r['size']} x{r['scale']} = {r['size_description']}"
        if note not in notes:
            notes.append(note)
    return "; ".join(notes)
