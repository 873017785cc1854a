"""Foreign weights files into srbench safetensors: the file formats (the only place that reads them).

``srbench weights convert FILE`` detects the format from the file's bytes, not its name, and
reads it into named tensors:

* **Caffe** ``.caffemodel``: a binary ``NetParameter`` protobuf, read by the small wire-format
  reader below (no Caffe, no protobuf schema compiler): ``<layer>.weight`` is blob 0 and
  ``<layer>.bias`` blob 1, in Caffe's layout, which for ``Convolution`` ([out, in/groups, kh, kw])
  and ``Deconvolution`` ([in, out, kh, kw]) is PyTorch's: no kernel is flipped or transposed. Each
  layer's convolution stride is kept (:attr:`ForeignFile.strides`).
* **MATLAB v5** ``.mat`` through SciPy, the MatConvNet-style struct ``model`` with cell arrays
  ``weight`` (MATLAB layout [kh, kw, in, out] -> PyTorch [out, in, kh, kw] by the permutation
  (3, 2, 0, 1); the spatial axes are *not* swapped) and ``bias``, read as ``conv{i}.weight/bias``.
* **NumPy** ``.npz`` archives of plain arrays (``allow_pickle=False``), keys ``conv1.weight`` or
  ``conv1_w``/``conv1/weight``.
* **PyTorch** checkpoints (zip or legacy pickle), read with ``torch.load(weights_only=True)``
  only; a ``state_dict``/``model``/``params`` wrapper and a ``module.`` prefix are removed.
* **safetensors** files without srbench metadata (a foreign state dict).

Which model a file holds, its scale and how its keys map onto srbench's modules is the model
family's knowledge, not this module's: each card's ``recognise_weights`` (in its
``architectures/<family>.py``) is shown the :class:`ForeignFile` and says whether it is one of its
authors' files (IDN's Caffe layers, VDSR's ``.mat``, the EDSR-PyTorch release's keys and
mean shift). The result is written deterministically (:func:`srbench.weights.save_tensors`), so
converting the authors' file gives the sha256 pinned in the model card -- and a conversion whose
hash contradicts the card (the x3 file converted as x2) says so.
"""

from __future__ import annotations

import fnmatch
import os
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from srbench.errors import WeightsError
from srbench.weights import _read_header, _strict_load, save_weights

FORMATS = ("caffemodel", "mat", "npz", "torch", "safetensors")


@dataclass
class Converted:
    """What a conversion wrote."""

    path: Path
    sha256: str
    model: str
    scales: tuple[int, ...]
    format: str
    note: str = ""  # e.g. the hash differs from the card's pinned official weights


