#!/usr/bin/env python
"""Which cells of the full benchmark the store holds, and which it still lacks.

    python tools/benchmark_coverage.py [--results-dir results] [--missing]

The plan comes from the registry and the protocols, not from a list typed here: under every
protocol, bicubic and every model with weights -- srbench's shipped zoo at its shipped scales,
and ``NAME.official`` wherever the authors' weights are installed (``$SRBENCH_WEIGHTS`` or the
cache; others are named as not installed) -- that the protocol accepts (``legacy-y`` is Y-only),
on the five standard benchmarks. A cell counts only records of the weights the name selects today
(the sha256 in the model card) under the protocol as the code defines it (``protocol_hash``); it
is complete when every image of the benchmark is stored. Exit status 1 while a cell is missing.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

# (protocol, model, scale, weights sha256): what one row of the plan runs
PlanRow = tuple[str, str, int, str]


def _installed(ref, scale: int) -> bool:
    from srbench.errors import SRBenchError
    from srbench.weights import resolve_default_weights

    try:
        resolve_default_weights(ref, scale)
    except SRBenchError:
        return False
    return True


def plan(installed: Callable[..., bool] = _installed) -> tuple[list[PlanRow], list[str]]:
    """Every (protocol, model, scale, weights sha256) of the full benchmark, and the names of
    the authors' weights left out because they are not installed here."""
    from srbench.errors import SRBenchError
    from srbench.protocols import PROTOCOLS
    from srbench.registry import list_models, resolve

    rows: list[PlanRow] = []
    absent: set[str] = set()
    for name in list_models(pretrained=True, tags=True):
        ref = resolve(name)
        if ref.card.trainable:
            scales = {s: w.sha256 for s, w in sorted(ref.weights.items())}
        else:  # bicubic: parameter-free, every scale of its card
            scales = dict.fromkeys(ref.card.scales, "none")
        for scale, sha in scales.items():
            if ref.tag and not installed(ref, scale):
                absent.add(f"{name} x{scale}")
                continue
            for protocol in PROTOCOLS.values():
                try:
                    protocol.check_model(ref.card.input_channels)
                except SRBenchError:
                    continue
                rows.append((protocol.id, name, scale, sha))
    return sorted(rows), sorted(absent)


def coverage(records: Iterable[dict], rows: Sequence[PlanRow]) -> list[dict]:
    """Per plan row and benchmark: images stored (of the current weights and protocol hash)."""
    from srbench.data import BENCHMARK_KEYS, get_benchmark
    from srbench.protocols import get_protocol

    stored: Counter[tuple] = Counter()
    for r in records:
        key = (r["protocol"], r["model"], int(r["scale"]), r["weights_sha256"], r["protocol_hash"])
        stored[(*key, r["dataset"])] += 1
    cells = []
    for protocol, model, scale, sha in rows:
        phash = get_protocol(protocol).hash
        for dataset in BENCHMARK_KEYS:
            cells.append(
                {
                    "protocol": protocol,
                    "model": model,
                    "scale": scale,
                    "dataset": dataset,
                    "stored": stored[(protocol, model, scale, sha, phash, dataset)],
                    "expected": get_benchmark(dataset).count,
                }
            )
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from srbench.results import ResultStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--missing", action="store_true", help="list only incomplete cells")
    args = parser.parse_args(argv)
    rows, absent = plan()
    cells = coverage(ResultStore(args.results_dir).shown_records(), rows)
    incomplete = [c for c in cells if c["stored"] < c["expected"]]
    print("| protocol | model | scale | dataset | images stored |")
    print("|---|---|---:|---|---:|")
    for c in incomplete if args.missing else cells:
        print(
            f"| {c['protocol']} | {c['model']} | x{c['scale']} | {c['dataset']} | "
            f"{c['stored']}/{c['expected']} |"
        )
    missing_images = sum(c["expected"] - c["stored"] for c in incomplete)
    print(
        f"{len(cells) - len(incomplete)} of {len(cells)} cells complete; "
        f"{missing_images} images to run"
    )
    if absent:
        print(f"authors' weights not installed here (not planned): {', '.join(absent)}")
    return 1 if incomplete else 0


if __name__ == "__main__":
    raise SystemExit(main())
