"""Whose weights a result was measured with, and how long srbench trained them.

The report and the README never put srbench's own short training and the authors' released
weights on one Pareto front or in one paper-vs-measured table: :func:`weights_kind` tells them
apart (by the stored name and the weights' sha256), :data:`KINDS` gives each kind its marker,
and :func:`training_budget` says, wherever a zoo model appears, how many iterations it was
trained and what share of its paper's training that is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

# kind -> (legend text, marker, colour); the plots' order.
KINDS = {
    "srbench": ("srbench-trained (zoo)", "o", "tab:blue"),
    "official": ("authors' weights (.official)", "s", "tab:red"),
    "other": ("other weights (--weights)", "P", "tab:purple"),
    "none": ("no weights (bicubic)", "^", "tab:green"),
    "random": ("random weights (meaningless)", "x", "tab:gray"),
}
# Only these are compared with a paper's numbers: the paper's own weights, or no weights at all.
PAPER_KINDS = ("official", "none")


@dataclass(frozen=True)
class PaperTraining:
    """A paper's training budget, which srbench's zoo budget is a share of."""

    iterations: int
    batch: int
    source: str


# Only budgets a source states exactly; a model not listed shows "not recorded", never a guess.
PAPER_TRAINING = {
    "edsr_baseline": PaperTraining(
        300_000,
        16,
        "EDSR-PyTorch defaults: 300 epochs of 1000 updates (--epochs 300 --test_every 1000), "
        "--batch_size 16",
    ),
}


def weights_kind(model: str, weights_sha256: str) -> str:
    """``official`` (the authors' weights, stored as ``NAME.official``), ``srbench`` (the
    shipped file, or a budget tag's pinned one), ``random``, ``none`` (a model without weights) or ``other``."""
    sha = str(weights_sha256)
    if sha == "random-init":
        return "random"
    if sha == "none":
        return "none"
    if str(model).endswith(".official"):
        return "official"
    from srbench.registry import is_budget_tag

    if is_budget_tag(str(model).partition(".")[2]):  # drn_s.zoo16k, drn_s.zoo1k_cosine: pinned
        return "srbench"
    return "srbench" if sha in _zoo_hashes(str(model)) else "other"


def _card(model: str):
    from srbench.errors import SRBenchError
    from srbench.registry import get_card

    try:
        return get_card(model)
    except SRBenchError:
        return None


@cache
def _zoo_hashes(model: str) -> frozenset[str]:
    card = _card(model)
    return frozenset(w.sha256 for w in card.weights.values()) if card is not None else frozenset()


@cache
def _zoo_batch() -> int | None:
    from srbench.errors import SRBenchError

    try:
        from srbench.training.zoo import load_zoo

        return int(load_zoo("zoo").recipe.data.batch_size)
    except (SRBenchError, OSError, ImportError):
        return None


def training_tag(model: str, scale: int, weights_sha256: str) -> str | None:
    """How srbench trained the weights a record was measured with, as the budget tag of its
    recipe and length (``zoo16k``, ``zoo1k_cosine``): a budget-tagged name's own tag, else the
    tag of the shipped file a plain name's record was measured with; None for other weights
    (the authors', a user's, none)."""
    from srbench.pretrained import shipped
    from srbench.registry import is_budget_tag

    base, _, tag = str(model).partition(".")
    if tag:
        return tag if is_budget_tag(tag) else None
    row = shipped().get(base, {}).get(int(scale))
    return str(row["tag"]) if row is not None and row["sha256"] == weights_sha256 else None


def training_budget(model: str, scale: int, weights_sha256: str) -> str:
    """``1,000 iterations (0.33% of the paper's 300,000 x batch 16)`` for a shipped zoo model,
    else ``""``."""
    from srbench.pretrained import shipped

    if weights_kind(model, weights_sha256) != "srbench":
        return ""
    row = shipped().get(str(model), {}).get(int(scale))
    if row is None or row["sha256"] != weights_sha256:
        return "srbench training (budget not recorded)"
    iterations = int(row["iterations"])
    text = f"srbench {row['recipe']}: {iterations:,} iterations"
    paper, batch = PAPER_TRAINING.get(str(model)), _zoo_batch()
    if paper is None or batch is None:
        return f"{text} (its paper's budget is not recorded)"
    share = iterations * batch / (paper.iterations * paper.batch)
    return f"{text} ({share:.2%} of its paper's {paper.iterations:,} x batch {paper.batch})"