@dataclass(frozen=True)
class ForeignFile:
    """A foreign weights file as its format reads it, before any model's key mapping: what a
    card's ``recognise_weights`` is shown."""

    path: Path
    format: str  # one of FORMATS
    tensors: Mapping[str, torch.Tensor]
    # Caffe: layer name -> the stride its convolution parameters declare (empty otherwise)
    strides: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Recognised:
    """A card's answer for a file it knows: the model, the scale the file itself declares (None
    where it cannot tell) and the tensors under srbench's key names."""

    model: str
    scale: int | None
    tensors: dict[str, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Format detection
# ----------------------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """The file's format from its bytes (suffixes lie: a .pth renamed .safetensors)."""
    with open(path, "rb") as fh:
        head = fh.read(128)
    size = path.stat().st_size
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return "mat"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            raise WeightsError(f"{path}: a damaged zip archive; download it again") from None
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "torch"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch"  # a legacy (non-zip) torch.save pickle
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8:
        return "safetensors"
    try:
        net = parse_caffemodel(path.read_bytes())
    except (ValueError, IndexError, struct.error):
        net = None
    if net and any(layer.blobs for layer in net):
        return "caffemodel"
    raise WeightsError(
        f"{path}: unknown weights format (not a Caffe model, MATLAB .mat, NumPy .npz, PyTorch "
        "checkpoint or safetensors file); pass one of those"
    )


# ----------------------------------------------------------------------------------------------
# Caffe NetParameter: a minimal protobuf wire-format reader
# ----------------------------------------------------------------------------------------------


@dataclass
class CaffeLayer:
    name: str
    type: str
    blobs: list[np.ndarray]
    stride: tuple[int, ...] = ()
    group: int = 1


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): int for varints, bytes otherwise."""
    pos, end = 0, len(buf)
    value: Any
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated message")
        yield number, wire, value


def _packed_ints(wire: int, value: Any) -> list[int]:
    if wire == 0:
        return [value]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


def _blob(buf: bytes) -> np.ndarray:
    """BlobProto: shape (7: BlobShape.dim) or num/channels/height/width (1-4); data (5) or
    double_data (8), packed or not."""
    dims: list[int] = []
    legacy = {1: 1, 2: 1, 3: 1, 4: 1}
    floats: list[bytes] = []
    doubles: list[bytes] = []
    for number, wire, value in _fields(buf):
        if number == 7 and wire == 2:
            for n, w, v in _fields(value):
                if n == 1:
                    dims.extend(_packed_ints(w, v))
        elif number in legacy and wire == 0:
            legacy[number] = value
        elif number == 5:
            floats.append(value)
        elif number == 8:
            doubles.append(value)
    if floats:
        data = np.frombuffer(b"".join(floats), dtype="<f4")
    elif doubles:
        data = np.frombuffer(b"".join(doubles), dtype="<f8").astype(np.float32)
    else:
        data = np.zeros(0, np.float32)
    shape = dims or [legacy[k] for k in (1, 2, 3, 4)]
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"blob of shape {shape} holds {data.size} values")
    return data.reshape(shape).copy()


def _conv_param(buf: bytes) -> tuple[tuple[int, ...], int]:
    stride: list[int] = []
    group = 1
    for number, wire, value in _fields(buf):
        if number == 6:
            stride.extend(_packed_ints(wire, value))
        elif number == 5 and wire == 0:
            group = value
    return tuple(stride), group


def parse_caffemodel(data: bytes) -> list[CaffeLayer]:
    """The layers of a binary ``NetParameter`` (``layer`` = 100, or the old ``layers`` = 2)."""
    layers = []
    for number, wire, value in _fields(data):
        if wire != 2 or number not in (2, 100):
            continue
        v1 = number == 2  # V1LayerParameter: name 4, type 5 (enum), blobs 6, conv param 10
        name_f, type_f, blobs_f, conv_f = (4, 5, 6, 10) if v1 else (1, 2, 7, 106)
        name, kind, group = "", "", 1
        blobs: list[np.ndarray] = []
        stride: tuple[int, ...] = ()
        for n, w, v in _fields(value):
            if n == name_f and w == 2:
                name = v.decode("utf-8", "replace")
            elif n == type_f:
                kind = v.decode("utf-8", "replace") if w == 2 else f"v1:{v}"
            elif n == blobs_f and w == 2:
                blobs.append(_blob(v))
            elif n == conv_f and w == 2:
                stride, group = _conv_param(v)
        layers.append(CaffeLayer(name, kind, blobs, stride, group))
    return layers


def read_caffemodel(path: Path) -> ForeignFile:
    """Tensors named ``<layer>.weight``/``.bias`` and each layer's convolution stride."""
    try:
        layers = parse_caffemodel(path.read_bytes())
    except (ValueError, IndexError, struct.error) as exc:
        raise WeightsError(
            f"{path}: not a readable Caffe model ({exc}); download it again"
        ) from None
    tensors: dict[str, torch.Tensor] = {}
    strides: dict[str, tuple[int, ...]] = {}
    for layer in layers:
        if not layer.blobs:
            continue  # data/loss layers saved from the training net
        tensors[f"{layer.name}.weight"] = torch.from_numpy(layer.blobs[0])
        if len(layer.blobs) > 1:
            tensors[f"{layer.name}.bias"] = torch.from_numpy(layer.blobs[1].reshape(-1))
        if layer.stride:
            strides[layer.name] = layer.stride
    return ForeignFile(path, "caffemodel", tensors, strides)


