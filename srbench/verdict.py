"""Paired comparisons of two models on the same images: the DRN verdict's arithmetic.

For a pair (A, B), a dataset, a scale and a protocol, the per-image records of both are matched by
image (name and pixel fingerprint); the per-image differences A - B of each metric give

* the mean difference and its 95% **paired bootstrap** confidence interval (percentile method,
  10,000 resamples of the images, seeded): what the CI covers is the sampling of *images* -- not
  training noise: every zoo model is one training run with one seed;
* wins / ties / losses over the images, a tie being a difference within the metric's tolerance
  (:data:`srbench.schema.METRICS`: 0.01 dB PSNR, 0.0002 SSIM).

Everything is computed from the store's per-image records; nothing is re-run here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from srbench.data import benchmark_order
from srbench.schema import METRICS, MetricSpec

# The claims srbench checks: DRN at IDN's and at EDSR-baseline's size, and the ablation.
VERDICT_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("drn_s", "idn", "DRN-S vs IDN (both about 0.55 M parameters)"),
    ("drn_m", "edsr_baseline", "DRN-M vs EDSR-baseline (both about 1.4 M parameters)"),
    ("drn_s", "drn_s_nodistill", "ablation: DRN-S vs DRN-S without the distilling branch"),
    ("drn_s", "drn_s_plain", "ablation: DRN-S vs parameter-matched plain residual blocks"),
)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def paired_bootstrap(
    diffs: Sequence[float] | np.ndarray,
    *,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean of ``diffs`` and its percentile-bootstrap interval (images resampled with
    replacement; the same seed gives the same interval)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        raise ValueError("no paired images")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(resamples, d.size))
    means = d[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(d.mean()), float(low), float(high))


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    dataset: str
    scale: int
    protocol: str
    images: int
    metric: str
    mean_a: float
    mean_b: float
    diff: Interval
    wins: int
    ties: int
    losses: int
    per_image: dict[str, float]  # image -> A - B

    def as_dict(self) -> dict:
        out = asdict(self)
        out["diff"] = asdict(self.diff)
        return out


def compare(
    records: Iterable[dict],
    a: str,
    b: str,
    dataset: str,
    scale: int,
    protocol: str,
    metric: MetricSpec,
    *,
    seed: int = 0,
) -> PairResult | None:
    """A - B on the images both have (matched by name and pixel fingerprint); None if none."""

    def per_image(model: str) -> dict[tuple[str, str], float]:
        return {
            (r["image"], str(r.get("hr_sha256"))): float(r[metric.name])
            for r in records
            if r["model"] == model and r["dataset"] == dataset and int(r["scale"]) == scale
            and r["protocol"] == protocol and not r.get("ensemble")
            and r.get("standard_benchmark", True)
        }  # fmt: skip

    records = list(records)
    va, vb = per_image(a), per_image(b)
    common = sorted(set(va) & set(vb))
    if not common:
        return None
    diffs = np.array([va[k] - vb[k] for k in common])
    tol = metric.gate_tolerance
    return PairResult(
        a=a,
        b=b,
        dataset=dataset,
        scale=scale,
        protocol=protocol,
        images=len(common),
        metric=metric.name,
        mean_a=float(np.mean([va[k] for k in common])),
        mean_b=float(np.mean([vb[k] for k in common])),
        diff=paired_bootstrap(diffs, seed=seed),
        wins=int((diffs > tol).sum()),
        ties=int((np.abs(diffs) <= tol).sum()),
        losses=int((diffs < -tol).sum()),
        per_image={k[0]: float(v) for k, v in zip(common, diffs, strict=True)},
    )


def verdict(
    records: Sequence[dict],
    *,
    pairs: Sequence[tuple[str, str, str]] = VERDICT_PAIRS,
    protocol: str = "standard",
    seed: int = 0,
) -> list[PairResult]:
    """Every (pair, dataset, scale, metric) the store has both models' images for."""
    out = []
    keys = sorted(
        {(r["dataset"], int(r["scale"])) for r in records if r["protocol"] == protocol},
        key=lambda k: (benchmark_order(k[0]), k[1]),
    )
    for a, b, _ in pairs:
        for dataset, scale in keys:
            for spec in METRICS:
                result = compare(records, a, b, dataset, scale, protocol, spec, seed=seed)
                if result is not None:
                    out.append(result)
    return out


def sentence(results: Sequence[PairResult], a: str, b: str) -> str:
    """One plain sentence on A vs B's PSNR: per scale, the span of the mean differences over
    the datasets and in how many cells the 95% interval lies above or below zero; then the
    totals over every dataset and scale measured."""
    rows = [r for r in results if r.a == a and r.b == b and r.metric == "psnr_db"]
    if not rows:
        return f"{a} vs {b}: not measured yet."

    def counts(cells: Sequence[PairResult]) -> tuple[int, int, int]:
        better = sum(r.diff.low > 0 for r in cells)
        worse = sum(r.diff.high < 0 for r in cells)
        return better, worse, len(cells) - better - worse

    def span(cells: Sequence[PairResult]) -> str:
        low, high = min(r.diff.mean for r in cells), max(r.diff.mean for r in cells)
        return f"{low:+.2f} dB" if low == high else f"{low:+.2f} to {high:+.2f} dB"

    parts = []
    for scale in sorted({r.scale for r in rows}):
        cells = [r for r in rows if r.scale == scale]
        better, worse, unclear = counts(cells)
        parts.append(
            f"x{scale} {span(cells)} (better in {better}, worse in {worse}, "
            f"unclear in {unclear} of {len(cells)} datasets)"
        )
    better, worse, unclear = counts(rows)
    return (
        f"{a} vs {b} at equal training, mean PSNR difference: {'; '.join(parts)}; over all "
        f"{len(rows)} dataset/scale cells {a} is better with 95% confidence in {better}, worse "
        f"in {worse}, and the interval includes zero in {unclear}."
    )
