"""Whose results: the user's store (where ``srbench run`` writes) and the project's reference.

A clone's ``results/`` is the project's *reference store*: the committed benchmark that the README
table, the verdict and the gate's baseline come from. A user's own runs must not modify it (its
``git status`` would turn dirty and every report would gain the user's demo column), so every
command's ``--results-dir`` defaults to the *user store*: ``$SRBENCH_RESULTS``, else
``<srbench cache>/results`` (``$SRBENCH_CACHE``, else ``~/.cache/srbench``). The project's tools
that maintain the reference (``tools/full_benchmark.sh``, ``tools/make_readme_assets.py``, CI's
gate) name ``results/`` explicitly.

``report``/``pareto --reference`` and ``compare NAME@ref ...`` read the reference beside the
user's store; its models carry the suffix :data:`REFERENCE_SUFFIX` so that the two are never
mixed into one number.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from srbench.data import default_cache_dir
from srbench.errors import SRBenchError

if TYPE_CHECKING:  # imported where used: `srbench run` needs no pandas (0.3 s of start-up)
    import pandas as pd

REFERENCE_SUFFIX = "@ref"
RECORDS = "records.jsonl"


def user_results_dir() -> Path:
    """``$SRBENCH_RESULTS``, else ``<srbench cache>/results``."""
    named = os.environ.get("SRBENCH_RESULTS")
    return Path(named).expanduser() if named else default_cache_dir() / "results"


def results_dir_or_default(path: str | Path | None) -> Path:
    """The store a command works on: the one named with ``--results-dir``, else the user's."""
    return Path(path) if path is not None else user_results_dir()


def reference_results_dir() -> Path:
    """``$SRBENCH_REFERENCE``, else the committed ``results/`` of the checkout srbench runs from.

    Raises a one-line error when there is none (an installed wheel has no reference store)."""
    named = os.environ.get("SRBENCH_REFERENCE")
    root = Path(named).expanduser() if named else Path(__file__).resolve().parent.parent / "results"
    if not (root / RECORDS).is_file():
        where = "$SRBENCH_REFERENCE" if named else "this installation (not a git clone)"
        raise SRBenchError(
            f"{root / RECORDS}: no reference store in {where}; point $SRBENCH_REFERENCE at a "
            "clone's results/ folder"
        )
    return root


def is_reference_name(model: str) -> bool:
    return model.endswith(REFERENCE_SUFFIX)


def as_reference(records: list[dict]) -> list[dict]:
    """The reference store's records, their models renamed ``NAME@ref``."""
    return [{**r, "model": f"{r['model']}{REFERENCE_SUFFIX}"} for r in records]


def reference_records() -> list[dict]:
    from srbench.results import ResultStore

    return as_reference(ResultStore(reference_results_dir()).shown_records())


def reference_profiles() -> list[dict]:
    """The reference's cost records (costs belong to the architecture, so names stay plain)."""
    from srbench.pareto import load_profiles

    return load_profiles(reference_results_dir())


def with_reference(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (the user's store) with the reference store's records beside it."""
    import pandas as pd

    reference = pd.DataFrame.from_records(reference_records())
    return pd.concat([frame, reference], ignore_index=True) if not frame.empty else reference