# ----------------------------------------------------------------------------------------------
# Conversion of official weights
# ----------------------------------------------------------------------------------------------

_SUFFIXES = {
    "_w": "weight",
    "_b": "bias",
    "/weight": "weight",
    "/bias": "bias",
    ":weight": "weight",
    ":bias": "bias",
    ".w": "weight",
    ".b": "bias",
}


def _normalise_key(key: str) -> str:
    if key.endswith((".weight", ".bias")):
        return key
    for suffix, kind in _SUFFIXES.items():
        if key.endswith(suffix):
            return f"{key[: -len(suffix)]}.{kind}"
    return key


def _build(model_name: str, scale: int) -> tuple[nn.Module, Any, tuple[int, ...]]:
    """Model, card, and the scales its weights serve (all card scales sharing one weights file)."""
    from srbench.registry import create_model, get_card

    card = get_card(model_name)
    model = create_model(card.name, scale)
    # One file for several scales where the authors made one (VDSR): all card scales whose
    # official weights share this file.
    refs = card.official_weights or card.weights
    ref = refs.get(scale)
    if ref is None:
        scales: tuple[int, ...] = (scale,)
    else:
        scales = tuple(sorted(s for s, r in refs.items() if r.filename == ref.filename))
    return model, card, scales


def _save_converted(
    model: nn.Module,
    tensors: dict[str, torch.Tensor],
    source: Path,
    card: Any,
    scale: int,
    scales: tuple[int, ...],
    out_path: str | os.PathLike[str],
) -> str:
    ref_dtype = {k: v.dtype for k, v in model.state_dict().items()}
    tensors = {
        k: (v.to(ref_dtype[k]) if k in ref_dtype and v.is_floating_point() else v)
        for k, v in tensors.items()
    }
    _strict_load(model, tensors, source, f"model {card.name} x{scale}")
    return save_weights(model, out_path, model_name=card.name, scale=scales)


def convert_official_npz(
    npz_path: str | os.PathLike[str],
    model_name: str,
    scale: int,
    out_path: str | os.PathLike[str],
) -> str:
    """Convert an official NumPy archive (IDN/VDSR, see reference-weights/README.md); returns
    the sha256 of the written file (deterministic). Keys map one-to-one onto srbench's modules."""
    return convert(npz_path, out_path, model=model_name, scale=scale).sha256


_WRAPPER_KEYS = ("state_dict", "model", "params_ema", "params", "net", "generator")


