"""Parameter and MAC counts cached per model code, scale and size, across result stores.

Counting traces the model (fvcore) and cross-checks it with ``FlopCounterMode``, whose first use
imports ``torch._dynamo``: about 5 s of a 10 s cold ``srbench run --models bicubic --datasets set5
--scales 2`` on a 2-core CPU. The counts depend only on the model's code, the scale, the size and
the counting code, so they are kept in ``<cache>/costs/`` under a key hashing exactly those: a
fresh store reuses them, and an edit to the architecture (or to the counter) counts afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from functools import cache
from importlib import import_module, metadata
from pathlib import Path
from types import ModuleType
from typing import Any

# How the counts are made: the MAC handles, the counting and extrapolation, sizes, records.
COUNTER_MODULES = (
    "srbench.profiling.ops",
    "srbench.profiling.costs",
    "srbench.profiling.sizes",
    "srbench.profiling.records",
    "srbench.imresize",
)


def _source_digest(module: ModuleType) -> str:
    """The module's code as ``code_sha256`` counts it (comments and docs leave it unchanged)."""
    from srbench.codehash import module_digest

    digest = module_digest(module.__name__)
    if digest is None:  # no source (a compiled plugin): its version stands in
        return f"{module.__name__}@{getattr(module, '__version__', 'unknown')}"
    return digest


@cache
def _version(distribution: str) -> str:
    return metadata.version(distribution)


# What a latency depends on besides the model code and torch: the timing and the precision
# modes (a fix to the MAC counter leaves a latency current).
TIMING_MODULES = (
    "srbench.profiling.latency",
    "srbench.profiling.records",
    "srbench.precision",
    "srbench.inference",
    "srbench.threads",
)


def _code_modules(origin: str, tools: tuple[str, ...] = COUNTER_MODULES) -> list[ModuleType]:
    """The model's module and the modules of its own package or srbench whose objects it uses
    (EDSR's upsampler inside DRN, the bicubic matrices), plus ``tools``: the measuring code."""
    module = import_module(origin)
    own = (origin.split(".")[0], "srbench")
    names = {origin, *tools}
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", "")
        if isinstance(name, str) and name.split(".")[0] in own and name in sys.modules:
            names.add(name)
    return [sys.modules.get(n) or import_module(n) for n in sorted(names)]


def _key(model: str, scale: int, size: str, tools: tuple[str, ...], versions: tuple) -> str:
    from srbench.registry import model_origin

    parts = [model, str(scale), size]
    parts += [
        f"{m.__name__}:{_source_digest(m)}" for m in _code_modules(model_origin(model), tools)
    ]
    parts += [f"{d}=={_version(d)}" for d in versions]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def cost_key(model: str, scale: int, size: str) -> str:
    """The cache key of ``model`` x``scale`` counted at ``size``: its code, torch and fvcore."""
    return _key(model, scale, size, COUNTER_MODULES, ("torch", "fvcore"))


def latency_key(model: str, scale: int, size: str) -> str:
    """What a latency of ``model`` x``scale`` at ``size`` was measured with: the model code, the
    timing code and torch."""
    return _key(model, scale, size, TIMING_MODULES, ("torch",))


def current_keys(model: str, scale: int, size: str) -> tuple[str | None, str | None]:
    """(``cost_key``, ``latency_key``) of the code as it is now; (None, None) for a model that
    is not registered here (a plugin no longer installed) or whose code cannot be read."""
    try:
        return cost_key(model, scale, size), latency_key(model, scale, size)
    except Exception:  # a plugin srbench cannot import or inspect: its newest record stands
        return None, None


def cached_counts(model: str, scale: int, sizes: list[str], cache_dir: Path) -> list[dict]:
    """Counting-only profile records of ``model`` x``scale`` at ``sizes``: from ``cache_dir``
    where counted before with the same code, else counted now and cached. Each carries its
    ``cost_key``, so a store can tell counts of the code as it is now from older ones."""
    from srbench.profiling import profile_model

    records: list[dict[str, Any]] = []
    missing: dict[str, tuple[Path, str]] = {}
    for size in sizes:
        key = cost_key(model, scale, size)
        path = cache_dir / f"{model}-x{scale}-{key}.json"
        try:
            records.append({**json.loads(path.read_text()), "cost_key": key})
        except (OSError, ValueError):
            missing[size] = (path, key)
    if missing:
        counted = profile_model(model, scale, sizes=list(missing), measure=False)
        for record, (path, key) in zip(counted, missing.values(), strict=True):
            record["cost_key"] = key
            _write(path, record)
        records += counted
    return records


def _write(path: Path, record: dict) -> None:
    from srbench.files import atomic_write

    with contextlib.suppress(OSError):  # a read-only cache only costs the next store a recount
        atomic_write(path, json.dumps(record) + "\n")
