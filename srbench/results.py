"""The result store: one JSON line per measured (model, weights, scale, dataset, image, protocol).

Format: JSON Lines (``pandas.read_json(path, lines=True)`` reads it; docs/store.md). Each batch of records is
written to a file opened with ``O_APPEND`` while holding an exclusive ``flock``, then ``fsync``-ed,
so two runs writing at once interleave whole lines; readers take a shared ``flock`` and never see
half a batch. A run killed with ``kill -9`` leaves at most one torn last line, which the loader
skips and the next writer seals with a newline. Resuming a run skips every key already in the
store; ``--force`` appends newer records, and the last record of a key wins
(``tests/test_results.py`` checks all of this, a real ``kill -9`` included).

The record's fields, its key and its metrics are defined in :mod:`srbench.schema`. Lines that
are not valid records (``{}``, a string where a number belongs, NaN scores) are skipped and
counted with their line numbers (:attr:`ResultStore.invalid`), never entering a table.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srbench.errors import SRBenchError
from srbench.files import writable_target
from srbench.schema import KEY_FIELDS, invalid_reason, metric_names, record_key, shown_records

if TYPE_CHECKING:  # imported where used: pandas costs every run's start-up about 0.3 s
    import pandas as pd

RECORDS_FILE = "records.jsonl"
# Written by `srbench profile` (srbench.cli.profile) next to the records.
PROFILE_FILE = "profile.jsonl"
__all__ = ["KEY_FIELDS", "RECORDS_FILE", "ResultStore", "record_key"]


def append_jsonl(
    path: str | Path,
    records: Iterable[dict],
    *,
    unchanged_since: tuple[int, int] | None = None,
    durable: bool = True,
) -> tuple[int, int] | None:
    """Append records, one JSON line each, atomically with respect to other writers.

    The whole batch goes out in ``write`` calls made while holding an exclusive ``flock`` on a
    file opened with ``O_APPEND``, then ``fsync`` (``durable=False``: not yet -- the records are
    then safe from a killed process, being in the kernel's page cache, and :func:`sync_file`
    later makes them safe from a power cut); a torn last line left by a killed writer is sealed
    with a newline first, so it can never glue onto the new records.

    Returns the file's (size, mtime) signature after the write when, under the lock, the file
    still had the signature ``unchanged_since`` before it (no other writer in between), else
    None: a caller tracking the file then re-reads only when someone else wrote.
    """
    data = "".join(json.dumps(r, sort_keys=True, allow_nan=True) + "\n" for r in records)
    if not data:
        return None
    payload = data.encode()
    path = writable_target(path)  # never append to a device, pipe or folder
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = os.fstat(fd)
        size = before.st_size
        ours = unchanged_since is not None and unchanged_since in (
            (before.st_size, before.st_mtime_ns),
            (0, 0),  # the file did not exist: created empty just now
        )
        if unchanged_since == (0, 0) and size:
            ours = False
        # A writer killed mid-line leaves no trailing newline: seal the torn line.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            payload = b"\n" + payload
        view = memoryview(payload)
        try:
            while view:  # os.write may write less than asked (signals, huge batches)
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
            after = os.fstat(fd)
        except OSError as exc:
            # Full disk / file-size limit mid-batch: take the partial batch back out, so the
            # store never holds half a record; the caller reports the error once.
            os.ftruncate(fd, size)
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return (after.st_size, after.st_mtime_ns) if ours else None


def sync_file(path: str | Path) -> None:
    """Flush ``path``'s written data to disk (``fsync``), if it exists."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | Path) -> list[dict]:
    """The JSON objects of a JSON-lines file in file order (``[]`` if it does not exist).

    Torn or corrupt lines (a writer killed mid-line) and lines that are not objects are skipped.
    The file is read under a shared ``flock``, so a batch another :class:`ResultStore` writer is
    appending is seen whole or not at all.
    """
    return [record for _, record in _read_lines(path) if isinstance(record, dict)]


def _read_lines(path: str | Path) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) of every line that parses; torn lines (a writer killed
    mid-line, sealed by the next writer) are left out."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            data = fh.read()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    out = []
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError or UnicodeDecodeError: a torn line
            continue
        out.append((number, record))
    return out


