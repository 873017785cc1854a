"""Devices and OS-level faults: turned into one-line errors where they are first met.

:func:`resolve_device` is the one place a ``--device`` string becomes a ``torch.device`` that
exists here (:func:`requested_device`: one that may be absent, for work that records a missing GPU
as "not measured" rather than failing);
:func:`os_error_message` is the one place an ``OSError`` (full disk, read-only store, a file
where a folder belongs, ...) becomes a message naming the path and the fix. The CLI calls it
for any ``OSError`` that reaches it, so no command needs its own handler.
"""

from __future__ import annotations

import errno

import torch

from srbench.errors import SRBenchError


class DeviceError(SRBenchError):
    """A device that does not exist on this machine or is not supported."""


def _parsed(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a ``torch.device``, whether or not it exists here."""
    text = str(device).strip().lower()
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    return dev


def requested_device(device: str | torch.device) -> torch.device:
    """The device asked for: :func:`resolve_device`'s where this machine has CUDA; a CUDA
    request on a machine without any is returned unchecked (the caller reports what needs the
    GPU as not measured). An unknown device, or a GPU index this machine lacks, is an error."""
    dev = _parsed(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        return dev
    return resolve_device(dev)


def resolve_device(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` -> a usable ``torch.device``, or a one-line error."""
    dev = _parsed(device)
    if dev.type == "cpu":
        return dev
    if not torch.cuda.is_available():
        raise DeviceError(
            f"--device {device}: this machine has no usable CUDA GPU (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use --device cpu"
        )
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise DeviceError(
            f"--device {device}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})"
        )
    return dev


_FIXES = {
    errno.ENOSPC: "the disk is full: free space there or write somewhere else",
    errno.EDQUOT: "the disk quota is exhausted: free space or write somewhere else",
    errno.EFBIG: "the file-size limit was reached (see `ulimit -f`): raise it or write elsewhere",
    errno.EROFS: "the file system is read-only: choose a writable folder (e.g. --results-dir)",
    errno.EACCES: "permission denied: fix the permissions or choose another folder",
    errno.EPERM: "operation not permitted: fix the permissions or choose another folder",
    errno.ENOTDIR: "a path component is a file where a folder is expected: rename or remove it",
    errno.EISDIR: "it is a folder where a file is expected: rename or remove it",
    errno.ELOOP: "it is a symbolic link loop: remove the link",
    errno.ENAMETOOLONG: "the path is too long for the file system: choose a shorter one",
    errno.ENOENT: "it does not exist: check the path",
    errno.EEXIST: "it is a file where a folder is expected (or in the way): rename or remove it",
}


def os_error_message(exc: OSError) -> str:
    """One line: the path, what went wrong and the fix."""
    where = exc.filename or "(unknown path)"
    if exc.filename2:
        where = f"{exc.filename} -> {exc.filename2}"
    fix = _FIXES.get(exc.errno or -1, "")
    what = exc.strerror or type(exc).__name__
    return f"{where}: {what}" + (f"; {fix}" if fix else "")
