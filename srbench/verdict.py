"""Paired comparisons of two models on the same images: the DRN verdict's arithmetic.

For a pair (A, B), a dataset, a scale and a protocol, the per-image records of both are matched by
image (name and pixel fingerprint); the per-image differences A - B of each metric give

* the mean difference and its 95% confidence interval, by :func:`t_interval`: with one training
  run per model the paired **Student t** interval over the images (it covers the sampling of
  images, not training noise, and says so); with S seeds of each model (seed k of A paired with
  seed k of B) the t interval of a two-way random-effects model, images x seeds, with
  Satterthwaite's degrees of freedom (capped where the seed term is a large share), which covers
  both. Chosen for small n: Set5 has 5 images, where the percentile bootstrap the verdict used
  before covers the true mean difference only about 84% of the time at a nominal 95%
  (``tests/test_verdict.py`` measures both on synthetic data with a known answer). The t
  interval assumes roughly normal per-image differences; on real, skewed ones its coverage at
  n = 5 is lower (``tools/interval_coverage.py`` measures it on the committed store). Two seeds
  are too few to estimate training noise: their cells cover it only approximately (about 88%
  at worst in the tests' simulations), and say so;
* wins / ties / losses over the images, a tie being a difference within the metric's tolerance
  (:data:`srbench.schema.METRICS`: 0.01 dB PSNR, 0.0002 SSIM -- numerically equal, not a
  margin of practical equivalence), a win a difference the metric's direction calls better for
  A (higher, or lower where lower is better); with seeds, over the images of the seed-averaged
  differences, so they do not reflect training noise.

A metric a record does not have (written before the metric existed) is not measured there: only
images both models have it for are paired.

"At equal training" is checked, not assumed: the plain-name verdict compares a pair at a scale
only when both were measured with weights of the same recipe and length (the budget tag of their
shipped files, :func:`srbench.kinds.training_tag`: ``zoo16k`` with ``zoo16k``); a scale where
one member ships a longer-trained file than the other is left out and its sentence says so
(:func:`unequal_training`) -- the verdict per budget compares every rung instead.

Everything is computed from the store's per-image records; nothing is re-run here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from srbench.data import benchmark_order
from srbench.errors import SRBenchError
from srbench.schema import (
    MetricSpec,
    field_value,
    headline,
    is_ablation,
    measured,
    metric,
    metric_specs,
    shown_records,
)

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
    method: str
    images: int = 0
    seeds: int = 1
    df: float | None = None  # t intervals: degrees of freedom
    # several seeds: the seed-to-seed SD of the difference, sqrt(max(MS_seed - MS_e, 0) / n)
    seed_sd: float | None = None

    @property
    def covers(self) -> str:
        """What varies in the interval, in words (for tables and figure captions)."""
        df = f", t on {self.df:.1f} df" if self.df else ""
        if self.seeds == 2:
            return f"{self.images} images x 2 training seeds{df} (too few seeds: approximate)"
        if self.seeds > 1:
            return f"{self.images} images x {self.seeds} training seeds{df}"
        return f"{self.images} images; one training seed (training noise not covered)"


def t_interval(diffs: Sequence[float] | np.ndarray, *, level: float = 0.95) -> Interval:
    """Mean of the A - B differences and its t interval.

    ``diffs``: one row per seed pair, one column per image (a 1-D array is one seed). The model
    is d[k, i] = mu + image_i + seed_k + e[k, i], images and seeds random. The variance of the
    grand mean, sigma_image^2 / n + sigma_seed^2 / S + sigma_e^2 / (n S), is estimated from the
    ANOVA mean squares as (MS_image + max(MS_seed - MS_e, 0)) / (n S), with Satterthwaite's
    degrees of freedom; with one seed this is the paired t interval, s / sqrt(n) on n - 1 df.
    Where the seed term counts, the df are capped at (S - 1) / w, w the seed term's share of the
    variance: S - 1 (the seed mean square's own df) where training noise dominates, Satterthwaite's
    df where it is small. Satterthwaite's approximation is optimistic when a term estimated from
    2-3 seeds is a large share; over a grid of 108 three-seed cases (4000 experiments each) the
    lowest coverage is 0.914 without the cap, 0.924 with it (a flat cap at S - 1 gives 0.930,
    but covers up to 0.997 with intervals up to twice as wide where the seed term is small).
    The cap widens intervals, never narrows them.
    """
    from scipy import stats

    d = np.atleast_2d(np.asarray(diffs, dtype=np.float64))
    seeds, n = d.shape
    if n == 0:
        raise ValueError("no paired images")
    mean = float(d.mean())
    if n == 1:
        return Interval(mean, -np.inf, np.inf, "t (one image: no interval)", n, seeds, 0.0)
    image_means, seed_means = d.mean(axis=0), d.mean(axis=1)
    ms_image = seeds * float(np.sum((image_means - mean) ** 2)) / (n - 1)
    parts = [(ms_image, n - 1)]  # (mean square, its degrees of freedom)
    seed_sd = None
    if seeds > 1:
        ms_seed = n * float(np.sum((seed_means - mean) ** 2)) / (seeds - 1)
        resid = d - image_means[None, :] - seed_means[:, None] + mean
        ms_err = float(np.sum(resid**2)) / ((n - 1) * (seeds - 1))
        # a seed term below rounding noise (identical seeds) does not count, nor cap the df
        if ms_seed - ms_err <= 1e-12 * (ms_image + ms_seed):
            ms_seed = ms_err
        seed_sd = float(np.sqrt(max(ms_seed - ms_err, 0.0) / n))
        if ms_seed > ms_err:
            parts += [(ms_seed, seeds - 1), (-ms_err, (n - 1) * (seeds - 1))]
    total = sum(ms for ms, _ in parts)
    variance = total / (n * seeds)
    df = total**2 / sum(ms**2 / k for ms, k in parts) if total > 0 else float(n - 1)
    if len(parts) > 1:  # the seed term counts: at most (S - 1) / its share of the variance
        df = min(df, (seeds - 1) * total / (ms_seed - ms_err))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * np.sqrt(max(variance, 0.0))
    method = "paired t over images" if seeds == 1 else "two-way random-effects t (Satterthwaite)"
    return Interval(mean, mean - half, mean + half, method, n, seeds, float(df), seed_sd)


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
    method = "percentile bootstrap over images"
    return Interval(float(d.mean()), float(low), float(high), method, images=int(d.size))


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
    per_image: dict[str, float]  # image -> A - B (seed-averaged where several seeds)
    budget: int | None = None  # ladder rung (iterations) both models were trained for
    training: str | None = None  # the budget tag both plain names' files have (zoo16k, ...)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["diff"] = asdict(self.diff)
        return out

    @property
    def sign(self) -> str:
        """Whether A is "better": the whole 95% interval lies on the metric's better side of
        zero, "worse" on the other, else "unclear"."""
        higher = metric(self.metric).higher_is_better
        if (self.diff.low > 0) if higher else (self.diff.high < 0):
            return "better"
        if (self.diff.high < 0) if higher else (self.diff.low > 0):
            return "worse"
        return "unclear"


def compare(
    records: Iterable[dict],
    a: str | Sequence[str],
    b: str | Sequence[str],
    dataset: str,
    scale: int,
    protocol: str,
    metric: MetricSpec,
    *,
    seed: int = 0,
    label_a: str | None = None,
    label_b: str | None = None,
) -> PairResult | None:
    """A - B on the images both have (matched by name and pixel fingerprint); None if none.

    ``a`` and ``b`` are stored model names, or equally long lists of them: the same model
    trained with different seeds (``drn_s.zoo1k``, ``drn_s.zoo1k_s1``, ...), seed k of A paired
    with seed k of B, so that the interval covers training noise too (:func:`t_interval`).
    ``seed`` is kept for callers of the bootstrap era; the t interval needs none.
    """
    names_a = [a] if isinstance(a, str) else list(a)
    names_b = [b] if isinstance(b, str) else list(b)
    if len(names_a) != len(names_b) or not names_a:
        raise ValueError(f"seed replicates must pair one to one: {names_a} vs {names_b}")

    from srbench.protocols import get_protocol

    definition = get_protocol(protocol).hash  # results of an older definition are another protocol

    def shown(model: str) -> list[dict]:
        return shown_records([
            r for r in records
            if r["model"] == model and r["dataset"] == dataset and int(r["scale"]) == scale
            and r["protocol"] == protocol and r.get("protocol_hash") == definition
            and not r.get("ensemble") and not is_ablation(r)
            and r.get("standard_benchmark", True) and measured(r, metric)
        ])  # fmt: skip

    records = list(records)
    mine_a, mine_b = [shown(m) for m in names_a], [shown(m) for m in names_b]
    va, vb = [_values(m, metric) for m in mine_a], [_values(m, metric) for m in mine_b]
    common = sorted(set.intersection(*(set(v) for v in va + vb)))
    if not common:
        return None
    for model, mine in zip(names_a + names_b, mine_a + mine_b, strict=True):
        one_file(mine, f"{model} on {dataset} x{scale} ({protocol})")
    table_a = np.array([[v[k] for k in common] for v in va])
    table_b = np.array([[v[k] for k in common] for v in vb])
    matrix = table_a - table_b  # seeds x images
    diffs = matrix.mean(axis=0)
    gains = diffs if metric.higher_is_better else -diffs  # positive: A better
    tol = metric.gate_tolerance
    return PairResult(
        a=label_a or names_a[0],
        b=label_b or names_b[0],
        dataset=dataset,
        scale=scale,
        protocol=protocol,
        images=len(common),
        metric=metric.name,
        mean_a=float(table_a.mean()),
        mean_b=float(table_b.mean()),
        diff=t_interval(matrix),
        wins=int((gains > tol).sum()),
        ties=int((np.abs(gains) <= tol).sum()),
        losses=int((gains < -tol).sum()),
        per_image={k[0]: float(v) for k, v in zip(common, diffs, strict=True)},
    )


def _values(records: Sequence[dict], metric: MetricSpec) -> dict[tuple[str, str], float]:
    """(image, HR fingerprint) -> the metric's value."""
    return {(r["image"], str(r.get("hr_sha256"))): float(r[metric.name]) for r in records}


def one_file(records: Sequence[dict], what: str) -> None:
    """Refuse to pair the images of one stored name that were measured with different weights
    files or precisions (a mean of theirs is no one model's number); ``records`` are shown
    records of one protocol definition."""
    kinds = sorted(
        {(str(r.get("weights_sha256")), str(field_value(r, "precision"))) for r in records}
    )
    if len(kinds) > 1:
        found = "; ".join(f"weights {w[:12]}, precision {p}" for w, p in kinds)
        raise SRBenchError(
            f"{what}: results of {len(kinds)} kinds under one name ({found}); compare one of "
            "them: run each weights file under a name of its own (--weights FILE --tag NAME)"
        )


@dataclass(frozen=True)
class Unequal:
    """A pair the plain-name verdict does not compare at a scale: its members' files were
    trained differently (budget tag and training precision, ``zoo16k bf16``; None: not a file
    srbench trained)."""

    a: str
    b: str
    scale: int
    training_a: tuple[str | None, ...]
    training_b: tuple[str | None, ...]

    def describe(self) -> str:
        def tags(found: tuple[str | None, ...]) -> str:
            return " and ".join(t or "weights srbench did not train" for t in found)

        return (
            f"x{self.scale} not compared ({self.a} {tags(self.training_a)}, {self.b} "
            f"{tags(self.training_b)}: unequal training)"
        )


def _trainings(
    records: Sequence[dict], protocol: str
) -> dict[tuple[str, int], tuple[str | None, ...]]:
    """(model, scale) -> how each file its records (of ``protocol``) were measured with was
    trained: budget tag and training precision (``zoo16k bf16``: the same recipe and length in
    another precision is not equal training), one per file, sorted (more than one: two files
    under one name, which the verdict does not compare)."""
    from srbench.kinds import training_tag
    from srbench.pretrained import recorded_precisions
    from srbench.stores import REFERENCE_SUFFIX

    found: dict[tuple[str, int], dict[str, str | None]] = {}  # -> weights file -> its training
    for r in records:
        if r["protocol"] == protocol and not is_ablation(r):
            key = (str(r["model"]), int(r["scale"]))
            name = key[0].removesuffix(REFERENCE_SUFFIX)  # drn_s@ref: the reference store's drn_s
            weights = str(r.get("weights_sha256"))
            tag = training_tag(name, key[1], weights)
            precision = recorded_precisions(name.partition(".")[0]).get((str(tag), key[1]))
            found.setdefault(key, {})[weights] = f"{tag} {precision}" if tag and precision else tag
    return {
        k: tuple(sorted(v.values(), key=lambda t: (t is None, t or ""))) for k, v in found.items()
    }


def unequal_training(
    records: Sequence[dict],
    *,
    pairs: Sequence[tuple[str, str, str]] = VERDICT_PAIRS,
    protocol: str = "standard",
) -> list[Unequal]:
    """Every (pair, scale) both members have records at whose files were not trained alike: a
    different budget tag (``zoo16k`` vs ``zoo1k_cosine``) or training precision (``bf16`` vs
    ``fp32``), or more than one file on one side."""
    return _unequal(_trainings(records, protocol), pairs)


def _unequal(
    trainings: dict[tuple[str, int], tuple[str | None, ...]],
    pairs: Sequence[tuple[str, str, str]],
) -> list[Unequal]:
    out = []
    for a, b, _ in pairs:
        for (model, scale), ta in sorted(trainings.items()):
            tb = trainings.get((b, scale))
            if model == a and tb is not None and (ta != tb or len(ta) > 1):
                out.append(Unequal(a, b, scale, ta, tb))
    return out


def verdict(
    records: Sequence[dict],
    *,
    pairs: Sequence[tuple[str, str, str]] = VERDICT_PAIRS,
    protocol: str = "standard",
    seed: int = 0,
    equal_training: bool = True,
) -> list[PairResult]:
    """Every (pair, dataset, scale, metric) the store has both models' images for; with
    ``equal_training`` (the DRN verdict) only where both were trained alike
    (:func:`unequal_training`), each row naming that training."""
    out = []
    keys = sorted(
        {(r["dataset"], int(r["scale"])) for r in records if r["protocol"] == protocol},
        key=lambda k: (benchmark_order(k[0]), k[1]),
    )
    trainings = _trainings(records, protocol)
    unequal = {(u.a, u.b, u.scale) for u in _unequal(trainings, pairs)}
    for a, b, _ in pairs:
        for dataset, scale in keys:
            if equal_training and (a, b, scale) in unequal:
                continue
            tag = trainings.get((a, scale), (None,))[0]
            for spec in metric_specs():
                result = compare(records, a, b, dataset, scale, protocol, spec, seed=seed)
                if result is not None:
                    out.append(dataclasses.replace(result, training=tag))
    return out


def _unit(spec: MetricSpec) -> str:
    return f" {spec.unit}" if spec.unit else ""


def sentence(results: Sequence[PairResult], a: str, b: str, unequal: Sequence[Unequal] = ()) -> str:
    """One plain sentence on A vs B's headline metric (:func:`srbench.schema.headline`, PSNR):
    per scale, the training both had, the span of the mean differences over the datasets and in
    how many cells the 95% interval lies on its better or worse side of zero; then the totals
    over every dataset and scale measured; then the scales ``unequal`` leaves out."""
    spec = headline()
    rows = [r for r in results if r.a == a and r.b == b and r.metric == spec.name]
    skipped = "".join(f" {u.describe()}." for u in unequal if (u.a, u.b) == (a, b))
    if not rows:
        return f"{a} vs {b}:{skipped}" if skipped else f"{a} vs {b}: not measured yet."

    def counts(cells: Sequence[PairResult]) -> tuple[int, int, int]:
        better = sum(r.sign == "better" for r in cells)
        worse = sum(r.sign == "worse" for r in cells)
        return better, worse, len(cells) - better - worse

    def span(cells: Sequence[PairResult]) -> str:
        low, high = min(r.diff.mean for r in cells), max(r.diff.mean for r in cells)
        d = spec.decimals
        if low == high:
            return f"{low:+.{d}f}{_unit(spec)}"
        return f"per-dataset means {low:+.{d}f} to {high:+.{d}f}{_unit(spec)}"

    parts = []
    for scale in sorted({r.scale for r in rows}):
        cells = [r for r in rows if r.scale == scale]
        better, worse, unclear = counts(cells)
        training = f" ({cells[0].training})" if cells[0].training else ""
        parts.append(
            f"x{scale}{training} {span(cells)} (better in {better}, worse in {worse}, "
            f"unclear in {unclear} of {len(cells)} datasets)"
        )
    better, worse, unclear = counts(rows)
    return (
        f"{a} vs {b} at equal training, mean {spec.label} difference: {'; '.join(parts)}; over "
        f"all {len(rows)} dataset/scale cells {a} is better with 95% confidence in {better}, "
        f"worse in {worse}, and the interval includes zero in {unclear}.{skipped}"
    )


def budget_models(records: Iterable[dict]) -> dict[tuple[str, int], dict[int, str]]:
    """(model, iterations) -> {seed: stored name} of the ladder checkpoints in ``records``
    (names with a budget tag, ``drn_s.zoo1k_s2``)."""
    from srbench.registry import budget_of

    out: dict[tuple[str, int], dict[int, str]] = {}
    for name in {r["model"] for r in records}:
        base, _, tag = name.partition(".")
        budget = budget_of(tag) if tag else None
        if budget is not None:
            out.setdefault((base, budget[0]), {})[budget[1]] = name
    return out


def budget_verdict(
    records: Sequence[dict],
    *,
    pairs: Sequence[tuple[str, str, str]] = VERDICT_PAIRS,
    protocol: str = "standard",
) -> list[PairResult]:
    """The verdict per ladder rung: for every pair, rung, dataset, scale and metric, A - B over
    the seeds both models have at that rung, dataset and scale (seed k with seed k: three seeds
    at x2 and one at x4 make a 3-seed x2 cell and a 1-seed x4 one)."""
    ladder = budget_models(records)
    present = {
        (r["model"], r["dataset"], int(r["scale"])) for r in records if r["protocol"] == protocol
    }
    keys = sorted({(d, s) for _, d, s in present}, key=lambda k: (benchmark_order(k[0]), k[1]))
    out = []
    for a, b, _ in pairs:
        rungs = sorted({n for (m, n) in ladder if m == a} & {n for (m, n) in ladder if m == b})
        for rung in rungs:
            for dataset, scale in keys:
                seeds = [
                    k
                    for k in sorted(set(ladder[(a, rung)]) & set(ladder[(b, rung)]))
                    if (ladder[(a, rung)][k], dataset, scale) in present
                    and (ladder[(b, rung)][k], dataset, scale) in present
                ]
                if not seeds:
                    continue
                names_a = [ladder[(a, rung)][k] for k in seeds]
                names_b = [ladder[(b, rung)][k] for k in seeds]
                for spec in metric_specs():
                    result = compare(
                        records, names_a, names_b, dataset, scale, protocol, spec,
                        label_a=a, label_b=b,
                    )  # fmt: skip
                    if result is not None:
                        out.append(dataclasses.replace(result, budget=rung))
    return out


def budget_sentence(results: Sequence[PairResult], a: str, b: str) -> str:
    """How A - B (the headline metric, PSNR) moves with the training budget, per scale and
    dataset, with each cell's 95% interval and what it covers."""
    spec = headline()
    rows = [r for r in results if (r.a, r.b) == (a, b) and r.metric == spec.name]
    if not rows:
        return f"{a} vs {b}: no budget-ladder results yet."
    d = spec.decimals
    parts = []
    for scale in sorted({r.scale for r in rows}):
        for dataset in sorted({r.dataset for r in rows if r.scale == scale}, key=benchmark_order):
            cells = sorted(
                (r for r in rows if r.scale == scale and r.dataset == dataset),
                key=lambda r: r.budget or 0,
            )
            steps = ", ".join(
                f"{_budget_label(r.budget)} {r.diff.mean:+.{d}f} [{r.diff.low:+.{d}f}, "
                f"{r.diff.high:+.{d}f}] ({r.diff.seeds} seed{'s' if r.diff.seeds > 1 else ''})"
                for r in cells
            )
            parts.append(f"{dataset} x{scale}: {steps}")
    unit = f" in {spec.unit}" if spec.unit else ""
    return (
        f"{a} - {b}, mean {spec.label} difference{unit} by training budget (95% t interval over "
        f"the images, and over the seeds where there are several): "
        + "; ".join(parts)
        + "."
        + seed_noise_note(rows)
        + backoff_note(rows, (a, b))
        + precision_note(rows, a, b)
    )


def seed_noise_note(rows: Sequence[PairResult]) -> str:
    """Where some cells have several seeds and others one: the training noise the seeds measured
    (seed-to-seed SD of the difference), which a one-seed interval leaves out; '' otherwise."""
    noisy = [r for r in rows if r.diff.seed_sd is not None]
    if not noisy or all(r.diff.seeds > 1 for r in rows):
        return ""
    spec = headline()
    cells = ", ".join(
        f"{r.dataset} x{r.scale} {_budget_label(r.budget)} {r.diff.seed_sd:.{spec.decimals}f}"
        for r in noisy
    )
    unit = f" in {spec.unit}" if spec.unit else ""
    return (
        f" Training noise where several seeds were trained (seed-to-seed SD of the difference"
        f"{unit}): {cells}; the one-seed intervals leave it out."
    )


def precision_note(rows: Sequence[PairResult], a: str, b: str) -> str:
    """A sentence per compared rung and scale whose checkpoints trained in different precisions
    (``precision: auto`` is bf16 on a CPU that multiplies bf16, fp32 on one that does not), read
    from the tag manifest: the difference there includes the precision; '' if none."""
    from srbench.pretrained import recorded_precisions
    from srbench.registry import budget_of

    def precisions(model: str) -> dict[tuple[int, int], set[str]]:
        out: dict[tuple[int, int], set[str]] = {}
        for (tag, scale), precision in recorded_precisions(model).items():
            budget = budget_of(tag)
            if budget is not None:
                out.setdefault((budget[0], scale), set()).add(precision)
        return out

    found_a, found_b = precisions(a), precisions(b)
    notes = []
    for budget, scale in sorted({(r.budget or 0, r.scale) for r in rows}):
        pa, pb = found_a.get((budget, scale), set()), found_b.get((budget, scale), set())
        if pa and pb and (pa != pb or len(pa) > 1):
            notes.append(
                f" At {_budget_label(budget)} x{scale} {a} trained in {'/'.join(sorted(pa))} and "
                f"{b} in {'/'.join(sorted(pb))}: that difference includes the precision."
            )
    return "".join(notes)


def backoff_note(rows: Sequence[PairResult], models: Sequence[str]) -> str:
    """A sentence per compared checkpoint that trained on at a lowered rate after a divergence
    (the divergence rule, ``training.divergence``), read from the tag manifest; '' if none."""
    from srbench.pretrained import recorded_backoffs
    from srbench.registry import budget_of

    cells = {(r.budget, r.scale) for r in rows}
    notes = []
    for model in models:
        for (tag, scale), backoffs in sorted(recorded_backoffs(model).items()):
            budget = budget_of(tag)
            if budget is None or (budget[0], scale) not in cells:
                continue
            steps = ", ".join(
                f"x{b['lr_scale']:g} from iteration {b['restored']:,} (diverged at "
                f"{b['diverged_at']:,})"
                for b in backoffs
            )
            notes.append(f" {model}.{tag} x{scale} trained at a lowered rate: {steps}.")
    return "".join(notes)


def _budget_label(budget: int | None) -> str:
    return f"{budget // 1000}k" if budget and budget % 1000 == 0 else str(budget)
