"""How many CPU threads evaluation uses: as many as the machine has idle cores, measured.

torch's pool defaults to every core. On a machine other processes keep busy (training beside
the benchmark, a shared server) its threads wait for each other at every operator's barrier
whenever one is preempted, and small per-image operations get many times slower: on a 2-core
AMD EPYC beside a 2-core training job, a bicubic Set14 x2/x3/x4 run took 21.0 s with 2 threads
and 3.1 s with 1, a DRN-S Set5 x2 run 13.6 s against 5.1 s (docs/efficiency.md, "Threads").
So unless ``--threads`` fixes the count, :class:`ThreadPolicy` samples the cores left idle by
other processes (``/proc/stat`` over a short window, this process's own CPU time counted as
idle) and uses that many, at least one; it samples again between images every
``interval_s`` seconds, since the load changes during a long run.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from srbench.errors import SRBenchError

SAMPLE_S = 0.1  # long enough for ~10 scheduler ticks per core at the usual 100 Hz
# A core counts as free only when almost wholly idle: a thread sharing a core with another
# process stalls the barrier of every torch operator.
FREE_CORE_SLACK = 0.15


def _cpu_jiffies() -> tuple[int, int]:
    """(idle, total) jiffies of all cores since boot, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return values[3] + values[4], sum(values)  # idle + iowait; user ... steal


def idle_cores(window_s: float = SAMPLE_S) -> float | None:
    """Cores not used by other processes over ``window_s`` (None where /proc/stat is absent)."""
    try:
        idle0, total0 = _cpu_jiffies()
        own0 = sum(os.times()[:2])
        time.sleep(window_s)
        idle1, total1 = _cpu_jiffies()
        own1 = sum(os.times()[:2])
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    own = (own1 - own0) * tick  # this process's spinning pool threads are not someone else's load
    cores = os.cpu_count() or 1
    return min(cores, (idle1 - idle0 + own) / (total1 - total0) * cores)


def threads_for(idle: float | None, cores: int) -> int:
    """Threads for ``idle`` free cores out of ``cores``: whole free cores, at least one."""
    if idle is None:
        return cores
    return max(1, min(cores, math.floor(idle + FREE_CORE_SLACK)))


@dataclass
class ThreadPolicy:
    """The torch thread count of a run: ``fixed`` (``--threads``) or adaptive to the load."""

    fixed: int | None = None
    interval_s: float = 30.0
    threads: int = 0
    idle: float | None = None
    _checked: float = field(default=-math.inf, repr=False)

    def __post_init__(self) -> None:
        if self.fixed is not None and self.fixed < 1:
            raise SRBenchError(f"--threads must be >= 1, got {self.fixed}")

    def update(self) -> int:
        """Set torch's thread count (re-sampling the load when due); returns it."""
        now = time.monotonic()
        if self.fixed is not None:
            wanted = self.fixed
        elif now - self._checked >= self.interval_s:
            self.idle = idle_cores()
            self._checked = now
            wanted = threads_for(self.idle, os.cpu_count() or 1)
        else:
            wanted = self.threads
        if wanted != torch.get_num_threads():
            torch.set_num_threads(wanted)
        self.threads = wanted
        return wanted

    def provenance(self) -> dict[str, object]:
        """The record fields saying how many threads ran an image, and why."""
        return {
            "torch_threads": self.threads,
            "thread_policy": "fixed" if self.fixed is not None else "adaptive",
            "idle_cores": None if self.idle is None else round(self.idle, 2),
        }


@contextlib.contextmanager
def restored_threads() -> Iterator[None]:
    """torch's thread count as it was before the block (a policy changes the global one)."""
    old = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(old)
