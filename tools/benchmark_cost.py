#!/usr/bin/env python
"""What the stored benchmark cost to compute: the sum of its per-image forward times.

    python tools/benchmark_cost.py [--results-dir results] [--since 2026-11-30]

Reads the store only (``records.jsonl``: one record per key, the last written). Each record's
``wall_ms`` is the wall time of its one forward pass, times ``torch_threads`` gives core-seconds;
summed per protocol and model, and in all. Runs made at ``nice 19`` beside other work count
their waiting time too, so the totals are an upper bound of the CPU time. Records without
``wall_ms`` (written before it was stored) are counted and named, never guessed.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path


def cost_rows(records: Iterable[dict], since: str = "") -> tuple[list[dict], dict]:
    """Per (protocol, model): images, core-hours, and the CPUs; plus the totals."""
    groups: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"images": 0, "core_s": 0.0, "untimed": 0, "devices": set()}
    )
    for record in records:
        if since and str(record.get("time_utc", "")) < since:
            continue
        group = groups[(record["protocol"], record["model"])]
        group["images"] += 1
        wall_ms = record.get("wall_ms")
        if wall_ms is None:
            group["untimed"] += 1
            continue
        group["core_s"] += float(wall_ms) / 1e3 * int(record.get("torch_threads") or 1)
        group["devices"].add(str(record.get("device", "?")))
    rows = [
        {
            "protocol": p,
            "model": m,
            **g,
            "core_h": g["core_s"] / 3600,
            "devices": sorted(g["devices"]),
        }
        for (p, m), g in sorted(groups.items())
    ]
    total = {
        "images": sum(r["images"] for r in rows),
        "untimed": sum(r["untimed"] for r in rows),
        "core_h": sum(r["core_h"] for r in rows),
    }
    return rows, total


def main(argv: Sequence[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from srbench.results import ResultStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--since", default="", help="only records written at or after (UTC ISO)")
    args = parser.parse_args(argv)
    rows, total = cost_rows(ResultStore(args.results_dir).latest_records(), args.since)
    print("| protocol | model | images | untimed | core-hours (upper bound) | CPUs |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['protocol']} | {r['model']} | {r['images']} | {r['untimed']} | "
            f"{r['core_h']:.2f} | {', '.join(r['devices'])} |"
        )
    print(f"| all | | {total['images']} | {total['untimed']} | {total['core_h']:.2f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
