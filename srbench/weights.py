"""Weights files: safetensors only, strict loading, deterministic conversion of official weights.

srbench reads and writes model weights as safetensors files carrying three metadata entries:

* ``srbench.model``: the registered model name the tensors belong to;
* ``srbench.scales``: comma-separated scales they serve ("2", or "2,3,4" for a scale-agnostic model
  such as VDSR);
* ``srbench.format``: "1".

Pickled checkpoints (``.pth``/``.pt``/...) are never loaded by :func:`load_weights`: unpickling can
run arbitrary code. They are converted once by :func:`convert_torch_checkpoint`, the only place
that calls ``torch.load``, and only with ``weights_only=True``. Loading is always strict: every
missing, unexpected or mis-shaped tensor is an error naming the tensor.

Files written here are byte-for-byte deterministic (sorted metadata and tensors, no timestamps),
so the sha256 of a converted official checkpoint can be pinned in a model card.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import WeightsError

FORMAT_VERSION = "1"
META_MODEL = "srbench.model"
META_SCALES = "srbench.scales"
META_FORMAT = "srbench.format"

ENV_WEIGHTS = "SRBENCH_WEIGHTS"
CACHE_DIR = Path("~/.cache/srbench/weights")

PICKLE_SUFFIXES = (".pth", ".pt", ".pkl", ".pickle", ".ckpt", ".tar", ".bin")

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_MAX_LISTED = 20


# ----------------------------------------------------------------------------------------------
# Hashing and low-level file handling
# ----------------------------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _convert_hint(path: Path, model: str = "NAME", scale: int | str = "S") -> str:
    out = path.with_suffix(
        ".srbench.safetensors" if path.suffix == ".safetensors" else ".safetensors"
    )
    return f"`srbench weights convert {path} --model {model} --scale {scale} -o {out.name}`"


def _looks_pickled(path: Path, head: bytes, size: int) -> bool:
    """A pickle by suffix or by magic bytes (unless the bytes are a plausible safetensors start)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8:
        return False  # safetensors: u64 header length, then the JSON header
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip container
        return True
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5  # raw pickle protocol 2-5


def _refuse_pickle(path: Path, model: str = "NAME", scale: int | str = "S") -> WeightsError:
    return WeightsError(
        f"{path}: refusing to load a pickled checkpoint (.pth/.pt): unpickling can run arbitrary "
        f"code, so srbench reads safetensors only; convert it once with "
        f"{_convert_hint(path, model, scale)} (which reads it with "
        f"torch.load(weights_only=True), the only way srbench opens pickles)"
    )