def _unwrap(obj: Any, source: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                return _unwrap(inner, source)
    raise WeightsError(
        f"{source}: no state dict of tensors found (looked at the top level and under "
        f"{', '.join(_WRAPPER_KEYS)}); save the model's state_dict() and convert that"
    )


def convert_torch_checkpoint(
    pth_path: str | os.PathLike[str],
    model_name: str,
    scale: int,
    out_path: str | os.PathLike[str],
    *,
    drop: Iterable[str] = (),
    rename: Mapping[str, str] | Callable[[str], str] | None = None,
) -> str:
    """Convert a PyTorch checkpoint (or a foreign safetensors file): read with
    ``torch.load(weights_only=True)`` only; a ``state_dict``/``model``/``params`` wrapper and a
    ``module.`` prefix are removed, ``drop`` wildcards discarded, ``rename`` applied; strict."""
    return convert(
        pth_path, out_path, model=model_name, scale=scale, drop=drop, rename=rename
    ).sha256


# ----------------------------------------------------------------------------------------------
# MATLAB v5 (.mat): a MatConvNet-style struct
# ----------------------------------------------------------------------------------------------


def read_mat(path: Path) -> dict[str, torch.Tensor]:
    """``model.weight{i}`` [kh, kw, in, out] and ``model.bias{i}`` -> ``conv{i}.weight/bias``."""
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except (ValueError, OSError, NotImplementedError) as exc:
        msg = " ".join(str(exc).split())
        raise WeightsError(f"{path}: not a readable MATLAB v5 file ({msg})") from None
    model = data.get("model")
    if (
        model is None
        or model.dtype.names is None
        or not {"weight", "bias"} <= set(model.dtype.names)
    ):
        raise WeightsError(
            f"{path}: no struct `model` with fields weight and bias (MatConvNet's layout, as in "
            "VDSR_Official.mat)"
        )
    weights = model["weight"][0, 0].reshape(-1)
    biases = model["bias"][0, 0].reshape(-1)
    tensors = {}
    for i, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
        w = np.asarray(w, dtype=np.float32)
        if w.ndim == 3:  # MATLAB drops a trailing singleton (the last layer's one output)
            w = w[..., None]
        tensors[f"conv{i}.weight"] = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
        tensors[f"conv{i}.bias"] = torch.from_numpy(np.asarray(b, np.float32).reshape(-1).copy())
    return tensors


# ----------------------------------------------------------------------------------------------
# The one entry point
# ----------------------------------------------------------------------------------------------


def _load_torch(source: Path) -> dict[str, torch.Tensor]:
    import pickle

    try:
        # A file object, not the path: torch.load dispatches on a ".safetensors" suffix, and a
        # renamed .pth must be read as what its bytes are.
        with open(source, "rb") as fh:
            obj = torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = " ".join(str(exc).split())[:300]
        raise WeightsError(
            f"{source}: the checkpoint holds more than tensors and plain containers, which "
            f"srbench will not unpickle ({msg}); re-save only model.state_dict() with "
            f"torch.save and convert that"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        msg = " ".join(str(exc).split())[:300]
        raise WeightsError(f"{source}: unreadable PyTorch checkpoint ({msg})") from None
    tensors = _unwrap(obj, source)
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def _load_safetensors(source: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(source), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        msg = " ".join(str(exc).split())
        raise WeightsError(f"{source}: unreadable safetensors file ({msg})") from None


def read_foreign(path: Path, model: str | None = None, scale: int | None = None) -> ForeignFile:
    """The file's tensors as its format (detected from its bytes) holds them."""
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    fmt = detect_format(path)
    if fmt == "caffemodel":
        return read_caffemodel(path)
    if fmt == "mat":
        return ForeignFile(path, fmt, read_mat(path))
    if fmt == "npz":
        return ForeignFile(path, fmt, _read_npz(path))
    if fmt == "torch":
        return ForeignFile(path, fmt, _load_torch(path))
    _read_header(path, model or "NAME", scale or "S")  # refuses a pickle named .safetensors
    return ForeignFile(path, fmt, _load_safetensors(path))


def recognise(foreign: ForeignFile) -> Recognised | None:
    """The one registered model whose card recognises the file as its authors' (None when no
    card does); two cards claiming one file is an error naming both."""
    from srbench.registry import get_card, list_models

    found: list[Recognised] = []
    for name in list_models():
        reader = get_card(name).recognise_weights
        result = reader(foreign) if reader is not None else None
        if result is not None:
            found.append(result)
    if len(found) > 1:
        names = ", ".join(r.model for r in found)
        raise WeightsError(
            f"{foreign.path}: the cards of several models recognise this file ({names}); pass "
            "--model NAME (and make the recognisers stricter: docs/models.md)"
        )
    return found[0] if found else None


def convert(
    source: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    scale: int | None = None,
    drop: Iterable[str] = (),
    rename: Mapping[str, str] | Callable[[str], str] | None = None,
) -> Converted:
    """Convert any supported file (format detected from its bytes) to srbench safetensors.

    ``model``/``scale`` are needed only where the file cannot tell (an ``.npz``, a generic
    state dict, VDSR's one file for all scales); given, they must agree with what it tells.
    ``out_path`` defaults to the weights cache under the card's file name, where
    ``NAME.official`` looks for it.
    """
    path = Path(source)
    foreign = read_foreign(path, model, scale)
    fmt = foreign.format
    found = recognise(foreign)
    found_model, found_scale = (found.model, found.scale) if found else ("", None)
    tensors = dict(found.tensors if found else foreign.tensors)
    patterns = list(drop)
    tensors = {
        k: v for k, v in tensors.items() if not any(fnmatch.fnmatchcase(k, p) for p in patterns)
    }
    if rename is not None:
        mapper = rename if callable(rename) else (lambda k: rename.get(k, k))  # type: ignore[union-attr]
        tensors = {mapper(k): v for k, v in tensors.items()}

    from srbench.registry import get_card

    if model is not None:
        name = get_card(model).name
        if found_model and name != found_model:
            raise WeightsError(
                f"{path}: this {fmt} file holds {found_model} weights, not {name}; drop --model "
                f"or pass --model {found_model}"
            )
    elif found_model:
        name = found_model
    else:
        raise WeightsError(
            f"{path}: a {fmt} file does not say which model it is for; pass --model NAME"
        )
    card = get_card(name)
    if scale is not None and found_scale is not None and scale != found_scale:
        raise WeightsError(
            f"{path}: the file is for x{found_scale} (the file itself says so), not x{scale}; drop "
            f"--scale or pass --scale {found_scale}"
        )
    chosen = scale or found_scale
    if chosen is None:
        shared = sorted(card.official_weights)
        if len(shared) > 1 and len({card.official_weights[s].filename for s in shared}) == 1:
            chosen = shared[0]  # one file for every scale (VDSR): any scale builds it
        else:
            raise WeightsError(f"{path}: the file does not say its scale; pass --scale S")
    net, card, scales = _build(name, chosen)
    official = card.official_weights.get(chosen)
    if out_path is None:
        from srbench.weights import CACHE_DIR

        filename = official.filename if official else f"{name}_x{chosen}.safetensors"
        out_path = CACHE_DIR.expanduser() / filename
    digest = _save_converted(net, tensors, path, card, chosen, scales, out_path)
    note = ""
    if official is not None and digest != official.sha256:
        other = _matching_other_scales(net, card, chosen)
        if other:
            Path(out_path).unlink(missing_ok=True)
            raise WeightsError(
                f"{path}: these are the authors' {name} x{other[0]} weights (sha256 matches the "
                f"card's x{other[0]} pin), not x{chosen}; convert with --scale {other[0]}"
            )
        note = (
            f"sha256 {digest[:12]}... is not the card's pinned {name}.official x{chosen} "
            f"({official.sha256[:12]}...): these are not the authors' released weights, and "
            f"results with them are stored under {name}, not {name}.official"
        )
    return Converted(Path(out_path), digest, name, scales, fmt, note)


def _matching_other_scales(net: nn.Module, card: Any, scale: int) -> list[int]:
    """Scales whose pinned official file these very tensors would be (the x3 file converted as
    x2 has x2's shapes where the architecture's tensors do not depend on the scale)."""
    import hashlib

    from srbench.weights import FORMAT_VERSION, META_FORMAT, META_MODEL, META_SCALES, _serialize

    state = net.state_dict()
    out = []
    for other, ref in sorted(card.official_weights.items()):
        if other == scale or not ref.sha256:
            continue
        meta = {META_MODEL: card.name, META_SCALES: str(other), META_FORMAT: FORMAT_VERSION}
        if hashlib.sha256(_serialize(state, meta)).hexdigest() == ref.sha256:
            out.append(other)
    return out


def _read_npz(source: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(source, allow_pickle=False) as archive:
            arrays = {_normalise_key(k): np.array(archive[k]) for k in archive.files}
    except (ValueError, OSError, EOFError) as exc:
        msg = " ".join(str(exc).split())
        raise WeightsError(
            f"{source}: not a readable NumPy .npz archive of plain arrays ({msg}); pass the "
            f"official .npz file"
        ) from None
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
