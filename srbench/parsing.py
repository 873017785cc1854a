"""The one list parser and the one KEY=VALUE parser of command-line values (and of the same
values given to the library as strings or sequences)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from srbench.errors import SRBenchError


def split_list(values: str | Sequence[Any] | None) -> list[str]:
    """``"a, b,,c"`` (or ``["a", "b"]``) -> ``["a", "b", "c"]``: stripped, empty items dropped."""
    if values is None:
        return []
    items = values.split(",") if isinstance(values, str) else values
    return [str(v).strip() for v in items if str(v).strip()]


def int_list(values: str | Sequence[Any] | None, option: str) -> list[int]:
    """``"2,3"`` or ``"x2,x3"`` -> ``[2, 3]``; ``option`` names the value in the error."""
    try:
        return [int(v.lower().removeprefix("x")) for v in split_list(values)]
    except ValueError:
        raise SRBenchError(
            f"{option} {values!r}: give comma-separated integers, e.g. 2,3,4 (or x2,x3,x4)"
        ) from None


def key_values(pairs: Sequence[str] | None, option: str = "--set") -> dict[str, str]:
    """``["data.batch_size=8", ...]`` -> ``{"data.batch_size": "8", ...}`` (values as given)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SRBenchError(
                f"{option} {pair!r}: expected KEY=VALUE, e.g. {option} data.batch_size=8"
            )
        out[key.strip()] = value.strip()
    return out