def migrate_record(record: dict) -> dict:
    """Read a record written by an older srbench as today's code would have written it.

    Before the ``NAME.official`` tag existed, results of the authors' weights were stored under
    the plain name (``idn`` with the official file's sha256); they are renamed here, on read, so
    an old store loads with every number unchanged and the authors' weights and srbench's own
    training are never mixed under one name (``tests/test_results.py``). Likewise results of a
    file a budget tag pins (``drn_s`` with the zoo's 1k file, which ``srbench ladder ship``
    replaced by the ladder's top rung) get that tag's name (``drn_s.zoo1k_cosine``). The committed store no
    longer needs it (``tools/migrate_store.py`` rewrote it with today's names, so plain pandas
    reads it right); it stays for users' stores written by an older srbench (docs/store.md).
    """
    from srbench.errors import ModelNotFoundError
    from srbench.registry import get_card

    name = record.get("model")
    if not isinstance(name, str) or "." in name:
        return record
    try:
        card = get_card(name)
    except ModelNotFoundError:
        return record
    official = card.official_weights.get(record.get("scale"))  # type: ignore[arg-type]
    if official is not None and official.sha256 == record.get("weights_sha256"):
        return {**record, "model": f"{card.name}.official"}
    from srbench.pretrained import recorded_tag

    scale, sha = record.get("scale"), record.get("weights_sha256")
    tag = recorded_tag(card.name, scale, sha) if isinstance(scale, int) and sha else None
    return {**record, "model": f"{card.name}.{tag}"} if tag else record


class InvalidRecordsWarning(UserWarning):
    """Lines of a store that are not valid records were skipped (the message lists them)."""


def current_code(model: str) -> str | None:
    """The ``code_sha256`` results of ``model`` (a stored name) get from the code as it is now;
    None for a model that is not registered here (a plugin no longer installed, ``NAME@ref``'s
    suffix aside)."""
    from srbench.codehash import model_code_sha256
    from srbench.errors import SRBenchError

    try:
        return model_code_sha256(model.split(".")[0].split("@")[0])
    except SRBenchError:
        return None


@dataclass
class ResultStore:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.invalid: list[tuple[int, str]] = []

    @property
    def records_path(self) -> Path:
        return self.root / RECORDS_FILE

    def append(
        self,
        records: Iterable[dict],
        *,
        unchanged_since: tuple[int, int] | None = None,
        durable: bool = True,
    ) -> tuple[int, int] | None:
        """Append records to the store (see :func:`append_jsonl`); a record that is not valid
        (a score that cannot exist) is refused, naming it, and nothing of the batch is written."""
        records = list(records)
        for record in records:
            reason = invalid_reason(record)
            if reason is not None:
                what = f"{record.get('model')} x{record.get('scale')} on {record.get('dataset')}/{record.get('image')}"
                raise SRBenchError(
                    f"{self.records_path}: refusing to store {what}: {reason}; nothing was "
                    "written (the model or the scoring produced a value that cannot exist)"
                )
        return append_jsonl(
            self.records_path, records, unchanged_since=unchanged_since, durable=durable
        )

    def sync(self) -> None:
        """Make every record appended with ``durable=False`` survive a power cut."""
        sync_file(self.records_path)

    def iter_records(self) -> list[dict]:
        """Every valid record in file order; torn, corrupt or invalid lines are skipped and
        listed in :attr:`invalid` as (line number, reason)."""
        records, invalid = [], []
        for number, record in _read_lines(self.records_path):
            reason = invalid_reason(record)
            if reason is None:
                records.append(migrate_record(record))
            else:
                invalid.append((number, reason))
        self.invalid = invalid
        if invalid:
            import warnings

            warnings.warn(self.invalid_summary() or "", InvalidRecordsWarning, stacklevel=2)
        return records

    def invalid_summary(self) -> str | None:
        """One line naming the skipped lines of the last read, or None when there were none."""
        if not self.invalid:
            return None
        shown = ", ".join(f"{n} ({why})" for n, why in self.invalid[:5])
        more = f" and {len(self.invalid) - 5} more" if len(self.invalid) > 5 else ""
        return (
            f"{self.records_path}: skipped {len(self.invalid)} invalid line(s): line {shown}{more}"
        )

    def latest_records(self) -> list[dict]:
        """One record per key: the last one written (``--force`` re-runs append newer ones)."""
        latest: dict[tuple, dict] = {}
        for record in self.iter_records():
            latest[record_key(record)] = record
        return list(latest.values())

    def shown_records(self) -> list[dict]:
        """One record per (entry, image), as tables and means use them
        (:func:`srbench.schema.shown_records`): of the code as it is now where an entry has
        results of it (going back to older code shows its results again), else the newest."""
        return shown_records(self.latest_records(), current=current_code)

    def signature(self) -> tuple[int, int]:
        """(size, mtime in ns) of the records file: changes whenever a writer appends."""
        try:
            st = self.records_path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_size, st.st_mtime_ns)

    def changed_since(self, signature: tuple[int, int]) -> bool:
        return self.signature() != signature

    def keys(self) -> set[tuple]:
        return {record_key(r) for r in self.iter_records()}

    def load(self) -> pd.DataFrame:
        """The shown records as a DataFrame (one row per entry and image)."""
        import pandas as pd

        records = self.shown_records()
        if not records:
            return pd.DataFrame(columns=[*KEY_FIELDS, *metric_names()])
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
    # How many of the images are verified copies of the standard benchmark's (a mean over any
    # other copy is not the benchmark's number: srbench.pareto.mean_problem); records made
    # before the flag existed count as verified, as the report always read them.
    flag = frame["standard_benchmark"] if "standard_benchmark" in frame.columns else None
    frame = frame.assign(verified=True if flag is None else ~flag.eq(False))
    # A metric some records lack (written before it existed) is "not measured" (NaN) for the
    # group: a mean over part of the images is no benchmark number.
    metrics = [name for name in metric_names() if name in frame.columns]
    agg: dict[str, Any] = {name: "mean" for name in metrics}
    agg["image"] = "count"
    agg["verified"] = "sum"
    if "latency_ms" in frame.columns:
        agg["latency_ms"] = "median"
    grouped = frame.groupby(group, dropna=False)
    out = grouped.agg(agg).reset_index()
    counts = grouped[metrics].count().reset_index(drop=True) if metrics else None
    for name in metric_names():
        if name not in frame.columns:
            out[name] = math.nan
        elif counts is not None:
            out.loc[counts[name] < out["image"], name] = math.nan
    return out.rename(columns={"image": "images"})


