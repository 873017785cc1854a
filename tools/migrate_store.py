#!/usr/bin/env python
"""Rewrite a result store so that a plain reader sees what srbench's loader sees.

    python tools/migrate_store.py results/records.jsonl [MORE ...] [--check]

Idempotent: a migrated store is left byte for byte as it is. Under the store's exclusive lock
(the one every srbench writer takes, so a concurrent ``srbench run`` waits and then appends to
the migrated file), each valid record is brought to today's form:

* **old names**: results of the authors' weights stored before the ``NAME.official`` tag under
  the plain name (``idn`` with the official file's sha256) get their current name
  (:func:`srbench.results.migrate_record`, which srbench's loader still applies on read to users'
  stores that were never migrated); likewise results of a file a budget tag pins, stored under
  the plain name: after ``srbench ladder ship`` replaced a zoo file, ``drn_s`` records of the
  old file become ``drn_s.zoo1k_cosine`` (the tag ``srbench/pretrained/ladder.json`` keeps for
  it), so the plain name holds only the shipped ladder rung's results;
* **superseded records**: an earlier record of a key that a later one replaces (two runs
  computing one image, ``--force``) is dropped -- the loader keeps the last of a key, and a plain
  ``groupby().mean()`` would count that image twice;
* **code_dirty** (:func:`srbench.provenance.code_dirty`) is added where missing, from
  ``git_commit``: ``false`` for a clean commit, ``null`` (not known) for ``+dirty`` -- before the
  field existed the suffix also counted changes to the store itself, so it cannot tell whether the
  code was changed -- and for a record made outside a git checkout.

Lines that are not valid records (torn, corrupt) are kept as they are, for the loader to skip and
count. Unchanged records keep their bytes. ``--check`` writes nothing and exits 1 when a store
needs migrating.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

_CLEAN_COMMIT = re.compile(r"[0-9a-f]{40}")


def code_dirty_of(git_commit: object) -> bool | None:
    """What an old record's ``git_commit`` says about ``code_dirty``: False for a clean commit,
    None (not known) otherwise."""
    return False if isinstance(git_commit, str) and _CLEAN_COMMIT.fullmatch(git_commit) else None


def migrate_lines(lines: list[bytes]) -> tuple[list[bytes], Counter]:
    """The migrated lines of a store (without newlines) and what changed, counted."""
    from srbench.results import migrate_record
    from srbench.schema import invalid_reason, record_key

    changes: Counter = Counter()
    out: list[tuple[bytes, tuple | None]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            out.append((line, None))  # a torn line: the loader skips it, so does this
            continue
        if invalid_reason(record) is not None:
            out.append((line, None))
            continue
        new = migrate_record(record)
        if new["model"] != record["model"]:
            changes[f"renamed {record['model']} -> {new['model']}"] += 1
        if "code_dirty" not in new:
            new = {**new, "code_dirty": code_dirty_of(new.get("git_commit"))}
            changes["code_dirty added"] += 1
        text = line if new == record else json.dumps(new, sort_keys=True, allow_nan=True).encode()
        out.append((text, record_key(new)))
    last = {key: index for index, (_, key) in enumerate(out) if key is not None}
    kept = []
    for index, (text, key) in enumerate(out):
        if key is not None and last[key] != index:
            changes["superseded records dropped"] += 1
            continue
        kept.append(text)
    return kept, changes


def migrate_store(path: Path, *, check: bool = False) -> Counter:
    """Migrate ``path`` in place (see the module docstring); returns what changed."""
    from srbench.errors import SRBenchError

    if not path.is_file():
        raise SRBenchError(f"{path}: no such store file; pass a records.jsonl")
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read()
        lines, changes = migrate_lines(data.split(b"\n"))
        new = b"".join(line + b"\n" for line in lines)
        if new != data and not check:
            # Rewritten in place under the writers' lock (a rename would leave a waiting
            # writer appending to the old file); git holds the committed store's old version.
            os.lseek(fd, 0, os.SEEK_SET)
            view = memoryview(new)
            while view:
                view = view[os.write(fd, view) :]
            os.ftruncate(fd, len(new))
            os.fsync(fd)
        if new != data and not changes:
            changes["lines normalised (blank lines, final newline)"] += 1
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="+", type=Path, help="records.jsonl files (or folders)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if needed")
    args = parser.parse_args(argv)
    from srbench.errors import SRBenchError

    needed = False
    for store in args.stores:
        path = store / "records.jsonl" if store.is_dir() else store
        try:
            changes = migrate_store(path, check=args.check)
        except SRBenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        needed |= bool(changes)
        what = "; ".join(f"{k}: {v}" for k, v in sorted(changes.items())) or "already migrated"
        verb = "needs migrating" if args.check and changes else "migrated"
        print(f"{path}: {verb if changes else 'nothing to do'} ({what})")
    return 1 if args.check and needed else 0


if __name__ == "__main__":
    sys.exit(main())
