#!/usr/bin/env python
"""Regenerate the README's results assets from the committed result store -- never by hand.

    python tools/make_readme_assets.py [--results-dir results] [--output-dir reports]
        [--protocol standard] [--dataset set5] [--scale 4] [--cost params]
        [--update-readme README.md]

Writes ``reports/readme_pareto.png`` (+ ``.svg``): the headline metric (PSNR) against the cost on
one dataset and scale, and ``reports/readme_results.md``: a table of every metric
(:data:`srbench.schema.METRICS`) per model, scale and benchmark with parameters and MACs, for one
protocol. With ``--update-readme`` the table (and the plot link)
replace whatever stands between ``<!-- srbench:results:begin -->`` and
``<!-- srbench:results:end -->`` in that file; nothing else in it is touched.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BEGIN = "<!-- srbench:results:begin -->"
END = "<!-- srbench:results:end -->"


def _md(text: Any) -> str:
    """Markdown-table-safe text (pipes, HTML and newlines neutralised)."""
    out = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def metrics_text() -> str:
    """What a table cell holds: ``PSNR (dB) / SSIM on Y`` (each metric on the view it needs)."""
    from srbench.schema import metric_specs

    specs = metric_specs()
    if len({m.needs for m in specs}) == 1:
        return " / ".join(m.axis_label() for m in specs) + f" on {specs[0].needs.upper()}"
    return " / ".join(f"{m.axis_label()} on {m.needs.upper()}" for m in specs)


def markdown_table(summary, protocol: str, protocol_hash: str) -> str:
    """Every metric per model (rows) and benchmark (columns), one block per scale."""
    from srbench.kinds import KINDS, training_budget, weights_kind
    from srbench.pareto import expected_images
    from srbench.report import fmt_int, fmt_macs, fmt_metric, ordered_datasets
    from srbench.schema import metric_specs

    def weights(row) -> str:
        # Whose weights, and for srbench's own training its budget: never read as a paper's.
        budget = training_budget(row["model"], int(row["scale"]), str(row["weights_sha256"]))
        return budget or KINDS[weights_kind(row["model"], str(row["weights_sha256"]))][0]

    def cell(row) -> str:
        # A mean over part of a benchmark is not its number (a run still in progress): say so.
        expected = expected_images(row.dataset)
        if expected is not None and int(row.images) < expected:
            return f"({int(row.images)}/{expected} images)"
        return " / ".join(fmt_metric(m, getattr(row, m.name)) for m in metric_specs())

    lines = [
        f"Protocol `{protocol}@{protocol_hash}` (see docs/protocols.md); {metrics_text()}, "
        "mean over each benchmark's images; MACs for a 1280x720 output.",
        "",
    ]
    part = summary[(summary["protocol"] == protocol) & (summary["protocol_hash"] == protocol_hash)]
    for scale in sorted(int(s) for s in part["scale"].unique()):
        group = part[part["scale"] == scale]
        datasets = ordered_datasets(list(group["dataset"].unique()))
        lines.append(f"**x{scale}**")
        lines.append("")
        lines.append("| model | weights | " + " | ".join(datasets) + " | params | MACs |")
        lines.append("|---|---|" + "---:|" * (len(datasets) + 2))
        for label, rows in group.groupby("label", sort=True):
            by = {r.dataset: r for r in rows.itertuples()}
            cells = [cell(by[d]) if d in by else "-" for d in datasets]
            first = rows.iloc[0]
            lines.append(
                f"| {_md(label)} | {_md(weights(first))} | "
                + " | ".join(cells)
                + f" | {fmt_int(first['params'])} | {fmt_macs(first['macs'])} |"
            )
        lines.append("")
    return "\n".join(lines).replace("–", "-").replace("−", "-")


def verdict_lines(results_dir: str | Path, protocol: str, out: Path = Path("reports")) -> str:
    """The DRN verdict in one sentence per claim (``srbench verdict``), from the store."""
    from srbench.results import ResultStore
    from srbench.verdict import VERDICT_PAIRS, sentence, unequal_training, verdict

    records = [r for r in ResultStore(results_dir).shown_records() if not r.get("ablation")]
    rows = verdict(records, protocol=protocol)
    unequal = unequal_training(records, protocol=protocol)
    lines = [
        f"**The DRN verdict** (`srbench verdict`, {protocol} protocol; per scale the range of "
        "the per-dataset mean differences -- a range of means, not an interval -- and in how "
        "many datasets the 95% paired t interval over the images lies above zero, below it or "
        "across it; one training seed per model; docs/zoo.md for the budget):",
        "",
    ]
    lines += [f"- {_md(sentence(rows, a, b, unequal))}" for a, b, _ in VERDICT_PAIRS]
    return "\n".join(lines) + "\n" + budget_lines(records, protocol, out)


def budget_lines(records: list[dict], protocol: str, out: Path = Path("reports")) -> str:
    """The verdict per training budget (the ladder), one sentence per pair, and its figures in
    ``out`` (readme_budget.png for x2; readme_budget_x<s>.png for each other scale where a pair
    has two rungs or more), linked as reports/... from the README -- empty while the store has
    no ladder checkpoints."""
    from srbench.figures import budget_plot
    from srbench.verdict import VERDICT_PAIRS, budget_sentence, budget_verdict

    rows = budget_verdict(records, protocol=protocol)
    if not rows:
        return ""
    titles = {(a, b): title for a, b, title in VERDICT_PAIRS}
    rungs: dict[tuple[int, str, str], set[int]] = {}
    for r in rows:
        if r.budget:
            rungs.setdefault((r.scale, r.a, r.b), set()).add(r.budget)
    scales = sorted({s for (s, _, _), n in rungs.items() if s == 2 or len(n) > 1})
    figures = []
    for scale in scales:
        name = "readme_budget.png" if scale == 2 else f"readme_budget_x{scale}.png"
        if budget_plot(rows, out / name, titles=titles, scale=scale):
            figures.append(f"![Verdict against training budget, x{scale}](reports/{name})")
    lines = [
        "",
        "**The verdict over training budgets** (the budget ladder, docs/zoo.md; `srbench "
        f"verdict`, {protocol} protocol; 95% t intervals over the images, and over the training "
        "seeds where a rung has several):",
        "",
        *[line for figure in figures for line in (figure, "")],
    ]
    lines += [f"- {_md(budget_sentence(rows, a, b))}" for a, b, _ in VERDICT_PAIRS]
    return "\n".join(lines) + "\n"


def readme_assets(
    results_dir: str | Path = "results",
    output_dir: str | Path = "reports",
    *,
    protocol: str | None = None,
    dataset: str | None = None,
    scale: int | None = None,
    quality: str | None = None,
    cost: str = "params",
    cost_fn=None,
) -> dict[str, Path]:
    """Write the plot and the table; returns ``{"png", "svg", "markdown"}`` paths."""
    from srbench.data import BENCHMARK_KEYS
    from srbench.errors import SRBenchError
    from srbench.pareto import load_profiles, pareto_plot, summary_table
    from srbench.results import load_results

    frame = load_results(results_dir)
    if frame.empty:
        raise SRBenchError(f"{results_dir}: the result store is empty; run `srbench run` first")
    if "ablation" in frame.columns:
        frame = frame[frame["ablation"].isna()]
    frame = frame[frame["weights_sha256"] != "random-init"]  # meaningless numbers stay out
    # Budget-tagged checkpoints (drn_s.zoo4k, ...; drn_s.zoo1k_cosine, the zoo file the ladder
    # replaced) have their own section (budget_lines): the table keeps one row per model and
    # weights kind.
    from srbench.registry import is_budget_tag

    frame = frame[[not is_budget_tag(m.partition(".")[2]) for m in frame["model"]]]
    if frame.empty:
        raise SRBenchError(f"{results_dir}: no results with real weights to show")
    # Costs from the store's profile records (`srbench run` counts them), never re-counted here.
    summary = summary_table(frame, load_profiles(results_dir), cost_fn=cost_fn)
    protocols = sorted(
        {(p, h) for p, h in zip(summary["protocol"], summary["protocol_hash"], strict=True)}
    )
    if protocol is None:
        protocol = "standard" if any(p == "standard" for p, _ in protocols) else protocols[0][0]
    hashes = [h for p, h in protocols if p == protocol]
    if not hashes:
        raise SRBenchError(f"no results under protocol {protocol!r}")
    if len(hashes) > 1:
        raise SRBenchError(f"protocol {protocol!r} has results under several hashes: {hashes}")
    protocol_hash = hashes[0]
    part = summary[(summary["protocol"] == protocol) & (summary["protocol_hash"] == protocol_hash)]
    if dataset is None:
        present = set(part["dataset"])
        dataset = next((k for k in BENCHMARK_KEYS if k in present), sorted(present)[0])
    if scale is None:
        scale = max(int(s) for s in part[part["dataset"] == dataset]["scale"])

    from srbench.schema import headline

    out = Path(output_dir)
    paths = pareto_plot(
        part, dataset, scale, quality or headline().name, cost, out,
        protocol=protocol, protocol_hash=protocol_hash, stem="readme_pareto",
    )  # fmt: skip
    from srbench.files import atomic_write

    markdown = out / "readme_results.md"
    text = (
        "<!-- generated by tools/make_readme_assets.py from the result store; do not edit -->\n"
        + markdown_table(summary, protocol, protocol_hash)
        + "\n"
        + verdict_lines(results_dir, protocol, out)
    )
    atomic_write(markdown, text)
    return {**paths, "markdown": markdown}


def update_readme(readme: Path, markdown: Path, png: Path) -> None:
    from srbench.files import atomic_write

    text = readme.read_text()
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"error: {readme} has no {BEGIN} ... {END} block to replace")
    rel_png = Path(png).resolve().relative_to(readme.resolve().parent)
    body = f"\n![Pareto front]({rel_png.as_posix()})\n\n{markdown.read_text().strip()}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write(readme, head + BEGIN + body + END + tail)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--output-dir", default="reports")
    parser.add_argument("--protocol", default=None, help="default: standard if present")
    parser.add_argument("--dataset", default=None, help="default: the first benchmark present")
    parser.add_argument("--scale", type=int, default=None, help="default: the largest present")
    from srbench.schema import headline, metric_names

    parser.add_argument("--quality", default=headline().name, choices=metric_names())
    parser.add_argument(
        "--cost", default="params", choices=("params", "macs", "network_macs", "latency_ms")
    )
    parser.add_argument("--update-readme", type=Path, default=None, metavar="README.md")
    args = parser.parse_args(argv)

    from srbench.errors import SRBenchError

    try:
        paths = readme_assets(
            args.results_dir, args.output_dir, protocol=args.protocol, dataset=args.dataset,
            scale=args.scale, quality=args.quality, cost=args.cost,
        )  # fmt: skip
    except SRBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"wrote {path} ({kind})")
    if args.update_readme:
        update_readme(args.update_readme, paths["markdown"], paths["png"])
        print(f"updated {args.update_readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