def process_start(pid: int) -> str | None:
    """``<boot id>:<start time in clock ticks since boot>`` of process ``pid`` (Linux ``/proc``),
    or None where it cannot be read: a pid together with this names one process, never a later
    one the kernel gave the same pid."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may hold spaces, so split after its ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


class Claims:
    """Which results a running ``srbench run`` is computing right now, so that a second,
    identical run started meanwhile waits for them instead of computing every image twice.

    A claim is a file ``<store>/.claims/<key hash>.claim`` holding its owner's pid, the process's
    start (:func:`process_start`) and what it computes, put in place whole (``os.link``, which
    fails if the claim exists). A claim whose owner is gone (killed) is stale and taken over --
    also when its pid now belongs to another process, which has another start time.
    """

    def __init__(self, root: str | Path) -> None:
        self.dir = Path(root) / ".claims"

    def _path(self, key: tuple) -> Path:
        import hashlib

        return self.dir / f"{hashlib.sha1(repr(key).encode()).hexdigest()[:24]}.claim"

    @staticmethod
    def _alive(pid: int, start: str | None = None) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return start is None or process_start(pid) in (start, None)

    @staticmethod
    def read(path: Path) -> dict[str, Any] | None:
        """The claim in ``path`` (``{"pid", "start", "what"}``), or None if there is none."""
        try:
            text = path.read_text()
        except OSError:
            return None
        try:
            claim = json.loads(text)
        except ValueError:
            claim = None
        if isinstance(claim, int):  # written by older srbench: the pid alone
            claim = {"pid": claim}
        return claim if isinstance(claim, dict) and isinstance(claim.get("pid"), int) else {}

    def holder(self, key: tuple) -> dict[str, Any] | None:
        """The live claim on ``key`` by another process, or None."""
        claim = self.read(self._path(key))
        if not claim or claim["pid"] == os.getpid():
            return None
        return claim if self._alive(claim["pid"], claim.get("start")) else None

    def acquire(self, key: tuple, what: str = "") -> Path | None:
        """The claim's path, or None while another live process holds it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        mine = {"pid": os.getpid(), "start": process_start(os.getpid()), "what": what}
        for _ in range(3):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(mine))
            try:
                os.link(tmp, path)  # whole or not at all: no reader sees an empty claim
            except FileExistsError:
                claim = self.read(path)
                if claim is None:
                    continue  # released meanwhile
                pid = claim.get("pid", 0)
                if pid and pid != os.getpid() and self._alive(pid, claim.get("start")):
                    return None
                path.unlink(missing_ok=True)  # stale: its owner died, or the pid was reused
                continue
            finally:
                tmp.unlink(missing_ok=True)
            return path
        return None

    @staticmethod
    def release(path: Path | None) -> None:
        if path is not None:
            path.unlink(missing_ok=True)


def load_results(root: str | Path = "results") -> pd.DataFrame:
    """Load the store under ``root`` as a DataFrame."""
    return ResultStore(Path(root)).load()
