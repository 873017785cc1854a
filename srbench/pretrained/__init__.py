"""srbench's own trained weights and the weights sets a model name selects, by tag.

The ``.safetensors`` files beside this module are the final weights of the runs of
``srbench/recipes/zoo.yaml`` (``srbench zoo train``), stored as float16 (they load into fp32
models; the committed gate baseline is measured from these very files). Two data files pin them:

* ``shipped.json`` (written by ``srbench zoo ship``): model -> scale -> the shipped file, its
  sha256 and the zoo run that made it; the plain name (``idn``) runs these.
* ``ladder.json`` (written by ``srbench ladder record``): model -> budget tag (``zoo1k``,
  ``zoo4k_s1``, ...) -> scale -> the ladder checkpoint; the files stay in the ladder's run
  folders (``$SRBENCH_LADDER_DIR``), except the top rungs, which ship beside this module.

The authors' weights (tag ``official``) are pinned in their model card, by the family module that
knows their files (``architectures/<family>.py``). :func:`weights_set` is the one lookup from a
tag to its weights, so a new budget tag needs a manifest entry, not code.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srbench.registry import WeightsRef

if TYPE_CHECKING:
    from srbench.registry import ModelCard

SHIPPED_MANIFEST = Path(__file__).with_name("shipped.json")
LADDER_MANIFEST = Path(__file__).with_name("ladder.json")
# The fields of a shipped.json row, in the order `srbench zoo ship` writes them.
SHIPPED_FIELDS = (
    "file",
    "sha256",
    "run",
    "train_seconds",
    "iterations",
    "machine",
    "precision",
)


def _read_manifest(path: Path) -> dict[str, Any]:
    from srbench.errors import SRBenchError

    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SRBenchError(
            f"{path}: not valid JSON ({exc}); restore it with `git checkout -- {path.name}` "
            "in srbench/pretrained/"
        ) from None
    if not isinstance(data, dict):
        raise SRBenchError(f"{path}: not a JSON object; restore it with `git checkout`")
    return data


@functools.cache
def shipped() -> dict[str, dict[int, dict[str, Any]]]:
    """model -> scale -> the shipped.json row (``file``, ``sha256``, ``run``, ...)."""
    raw = _read_manifest(SHIPPED_MANIFEST)
    return {m: {int(s): row for s, row in by_scale.items()} for m, by_scale in raw.items()}


def zoo_weights(model: str) -> dict[int, WeightsRef]:
    """The model card's ``weights``: scale -> the shipped file for that scale (may be empty)."""
    out = {}
    for scale, row in shipped().get(model, {}).items():
        out[scale] = WeightsRef(
            filename=row["file"],
            sha256=row["sha256"],
            source=(
                f"srbench zoo run {row['run']}: {row['iterations']} iterations of "
                f"srbench/recipes/zoo.yaml, {row['train_seconds'] / 60:.0f} min of training on "
                f"{row['machine']} ({row['precision']}); docs/zoo.md; stored as float16"
            ),
            shipped=True,
        )
    return out


@functools.cache
def _ladder_manifest() -> dict[str, dict[str, dict[str, dict]]]:
    return _read_manifest(LADDER_MANIFEST)


def budget_weights(model: str, tag: str) -> dict[int, WeightsRef]:
    """Scale -> the ladder checkpoint ``model.tag`` names (empty when none is recorded)."""
    out = {}
    for scale, row in _ladder_manifest().get(model, {}).get(tag, {}).items():
        out[int(scale)] = WeightsRef(
            filename=row["file"],
            sha256=row["sha256"],
            source=(
                f"srbench ladder run {row['run']}: {row['iterations']} iterations of "
                f"srbench/recipes/ladder.yaml (seed {row['seed']}, {row['weights']} weights), "
                f"{row['train_seconds'] / 60:.0f} min of training on {row['machine']} "
                f"({row['precision']}); docs/zoo.md"
            ),
            shipped=bool(row.get("shipped")),
        )
    return out


def budget_tags(model: str) -> list[str]:
    """The ladder tags recorded for ``model`` (``zoo1k``, ``zoo1k_s1``, ...)."""
    return sorted(_ladder_manifest().get(model, {}))


def weights_set(card: ModelCard, tag: str) -> dict[int, WeightsRef]:
    """Scale -> weights of ``card.name`` under ``tag``: ``""`` the card's own (the shipped zoo,
    or a plugin's), ``official`` the authors' (pinned in the card), any other tag the ladder
    manifest's entry (empty when none is recorded)."""
    if not tag:
        return card.weights
    if tag == "official":
        return card.official_weights
    return budget_weights(card.name, tag)
