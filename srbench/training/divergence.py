"""The divergence rule, the same for every recipe: when a step's loss exceeds
:data:`DIVERGED_LOSS`, the run goes back to its last periodic checkpoint and goes on from there
at :data:`BACKOFF_FACTOR` times the rate (the rest of the schedule), at most
:data:`MAX_BACKOFFS` times (OPT-175B's remedy, Zhang et al. 2022, sec. 2.5).

A run that never diverges is unaffected, so the rule needs no new recipe hash; one that backed off
lists each backoff in its checkpoint, log and run.json (``lr_backoffs``). DRN-M at the ladder's
1e-3 diverged at iteration 1,047; from the 1,000 checkpoint at half the rate it trained on
(docs/zoo.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from srbench.training import distributed
from srbench.training.checkpoint import (
    CHECKPOINT_FILE,
    REWIND_FILE,
    TrainingError,
    read_checkpoint,
    snapshot_name,
    write_state,
)
from srbench.training.segments import cpu_between

if TYPE_CHECKING:
    from srbench.training.loop import _Run

# A per-pixel loss (l1, mse, charbonnier) of images in [0, 1] above this means errors beyond the
# whole intensity range: the run diverged, though the loss may stay finite for hundreds of steps
# (DRN-M's ladder trunk: 0.02 -> 1.3 -> 1e8 within 60 iterations, docs/zoo.md).
DIVERGED_LOSS = 1.0
BACKOFF_FACTOR = 0.5
MAX_BACKOFFS = 3


class Diverged(Exception):
    """The loss of ``iteration`` exceeded :data:`DIVERGED_LOSS` (or was NaN)."""

    def __init__(
        self,
        iteration: int,
        loss: float,
        train_seconds: float,
        segments: tuple[dict[str, Any], ...] = (),
    ) -> None:
        super().__init__(iteration, loss)
        self.iteration = iteration
        self.loss = loss
        self.train_seconds = train_seconds  # the run's training time up to the divergence
        self.segments = segments  # the run's segments then, this one's clock read at the raise


def back_off(run: _Run, diverged: Diverged) -> dict[str, Any]:
    """After a divergence: rewrite the run's last periodic checkpoint (every
    ``checkpoint_interval`` iterations; never one a stop made, so an interrupted run backs off
    exactly as an uninterrupted one) as checkpoint.pt with the rate's factor times
    :data:`BACKOFF_FACTOR` and the backoff appended (so that a resume, or a branch off a later
    snapshot, carries it); the run then resumes from it. Snapshots made since that checkpoint
    (on the way to the divergence) are deleted. The time spent since it stays counted in the
    run's training seconds. Raises :class:`TrainingError` once :data:`MAX_BACKOFFS` were spent,
    or when the run has no checkpoint to go back to."""
    loss = diverged.loss if math.isfinite(diverged.loss) else None  # JSON has no NaN
    where = (
        f"{run.run_dir}: the loss became {diverged.loss:.4g} at iteration {diverged.iteration}: "
        f"the run diverged (above {DIVERGED_LOSS:g}, errors beyond the whole intensity range)"
    )
    # the latest periodic checkpoint before the divergence (checkpoint.pt first on a tie)
    states = [read_checkpoint(run.run_dir, name) for name in (CHECKPOINT_FILE, REWIND_FILE)]
    distributed.barrier(run.ctx)  # every rank has read them before the main rank rewrites them
    usable = [
        s for s in states
        if s is not None and run.periodic(s["iteration"]) and s["iteration"] < diverged.iteration
    ]  # fmt: skip
    if not usable:
        raise TrainingError(
            f"{where} before its first periodic checkpoint; lower optimizer.lr in a new recipe, "
            "or set a shorter checkpoint_interval to let it back off"
        )
    state = max(usable, key=lambda s: int(s["iteration"]))
    restored = int(state["iteration"])
    if run.ctx.is_main and run.snapshot_dir is not None:
        for s in run.snapshots:
            if restored < s < diverged.iteration:
                (run.snapshot_dir / snapshot_name(s)).unlink(missing_ok=True)
    done = tuple(state.get("backoffs", ()))
    if len(done) >= MAX_BACKOFFS:
        raise TrainingError(
            f"{where} after {len(done)} backoffs (rate x{float(state.get('lr_scale', 1.0)):g}); "
            "the last checkpoint is kept: lower optimizer.lr in a new recipe"
        )
    spent = float(state.get("train_seconds", 0.0))
    lost = round(max(0.0, diverged.train_seconds - spent), 1)
    entry: dict[str, Any] = {
        "diverged_at": diverged.iteration,
        "loss": loss,
        "restored": restored,
        "lr_scale": float(state.get("lr_scale", 1.0)) * BACKOFF_FACTOR,
        "seconds_lost": lost,
    }
    cpu_lost = cpu_between(state.get("segments", ()), diverged.segments)
    if cpu_lost is not None:
        entry["cpu_seconds_lost"] = cpu_lost
    if run.ctx.is_main:
        rewritten = {
            **state,
            "lr_scale": entry["lr_scale"],
            "backoffs": [*done, entry],
            "train_seconds": spent + lost,
        }
        write_state(rewritten, run.run_dir / CHECKPOINT_FILE)
        (run.run_dir / REWIND_FILE).unlink(missing_ok=True)  # checkpoint.pt is periodic again
    distributed.barrier(run.ctx)
    return entry
