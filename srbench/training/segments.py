"""A run's segments: each stretch of iterations between a start (or resume) and its stop, with
the machine, device, precision and torch threads it trained on and its wall and process-CPU
seconds. Checkpoints carry them on, run.json lists them, ladder records sum them.

CPU time is the training process's (rank 0's under DDP): unlike wall time it leaves out the
time the process was stopped (``kill -STOP``) or waited for a core another process held.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from srbench.provenance import device_description


def machine_of(device: torch.device) -> str:
    """``AMD EPYC (AuthenticAMD family 25 model 1)`` or the GPU's name: a segment's machine."""
    info = device_description(device)
    if info.get("gpu_name"):
        return str(info["gpu_name"])
    return (
        f"{info['cpu_model']} ({info['cpu_id']})" if info.get("cpu_id") else str(info["cpu_model"])
    )


def this_segment(
    start: int,
    iteration: int,
    where: tuple[str, str, str],
    clock: tuple[float, float],
    spent: tuple[float, float] | None,
) -> dict[str, Any]:
    """The segment from ``start`` to ``iteration``: ``where`` is (machine, device, precision);
    ``clock`` the perf_counter and process_time at its start; ``spent`` its wall and CPU
    seconds once its loop ended (else read now)."""
    wall, cpu = spent or (time.perf_counter() - clock[0], time.process_time() - clock[1])
    machine, device, precision = where
    return {
        "from": start,
        "to": iteration,
        "machine": machine,
        "device": device,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
    }


def cpu_seconds(
    segments: Sequence[dict[str, Any]],
    backoffs: Sequence[dict[str, Any]] = (),
    after: int = 0,
) -> float | None:
    """Process-CPU seconds of the segments from iteration ``after`` on, plus the work that
    divergences restored to an iteration from ``after`` on undid; None when any of them was
    trained before segments recorded their CPU time."""
    parts: list[float | None] = [x.get("cpu_seconds") for x in segments if int(x["from"]) >= after]
    parts += [b.get("cpu_seconds_lost") for b in backoffs if int(b["restored"]) >= after]
    known = [float(v) for v in parts if v is not None]
    return float(sum(known)) if parts and len(known) == len(parts) else None


def cpu_between(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> float | None:
    """Process-CPU seconds that the segments ``after`` (a run at its divergence) hold beyond
    ``before`` (the checkpoint it goes back to): the work the rewind undoes. Both lists agree
    before the checkpoint's last segment, so only the segments from its start on are compared
    (a trunk trained before CPU time was recorded does not hide it). None where one of those
    was not measured."""
    since = int(before[-1]["from"]) if before else 0
    total_after, total_before = cpu_seconds(after, after=since), cpu_seconds(before, after=since)
    if total_after is None or (before and total_before is None):
        return None
    return round(max(0.0, total_after - (total_before or 0.0)), 1)


def rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)
