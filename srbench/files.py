"""Every file srbench writes goes through here: atomically, and only onto a regular file.

:func:`atomic_path` hands a writer (``Path.write_text``, PIL, matplotlib, ``torch.save``) a
temporary file in the target's own folder, then ``fsync``-s it and ``os.replace``-s it over the
target, so a reader -- or a later run after ``kill -9`` -- sees the old file or the new one,
never half of one. ``durable=False`` keeps the atomic swap but skips both ``fsync`` calls: for
files whose damage is detected and repaired on read (the LR cache, verified by the digest it carries),
where a power cut may lose them but never makes them wrong. :func:`writable_target` refuses an existing path that is not a regular file
(a device such as ``/dev/full``, a folder, a pipe): ``os.replace`` would swap a device node for a
file. An ``OSError`` raised while writing names the target, never the temporary file or no file
at all (``os.write`` errors carry no path).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from srbench.errors import SRBenchError

__all__ = [
    "atomic_path",
    "atomic_write",
    "named_os_error",
    "read_json_object",
    "writable_target",
]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def writable_target(path: str | os.PathLike[str]) -> Path:
    """``path`` (a symbolic link: the file it points to) if srbench may write it: a new path or
    an existing regular file; anything else is a one-line error."""
    target = Path(path)
    try:
        info = target.stat()  # follows links: a link to /dev/full is a device
    except (FileNotFoundError, NotADirectoryError):
        return target  # new (or its folder is missing: the write names that)
    if not stat.S_ISREG(info.st_mode):
        raise SRBenchError(
            f"{target}: it is {_kind(info.st_mode)}, not a regular file; srbench writes only a new "
            "path or over a regular file: choose another output path"
        )
    return target.resolve() if target.is_symlink() else target


def named_os_error(exc: OSError, path: str | os.PathLike[str], tmp: Path | None = None) -> OSError:
    """``exc`` naming ``path`` when it names no file or only the temporary one."""
    if exc.filename is not None and (tmp is None or str(exc.filename) != str(tmp)):
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, the
    temporary file is flushed to disk (unless ``durable`` is False) and replaces ``path`` in one
    step. On an error nothing is left behind and ``path`` is unchanged."""
    target = writable_target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise named_os_error(exc, target) from None
    os.close(fd)
    tmp = Path(name)
    try:
        mode = target.stat().st_mode & 0o7777 if target.exists() else _new_file_mode()
        os.chmod(tmp, mode)  # mkstemp makes 0600; keep the file's (or the umask's) permissions
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, target)
        if durable:
            _fsync(target.parent)  # the rename itself survives a power cut
    except OSError as exc:
        raise named_os_error(exc, target, tmp) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_move(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Rename ``src`` to ``dst`` (same folder) in one step, replacing ``dst``; the rename is
    flushed to disk. Returns ``dst``."""
    target = writable_target(dst)
    try:
        os.replace(src, target)
        _fsync(target.parent)
    except OSError as exc:
        raise named_os_error(exc, target) from None
    return target


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, durable: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns the path written."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """The JSON object in ``path``, or a one-line error naming it and ``fix`` (a file torn by a
    kill, or damaged, never becomes a traceback)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        info = None
    if not isinstance(info, dict):
        raise SRBenchError(f"{path}: torn or damaged (not a JSON object); {fix}")
    return info
