"""``srbench compare``: the paired comparison of any two models in the store.

The arithmetic is the verdict's (:mod:`srbench.verdict`): per dataset and scale, the per-image
differences A - B on the images both models have (name and pixel fingerprint), their mean with the
verdict's 95% interval over the images, and wins/ties/losses within the metric's tolerance. The
DRN verdict is the preset ``drn`` (:data:`PRESETS`): ``srbench compare --preset drn`` gives the
rows of ``srbench verdict``.

A name ending in ``@ref`` (``idn@ref``) is read from the project's reference store
(:mod:`srbench.stores`), so a user's model can be compared with the committed results.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from srbench.errors import SRBenchError
from srbench.stores import REFERENCE_SUFFIX, is_reference_name
from srbench.verdict import VERDICT_PAIRS, PairResult, verdict

# Named sets of pairs (A, B, title); "drn" is the DRN verdict.
PRESETS: dict[str, tuple[tuple[str, str, str], ...]] = {"drn": VERDICT_PAIRS}


def preset_pairs(name: str) -> tuple[tuple[str, str, str], ...]:
    if name not in PRESETS:
        raise SRBenchError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def stored_name(name: str, stored: set[str], store: str = "your store") -> str:
    """The store's name for what the user typed: as stored, else through the registry's aliases
    (``drn`` -> ``drn_s``); a name the store lacks is one error naming the closest ones."""
    if name in stored:
        return name
    base, ref = (
        (name.removesuffix(REFERENCE_SUFFIX), REFERENCE_SUFFIX)
        if is_reference_name(name)
        else (name, "")
    )
    try:
        from srbench.registry import resolve

        canonical = resolve(base).key + ref
    except SRBenchError:
        canonical = name
    if canonical in stored:
        return canonical
    close = difflib.get_close_matches(name, sorted(stored), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    where = "the reference store" if ref else f"{store} (NAME@ref reads the reference store)"
    raise SRBenchError(f"no results of {name!r} in {where}{hint}")


def compare_models(
    records: Sequence[dict],
    pairs: Sequence[tuple[str, str, str]],
    *,
    datasets: Sequence[str] | None = None,
    scales: Sequence[int] | None = None,
    protocol: str = "standard",
    seed: int = 0,
    equal_training: bool = False,
) -> list[PairResult]:
    """Every (pair, dataset, scale, metric) in the filters that both models have images for;
    ``equal_training`` (a preset such as the DRN verdict): only where both trained alike."""
    kept = [
        r
        for r in records
        if (not datasets or r["dataset"] in datasets) and (not scales or int(r["scale"]) in scales)
    ]
    return verdict(kept, pairs=pairs, protocol=protocol, seed=seed, equal_training=equal_training)