def _read_header(path: Path, model: str = "NAME", scale: int | str = "S") -> dict[str, Any]:
    """The file's metadata, as ``{"__metadata__": {...}}``, after refusing pickles.

    Validation of the file itself (header length, offsets, dtypes, truncation, trailing bytes)
    is the safetensors library's: its error becomes one line with the fix.
    """
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    if not path.is_file():
        raise WeightsError(f"{path}: not a file; pass a .safetensors weights file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if _looks_pickled(path, head, size):
        raise _refuse_pickle(path, model, scale)
    fix = "re-download it or re-create it with `srbench weights convert`"
    if size < 8:
        raise WeightsError(f"{path}: weights file is truncated or empty ({size} bytes); {fix}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        raise WeightsError(
            f"{path}: not a valid safetensors file (truncated or corrupt: {msg}); {fix}"
        ) from None
    return {"__metadata__": metadata}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """srbench metadata of a weights file: ``{"model": str, "scales": tuple[int, ...], "format": str}``.

    Raises :class:`WeightsError` for missing, pickled, truncated or corrupt files and for
    safetensors files srbench did not write (no ``srbench.*`` metadata).
    """
    path = Path(path)
    return _metadata(path, _read_header(path))


def _metadata(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or META_MODEL not in meta or META_SCALES not in meta:
        raise WeightsError(
            f"{path}: safetensors file without srbench metadata (which model and scale it is "
            f"for); convert it with {_convert_hint(path)}"
        )
    fmt = str(meta.get(META_FORMAT, ""))
    if fmt != FORMAT_VERSION:
        raise WeightsError(
            f"{path}: srbench weights format {fmt or '(none)'!r}, this srbench reads format "
            f"{FORMAT_VERSION!r}; re-create the file with `srbench weights convert`"
        )
    try:
        scales = tuple(int(s) for s in str(meta[META_SCALES]).split(","))
    except ValueError:
        raise WeightsError(
            f"{path}: bad srbench.scales metadata {meta[META_SCALES]!r}; re-create the file with "
            f"`srbench weights convert`"
        ) from None
    return {"model": str(meta[META_MODEL]), "scales": scales, "format": fmt}


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def _serialize(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """Deterministic safetensors bytes: sorted metadata, tensors by (alignment, name).

    Written here rather than by ``safetensors.torch.save``: the library serialises the metadata
    in hash-map order, so the same weights can give files with different sha256s, and a card
    could never pin the hash of a converted official file.
    """
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks: list[bytes] = []
    offset = 0
    for name, t in items:
        if t.dtype not in _DTYPES:
            raise WeightsError(
                f"tensor {name!r} has dtype {t.dtype}, which safetensors cannot store"
            )
        data = _tensor_bytes(t)
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def _write_atomic(path: Path, data: bytes) -> None:
    from srbench.files import atomic_write

    atomic_write(path, data)


# ----------------------------------------------------------------------------------------------
# Save / load
# ----------------------------------------------------------------------------------------------


def _scales_str(scale: int | Iterable[int]) -> str:
    scales = [scale] if isinstance(scale, int) else sorted(set(scale))
    if not scales or any(not isinstance(s, int) or s < 1 for s in scales):
        raise ValueError(f"scale must be a positive int or a non-empty set of them, got {scale!r}")
    return ",".join(str(s) for s in scales)


def save_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    model_name: str,
    scale: int | Iterable[int],
) -> str:
    """Write ``model.state_dict()`` (parameters and persistent buffers) as srbench safetensors.

    ``scale`` is the scale the weights serve, or several for a scale-agnostic model (VDSR).
    Returns the sha256 of the written file (deterministic for given tensors and metadata).
    """
    return save_tensors(model.state_dict(), path, model_name=model_name, scale=scale)


def save_tensors(
    tensors: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    model_name: str,
    scale: int | Iterable[int],
    dtype: torch.dtype | None = None,
) -> str:
    """Write tensors as srbench safetensors (floating tensors cast to ``dtype`` if given)."""
    path = Path(path)
    metadata = {
        META_MODEL: model_name,
        META_SCALES: _scales_str(scale),
        META_FORMAT: FORMAT_VERSION,
    }
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    _write_atomic(path, _serialize(tensors, metadata))
    return file_sha256(path)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f" (+{more} more)" if more > 0 else "")


def _strict_load(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], source: Path, what: str
) -> None:
    """``load_state_dict(strict=True)`` with one-line errors listing every mismatch by name."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [
        f"{k} (file {list(tensors[k].shape)}, model {list(expected[k].shape)})"
        for k in sorted(set(expected) & set(tensors))
        if tuple(tensors[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_names(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_names(mismatched)}")
    if problems:
        raise WeightsError(
            f"{source}: weights do not fit {what}: {'; '.join(problems)}; use weights made for "
            f"this architecture (or convert them with `srbench weights convert`)"
        )
    try:
        model.load_state_dict(dict(tensors), strict=True)
    except RuntimeError as exc:
        msg = " ".join(str(exc).split())
        raise WeightsError(f"{source}: weights do not fit {what}: {msg}") from None


def load_weights(model: nn.Module, path: str | os.PathLike[str], *, card: Any, scale: int) -> str:
    """Strictly load an srbench safetensors file into ``model``; returns the file's sha256.

    Refuses pickles, truncated/corrupt files, files for another model or scale, any missing,
    unexpected or mis-shaped tensor, and non-finite values (one NaN gives black images and a
    plausible-looking 7 dB). Half-precision files (the shipped zoo stores fp16) load into the
    model's fp32 tensors.
    """
    path = Path(path)
    meta = _metadata(path, _read_header(path, card.name, scale))
    if meta["model"] != card.name:
        raise WeightsError(
            f"{path}: weights {path.name} are for model {meta['model']}, not {card.name}; pass "
            f"weights made for {card.name}"
        )
    if scale not in meta["scales"]:
        have = "/".join(f"x{s}" for s in meta["scales"])
        raise WeightsError(
            f"{path}: weights {path.name} are for {have}, not x{scale}; pass the "
            f"{card.name} x{scale} weights"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        msg = " ".join(str(exc).split())
        raise WeightsError(
            f"{path}: unreadable safetensors file ({msg}); re-download it or re-create it with "
            f"`srbench weights convert`"
        ) from None
    bad = sorted(k for k, t in tensors.items() if t.is_floating_point() and not t.isfinite().all())
    if bad:
        raise WeightsError(
            f"{path}: tensors with NaN or Inf values: {_names(bad)}; these weights are broken "
            "(a diverged training or a damaged file): use other weights"
        )
    _strict_load(model, tensors, path, f"model {card.name} x{scale}")
    return file_sha256(path)


def shipped_dir() -> Path:
    """The folder inside the srbench package holding the shipped zoo weights."""
    return Path(__file__).resolve().parent / "pretrained"


def weights_dirs() -> list[Path]:
    """Where weights are looked for: ``$SRBENCH_WEIGHTS`` (if set), then the cache."""
    dirs: list[Path] = []
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        dirs.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    dirs.append(CACHE_DIR.expanduser())
    return dirs


ENV_LADDER = "SRBENCH_LADDER_DIR"


def ladder_dir() -> Path:
    """The budget ladder's run folders: ``$SRBENCH_LADDER_DIR``, else ~/.cache/srbench/ladder."""
    return Path(os.environ.get(ENV_LADDER) or "~/.cache/srbench/ladder").expanduser()


