"""How many CPU threads evaluation uses: as many as the machine has idle cores, measured.

torch's pool defaults to every core. On a machine other processes keep busy (training beside
the benchmark, a shared server) its threads wait for each other at every operator's barrier
whenever one is preempted, and small per-image operations get many times slower: on a 2-core
AMD EPYC beside a 2-core training job, a bicubic Set14 x2/x3/x4 run took 21.0 s with 2 threads
and 3.1 s with 1, a DRN-S Set5 x2 run 13.6 s against 5.1 s (docs/efficiency.md, "Threads").
So unless ``--threads`` fixes the count, :class:`ThreadPolicy` samples the cores left idle by
other processes (``/proc/stat``, this process's own CPU time counted as idle) and uses that
many, at least one. The first window opens when the policy is made and lasts at least 0.1 s
(the run's start-up overlaps it); between images, every ``interval_s`` seconds, it samples
again over the whole window since the previous sample, since the load changes during a run.
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


@dataclass(frozen=True)
class LoadReading:
    """Jiffies of all cores since boot (idle + iowait, total), this process's CPU seconds, when."""

    idle: int
    total: int
    own_s: float
    at: float  # time.monotonic()


def read_load() -> LoadReading | None:
    """The counters now, from the first line of /proc/stat (None where it is absent)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    # idle + iowait; user ... steal
    return LoadReading(values[3] + values[4], sum(values), sum(os.times()[:2]), time.monotonic())


def idle_cores_since(
    start: LoadReading | None, min_window_s: float = SAMPLE_S
) -> tuple[float | None, LoadReading | None]:
    """Cores not used by other processes since ``start`` (waiting until ``min_window_s`` has
    passed), and the reading that ends the window (the next window's start)."""
    if start is None:
        start = read_load()
    if start is not None:
        time.sleep(max(0.0, min_window_s - (time.monotonic() - start.at)))
    end = read_load()
    if start is None or end is None or end.total <= start.total:
        return None, end
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    own = (end.own_s - start.own_s) * tick  # this process's spinning pool threads are not load
    cores = os.cpu_count() or 1
    idle = (end.idle - start.idle + own) / (end.total - start.total) * cores
    return min(cores, idle), end


def idle_cores(window_s: float = SAMPLE_S) -> float | None:
    """Cores not used by other processes over the next ``window_s`` seconds."""
    return idle_cores_since(read_load(), window_s)[0]


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
    _since: LoadReading | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.fixed is not None and self.fixed < 1:
            raise SRBenchError(f"--threads must be >= 1, got {self.fixed}")
        if self.fixed is None:
            # The first window opens now, so that the run's own start-up (store, environment,
            # model) overlaps it instead of a 0.1 s sleep before the first image.
            self._since = read_load()

    def update(self) -> int:
        """Set torch's thread count (re-sampling the load when due); returns it."""
        now = time.monotonic()
        if self.fixed is not None:
            wanted = self.fixed
        elif now - self._checked >= self.interval_s:
            # the load over the whole window since the last sample (at least SAMPLE_S)
            self.idle, self._since = idle_cores_since(self._since)
            self._checked = time.monotonic()
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
