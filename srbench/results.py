"""The result store: one JSON line per measured (model, weights, scale, dataset, image, protocol).

Format: JSON Lines (``pandas.read_json(path, lines=True)`` reads it). Each record is written with a
single ``write`` to a file opened with ``O_APPEND`` while holding an exclusive ``flock``, then
``fsync``-ed, so two runs writing at once interleave whole lines, and a run killed with ``kill -9``
leaves at most one torn last line, which the loader skips (and the next writer seals with a
newline). Resuming a run skips every key already in the store.

Record fields (units in the names): ``model, weights_sha256, scale, dataset, image, protocol,
protocol_hash, ensemble, precision, psnr_db, ssim, latency_ms, tiled, hr_sha256, dataset_fingerprint,
device, run_id, srbench_version, git_commit, torch_version, seed, time_utc``.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

RECORDS_FILE = "records.jsonl"
KEY_FIELDS = (
    "model",
    "weights_sha256",
    "scale",
    "dataset",
    "image",
    "protocol",
    "protocol_hash",
    "ensemble",
    "precision",
)


def record_key(record: dict) -> tuple:
    return tuple(record.get(f) for f in KEY_FIELDS)


@dataclass
class ResultStore:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def records_path(self) -> Path:
        return self.root / RECORDS_FILE

    def append(self, records: Iterable[dict]) -> None:
        lines = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in records)
        if not lines:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size:
                # A writer killed mid-line leaves no trailing newline: seal the torn line.
                with open(self.records_path, "rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        lines = "\n" + lines
            os.write(fd, lines.encode())
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def iter_records(self) -> list[dict]:
        if not self.records_path.is_file():
            return []
        records = []
        with open(self.records_path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn line from an interrupted writer
        return records

    def latest_records(self) -> list[dict]:
        """One record per key: the last one written (``--force`` re-runs append newer ones)."""
        latest: dict[tuple, dict] = {}
        for record in self.iter_records():
            latest[record_key(record)] = record
        return list(latest.values())

    def keys(self) -> set[tuple]:
        return {record_key(r) for r in self.iter_records()}

    def load(self) -> pd.DataFrame:
        """All current records as a DataFrame (one row per key)."""
        records = self.latest_records()
        if not records:
            return pd.DataFrame(columns=[*KEY_FIELDS, "psnr_db", "ssim"])
        return pd.DataFrame.from_records(records)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (model, weights, protocol, dataset, scale, ...) means of per-image PSNR/SSIM."""
    if frame.empty:
        return frame
    group = [
        c
        for c in (
            "protocol",
            "protocol_hash",
            "model",
            "weights_sha256",
            "ensemble",
            "precision",
            "dataset",
            "scale",
        )
        if c in frame.columns
    ]
    agg = {"psnr_db": "mean", "ssim": "mean", "image": "count"}
    if "latency_ms" in frame.columns:
        agg["latency_ms"] = "median"
    out = frame.groupby(group, dropna=False).agg(agg).reset_index()
    return out.rename(columns={"image": "images"})


def load_results(root: str | Path = "results") -> pd.DataFrame:
    """Load the store under ``root`` as a DataFrame."""
    return ResultStore(Path(root)).load()