def resolve_default_weights(ref: Any, scale: int) -> Path:
    """Path of the weights a model name selects (a :class:`srbench.registry.ModelRef`) for
    ``scale``, verified against the sha256 pinned in the card.

    Shipped zoo weights come from the package (no flag, no variable); the authors' weights
    (``NAME.official``) from ``$SRBENCH_WEIGHTS`` or the cache, where `srbench weights fetch` /
    `srbench weights convert` put them.
    """
    card = ref.card
    wref = ref.weights.get(scale)
    label = f"{ref.key} x{scale}"
    if wref is None:
        if ref.budgeted:
            raise WeightsError(
                f"{label}: no checkpoint of that budget and seed is recorded "
                f"(srbench/pretrained/ladder.json); train it with `srbench ladder train`"
            )
        if ref.tag:
            raise WeightsError(f"{label}: the authors published no x{scale} weights")
        raise WeightsError(
            f"model {card.name} has no srbench weights for x{scale}; pass a safetensors file "
            f"(--weights FILE) or train one with `srbench train`"
        )
    if wref.shipped:
        dirs = [shipped_dir()]
    elif ref.budgeted:  # a ladder rung in its run folder; a replaced zoo file where it was put
        dirs = [ladder_dir(), *weights_dirs()]
    else:
        dirs = weights_dirs()
    for folder in dirs:
        candidate = folder / wref.filename
        if candidate.is_file():
            digest = file_sha256(candidate)
            if wref.sha256 and digest != wref.sha256:
                fix = (
                    "reinstall srbench"
                    if wref.shipped
                    else f"delete it and re-create it with `srbench weights fetch {ref.key}` "
                    f"or `srbench weights convert` from {wref.source}"
                )
                raise WeightsError(
                    f"{candidate}: sha256 {digest} does not match the {label} model card "
                    f"({wref.sha256}); the file is corrupt or not the expected weights: {fix}"
                )
            return candidate
    looked = ", ".join(str(d) for d in dirs)
    if wref.shipped:
        raise WeightsError(
            f"shipped weights {wref.filename} for {label} are missing from {looked}; the srbench "
            "installation is incomplete: reinstall it"
        )
    if ref.budgeted:
        raise WeightsError(
            f"weights {wref.filename} for {label} not found (looked in: {looked}); they are "
            f"{wref.source}"
        )
    target = dirs[-1] / wref.filename
    raise WeightsError(
        f"weights {wref.filename} for {label} not found (looked in: {looked}; set "
        f"${ENV_WEIGHTS} to add a folder); get them with `srbench weights fetch {ref.key}`, or "
        f"`srbench weights convert <official file> -o {target}` from {wref.source}"
        + (f" ({wref.url})" if wref.url else "")
    )


def index_weights(paths: Iterable[str | os.PathLike[str]]) -> dict[tuple[str, int], Path]:
    """Map (model, scale) -> safetensors file, from the metadata srbench writes in each file.

    Two files claiming the same model and scale are an error naming both (never "the last one
    wins").
    """
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found = sorted(path.glob("*.safetensors"))
            if not found:  # never "no weights given": the run would use others silently
                raise WeightsError(
                    f"{path}: no .safetensors weights files in this folder; put srbench weights "
                    "there (`srbench weights convert`) or pass the file itself"
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise WeightsError(f"{path}: weights file not found")
    index: dict[tuple[str, int], Path] = {}
    for file in files:
        meta = read_metadata(file)
        for scale in meta["scales"]:
            key = (meta["model"], scale)
            if key in index and index[key].resolve() != file.resolve():
                raise WeightsError(
                    f"two weights files for {meta['model']} x{scale}: {index[key]} and {file}; "
                    "keep one of them in the folder or pass the file itself"
                )
            index[key] = file
    return index


def unused_weights(
    named: Iterable[str | os.PathLike[str]],
    index: Mapping[tuple[str, int], Path],
    wanted: Iterable[tuple[str, int]],
) -> str | None:
    """Why a weights file or folder the user named holds nothing for the models of a run of
    ``wanted`` (model, scale) pairs (None when each holds something): weights a user named are
    used or refused, never silently replaced by srbench's own."""
    wanted = set(wanted)
    for source in map(Path, named):
        held = sorted(
            key
            for key, file in index.items()
            if file == source or (source.is_dir() and file.parent == source)
        )
        # Weights for a model of the run at another scale are refused by the runner, naming
        # the scales (the more precise message); here: weights for none of the run's models.
        if held and not {m for m, _ in held} & {m for m, _ in wanted}:
            have = ", ".join(f"{m} x{s}" for m, s in held)
            run = ", ".join(sorted({f"{m} x{s}" for m, s in wanted})) or "nothing"
            return (
                f"{source}: weights for {have}, none of which this run uses (it runs {run}); "
                "pass weights made for these models and scales, or run the models they are for"
            )
    return None


__all__ = [
    "file_sha256",
    "index_weights",
    "load_weights",
    "read_metadata",
    "resolve_default_weights",
    "save_weights",
    "unused_weights",
    "weights_dirs",
]
