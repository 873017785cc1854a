"""srbench's own trained weights and the weights sets a model name selects, by tag.

The ``.safetensors`` files beside this module are srbench's own trained weights, stored as
float16 (they load into fp32 models; the committed gate baseline is measured from these very
files): per model and scale, the top rung of the budget ladder (``srbench/recipes/ladder.yaml``,
``srbench ladder ship``) where the ladder has trained it, else the zoo's run
(``srbench/recipes/zoo.yaml``, ``srbench zoo ship``). Two data files pin them:

* ``shipped.json``: model -> scale -> the shipped file, its sha256, the run that made it, its
  recipe (``zoo`` or ``ladder``) and budget tag (``zoo1k_cosine``, ``zoo16k``); the plain name
  (``idn``) runs these.
* ``ladder.json`` (written by ``srbench ladder record`` and ``srbench ladder ship``): model ->
  budget tag (``zoo1k``, ``zoo4k_s1``, ...) -> scale -> the checkpoint that tag names. A ladder
  rung's file stays in its run folder (``$SRBENCH_LADDER_DIR``); the shipped rung's row says
  ``shipped: true`` (its float16 copy is the plain name's file). A zoo file the ladder replaced
  keeps a row under the zoo's tag (``zoo1k_cosine``, ``recipe: zoo``) with its git blob id, so
  its results stay told apart and the file can be taken back from git history.

The authors' weights (tag ``official``) are pinned in their model card, by the family module that
knows their files (``architectures/<family>.py``). :func:`weights_set` is the one lookup from a
tag to its weights, so a new budget tag needs a manifest entry, not code.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srbench.registry import WeightsRef

if TYPE_CHECKING:
    from srbench.registry import ModelCard

SHIPPED_MANIFEST = Path(__file__).with_name("shipped.json")
LADDER_MANIFEST = Path(__file__).with_name("ladder.json")
# The fields of a shipped.json row (`srbench zoo ship` and `srbench ladder ship` write them all).
SHIPPED_FIELDS = (
    "file",
    "sha256",
    "run",
    "recipe",
    "tag",
    "iterations",
    "seed",
    "train_seconds",
    "machine",
    "precision",
)
# The package's shipped weights in all, at most (issue 21): `srbench ladder ship` refuses more.
SHIPPED_LIMIT_BYTES = 30 * 2**20
RECIPE_FILES = {"zoo": "srbench/recipes/zoo.yaml", "ladder": "srbench/recipes/ladder.yaml"}


def _read_manifest(path: Path) -> dict[str, Any]:
    from srbench.files import read_json_object

    if not path.is_file():
        return {}
    return read_json_object(
        path, f"restore it with `git checkout -- srbench/pretrained/{path.name}`"
    )


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
            source=_source(row) + "; stored as float16",
            shipped=True,
        )
    return out


def _source(row: dict[str, Any]) -> str:
    """Where a manifest row's weights come from: run, budget, recipe file, time, machine."""
    recipe = row.get("recipe", "ladder")  # ladder.json rows recorded before the field: ladder
    seed = f"seed {row['seed']}" + (f", {row['weights']} weights" if "weights" in row else "")
    backoffs = "".join(  # the divergence rule's backoffs (training.divergence.back_off), if any
        f"; diverged at iteration {b['diverged_at']}, from {b['restored']} at the rate "
        f"x{b['lr_scale']:g}"
        for b in row.get("lr_backoffs", ())
    )
    return (
        f"srbench {recipe} run {row['run']}: {row['iterations']} iterations of "
        f"{RECIPE_FILES[recipe]} (budget {row['tag']}, {seed}{backoffs}), "
        f"{row['train_seconds'] / 60:.0f} min of training on {row['machine']} "
        f"({row['precision']}); docs/zoo.md"
    )


@functools.cache
def _ladder_manifest() -> dict[str, dict[str, dict[str, dict]]]:
    return _read_manifest(LADDER_MANIFEST)


def budget_weights(model: str, tag: str) -> dict[int, WeightsRef]:
    """Scale -> the checkpoint ``model.tag`` names (empty when none is recorded): a ladder
    rung's own file (in its run folder, also when its float16 copy ships as the plain name), or
    a replaced zoo file (``zoo1k_cosine``; its source says how to take it from git)."""
    out = {}
    for scale, row in _ladder_manifest().get(model, {}).get(tag, {}).items():
        source = _source({**row, "tag": tag})
        if row.get("git_blob"):
            source += (
                f"; shipped in srbench/pretrained/ until the ladder replaced it: "
                f"`git cat-file blob {row['git_blob']} > $SRBENCH_WEIGHTS/{row['file']}`"
            )
        out[int(scale)] = WeightsRef(filename=row["file"], sha256=row["sha256"], source=source)
    return out


def recorded_precisions(model: str) -> dict[tuple[str, int], str]:
    """(tag, scale) -> the training precision (bf16, fp32, ...) of each checkpoint of ``model``
    that srbench trained and recorded: its ladder rungs and zoo files, shipped or replaced."""
    out = {
        (str(row["tag"]), scale): str(row["precision"])
        for scale, row in shipped().get(model, {}).items()
        if row.get("tag") and row.get("precision")
    }
    for tag, by_scale in _ladder_manifest().get(model, {}).items():
        for scale, row in by_scale.items():
            if row.get("precision"):
                out[(tag, int(scale))] = str(row["precision"])
    return out


def recorded_backoffs(model: str) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(tag, scale) -> the divergence rule's backoffs of each recorded checkpoint of ``model``
    that has any (``training.divergence``): which numbers came from a lowered rate."""
    return {
        (tag, int(scale)): list(row["lr_backoffs"])
        for tag, by_scale in _ladder_manifest().get(model, {}).items()
        for scale, row in by_scale.items()
        if row.get("lr_backoffs")
    }


@functools.cache
def _tag_index() -> dict[tuple[str, int, str], str]:
    """(model, scale, sha256) -> the budget tag whose recorded file has that sha256."""
    return {
        (model, int(scale), row["sha256"]): tag
        for model, tags in _ladder_manifest().items()
        for tag, by_scale in tags.items()
        for scale, row in by_scale.items()
    }


def recorded_tag(model: str, scale: int, sha256: str) -> str | None:
    """The budget tag whose pinned file is these weights (``zoo1k_cosine`` for the zoo file the
    ladder replaced), None for others: results of such weights are stored under ``model.tag``,
    never under the plain name, which runs the shipped file."""
    return _tag_index().get((model, int(scale), sha256))


def clear_caches() -> None:
    """Read both manifests anew (after `srbench ladder record` / `ship` rewrote them)."""
    shipped.cache_clear()
    _ladder_manifest.cache_clear()
    _tag_index.cache_clear()


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
