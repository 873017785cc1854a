#!/usr/bin/env python
"""How well the verdict's t interval covers on real, skewed per-image differences.

    python tools/interval_coverage.py [--results-dir results] [--sizes 5,14] [--repeats 1000]

The verdict's paired t interval (:func:`srbench.verdict.t_interval`) holds its 95% when the
per-image differences are roughly normal (``tests/test_verdict.py``). Real ones are skewed: a
few images gain or lose much more than the rest. This takes every one-seed cell of the
committed verdicts (``verdict.json``, ``verdict_budget.json``) with at least 50 images as a
population whose mean is known, draws ``--repeats`` subsets of each size without replacement
(a seeded generator: the same numbers every time), and counts how often the t interval of a
subset contains the population's mean -- the coverage a Set5-sized (5) or Set14-sized (14)
benchmark gets from differences shaped like these. Prints, per metric and size, the cells'
median, 10th percentile and lowest coverage and the cell that has it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def populations(results_dir: Path, smallest: int = 50) -> list[tuple[str, str, np.ndarray]]:
    """(cell label, metric, per-image differences) of every one-seed cell with >= ``smallest``
    images in the committed verdicts."""
    out = []
    for name in ("verdict.json", "verdict_budget.json"):
        path = results_dir / name
        if not path.is_file():
            continue
        for row in json.loads(path.read_text()):
            if row["diff"].get("seeds", 1) != 1 or len(row["per_image"]) < smallest:
                continue
            rung = f" {row['budget'] // 1000}k" if row.get("budget") else ""
            label = f"{row['a']} - {row['b']} {row['dataset']} x{row['scale']}{rung}"
            out.append((label, row["metric"], np.array(list(row["per_image"].values()))))
    return out


def coverage(values: np.ndarray, size: int, repeats: int, seed: int = 0) -> float:
    """Share of ``repeats`` subsets of ``size`` values whose t interval contains the mean."""
    from srbench.verdict import t_interval

    rng = np.random.default_rng(seed)
    truth = float(values.mean())
    hits = 0
    for _ in range(repeats):
        got = t_interval(rng.choice(values, size=size, replace=False))
        hits += got.low <= truth <= got.high
    return hits / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--sizes", default="5,14")
    parser.add_argument("--repeats", type=int, default=1000)
    args = parser.parse_args()
    cells = populations(args.results_dir)
    if not cells:
        raise SystemExit(f"{args.results_dir}: no verdict cell with 50 or more images")
    for metric in sorted({m for _, m, _ in cells}):
        mine = [(label, v) for label, m, v in cells if m == metric]
        for size in (int(s) for s in args.sizes.split(",")):
            got = sorted((coverage(v, size, args.repeats), label) for label, v in mine)
            values = np.array([c for c, _ in got])
            print(
                f"{metric}, subsets of {size} images, {len(got)} cells, {args.repeats} subsets "
                f"each: median {np.median(values):.3f}, 10th percentile "
                f"{np.percentile(values, 10):.3f}, lowest {got[0][0]:.3f} ({got[0][1]})"
            )


if __name__ == "__main__":
    main()
