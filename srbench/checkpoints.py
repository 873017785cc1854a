"""Any checkpoint: the architecture of a third-party ``.pth``/``.safetensors`` detected by spandrel.

``srbench run --weights FILE`` with no ``--models`` gives the file to :func:`detect_checkpoint`:
its tensors are read as srbench reads every checkpoint (``weights_only=True``, no pickled code),
spandrel (the optional extra ``srbench[spandrel]``) names the architecture from the keys and
builds it, and srbench registers a card for it (architecture, scale, parameters, input range,
"detected by spandrel VERSION") under ``<arch>_<sha256[:8]>`` of the file (or ``--name``), and
writes the weights as strict-loading srbench safetensors into the weights cache, so the run, the
store and the report treat it like any model. A file no architecture matches, one that several
match (with no order declared by spandrel between them), or a model that is not an RGB
super-resolution model of scale 2, 3 or 4, is a one-line error.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import WeightsError


@dataclass(frozen=True)
class Detected:
    name: str  # the registered model name, as stored
    scale: int
    weights: Path  # srbench safetensors of the checkpoint
    architecture: str
    spandrel_version: str


class SpandrelModel(nn.Module):
    """A spandrel network under srbench's contract: the LR input padded to the network's size
    requirements as spandrel's own descriptor pads it (reflect, then edge replication where an
    image is too small to reflect), the output cropped back to ``scale`` x the input."""

    def __init__(self, net: nn.Module, scale: int, size_requirements: Any) -> None:
        super().__init__()
        self.net, self.scale, self.req = net, scale, size_requirements

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_w, pad_h = self.req.get_padding(w, h)
        if pad_w or pad_h:
            rw, rh = min(pad_w, w - 1), min(pad_h, h - 1)
            x = nn.functional.pad(x, (0, rw, 0, rh), mode="reflect")
            x = nn.functional.pad(x, (0, pad_w - rw, 0, pad_h - rh), mode="replicate")
        return self.net(x)[..., : h * self.scale, : w * self.scale]


def _spandrel() -> Any:
    try:
        import spandrel
    except ImportError:
        return None
    return spandrel


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from srbench.convert import _load_safetensors, _load_torch

    head = path.read_bytes()[:8] if path.is_file() else b""
    if not head:
        raise WeightsError(f"{path}: weights file not found or empty")
    return _load_safetensors(path) if path.suffix == ".safetensors" else _load_torch(path)


def _architecture(spandrel: Any, state: dict[str, torch.Tensor], path: Path) -> Any:
    """The one architecture spandrel detects, or a one-line error."""
    found = [s for s in spandrel.MAIN_REGISTRY.architectures("detection") if s.detect(state)]
    version = spandrel.__version__
    if not found:
        keys = ", ".join(list(state)[:3])
        raise WeightsError(
            f"{path}: no architecture spandrel {version} knows matches this checkpoint (keys "
            f"{keys}, ...); pass --models NAME with weights made by `srbench weights convert`"
        )
    first, rest = found[0], [s.architecture.id for s in found[1:]]
    if any(other not in first.before for other in rest):
        ids = ", ".join([first.architecture.id, *rest])
        raise WeightsError(
            f"{path}: the checkpoint fits several architectures ({ids}) in spandrel {version}; "
            "srbench will not guess: register the model as a plugin (docs/models.md)"
        )
    return first


def _name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")


def detect_checkpoint(path: str | Path, *, name: str | None = None) -> Detected:
    """Detect, register and convert one checkpoint (see the module docstring)."""
    from srbench.data import default_cache_dir
    from srbench.registry import ModelCard, register_model, unregister_model
    from srbench.weights import file_sha256, save_weights

    path = Path(path)
    spandrel = _spandrel()
    if spandrel is None:
        raise WeightsError(
            f"{path}: detecting a checkpoint's architecture needs the optional extra: "
            "pip install 'srbench[spandrel]' (or pass --models NAME with srbench weights)"
        )
    state = spandrel.canonicalize_state_dict(_read_tensors(path))
    support = _architecture(spandrel, state, path)
    try:
        desc = support.architecture.load(state)
    except Exception as exc:  # spandrel's loaders raise anything on odd shapes
        raise WeightsError(
            f"{path}: spandrel {spandrel.__version__} detected {support.architecture.id} but "
            f"could not build it ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
    arch = support.architecture.id
    if (
        getattr(desc, "purpose", None) != "SR"
        or desc.scale not in (2, 3, 4)
        or (desc.input_channels, desc.output_channels) != (3, 3)
    ):
        raise WeightsError(
            f"{path}: {arch} x{desc.scale} with {desc.input_channels}->{desc.output_channels} "
            f"channels ({getattr(desc, 'purpose', '?')}) is not an RGB x2/x3/x4 SR model; "
            "srbench benchmarks only those"
        )
    sha = file_sha256(path)
    model_name = _name(name) if name else f"{_name(arch)}_{sha[:8]}"
    model = SpandrelModel(desc.model, desc.scale, desc.size_requirements).eval()
    params = sum(p.numel() for p in model.parameters())
    card = ModelCard(
        name=model_name,
        family=arch,
        paper=f"{arch}, detected by spandrel {spandrel.__version__} from {path.name}",
        year=0,  # unknown: the checkpoint does not say
        scales=(desc.scale,),
        input_channels="rgb",
        pre_upsampled=False,
        licence="that of the checkpoint's source (unknown to srbench)",
        published_params={desc.scale: params},
        notes=f"architecture {arch} ({', '.join(desc.tags)}), {params:,} parameters, RGB in "
        f"[0, 1], detected by spandrel {spandrel.__version__}; weights {path.name} "
        f"(sha256 {sha[:12]})",
    )
    unregister_model(model_name)  # a second detection of the same file in one process
    register_model(card)(lambda scale, **_: copy.deepcopy(model))
    out = default_cache_dir() / "weights" / "detected" / f"{model_name}_x{desc.scale}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, out, model_name=model_name, scale=desc.scale)
    return Detected(model_name, desc.scale, out, arch, spandrel.__version__)
