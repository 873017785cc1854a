"""Evaluation protocols: how an HR image becomes a model input, and how the output is scored.

A protocol fixes every choice that moves PSNR/SSIM (see ``docs/protocols.md``). Each has a stable
id and a hash of its definition; every stored number carries both, and numbers from different
protocols are never averaged or ranked together.

- ``standard`` (RCAN/EDSR era): modcrop; LR = MATLAB ``imresize`` of the uint8 RGB HR, rounded to
  uint8 after each pass; SR clamped and rounded to uint8 RGB; float BT.601 Y; ``scale`` pixels
  cropped; MATLAB SSIM. Y-channel models get the float Y of the LR (in [0, 1]) and their output is
  recombined with bicubic-upsampled LR chroma into the RGB image that is scored (and saved).
  Single-channel files (Set14 ``bridge``) are replicated to R = G = B.
- ``legacy-y`` (SRCNN/VDSR/IDN MATLAB test code, the published Bicubic rows): Y = MATLAB
  ``rgb2ycbcr`` of the HR (rounded to uint8); LR = ``imresize(Y / 255, 1 / scale)`` in float64,
  not rounded; SR = ``uint8(output * 255)``; single-channel files are scored on their raw values.
  Only Y-channel (and channel-agnostic) models can run under it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from srbench.color import matlab_round_uint8, rgb_to_y, rgb_to_y_uint8, rgb_to_ycbcr, ycbcr_to_rgb
from srbench.data import HRImage, default_cache_dir
from srbench.errors import DataError, SRBenchError
from srbench.files import atomic_path
from srbench.imresize import imresize, modcrop


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol: its identity (id, version, hashed definition) and its behaviour.

    Subclasses own every step that differs between protocols -- how the LR input is made
    (:meth:`prepare`), how an output is scored (:meth:`score`), what image is saved
    (:meth:`preview`), which models can run under it (:meth:`check_model`) -- so that the
    runner, training and the report never branch on a protocol's id.
    """

    id: str
    version: int
    title: str
    definition: dict[str, str] = field(hash=False, compare=False)
    # What a saved SR image shows beyond what is scored (the report prints it under the crops).
    preview_note: ClassVar[str] = ""
    # The views of SR and HR it gives the metrics (srbench.schema.VIEWS); a metric that needs
    # another is not measured under it (:func:`unfed_metrics` says so).
    views: ClassVar[tuple[str, ...]] = ("y",)

    @property
    def hash(self) -> str:
        """sha256 (first 12 hex digits) of the canonical definition: changes if any choice does."""
        canonical = json.dumps(
            {"id": self.id, "version": self.version, "definition": self.definition}, sort_keys=True
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return f"{self.id}@{self.hash}"

    def check_model(self, input_channels: str) -> None:
        """Raise a one-line error if a model taking ``input_channels`` cannot run under it."""

    def prepare(self, hr: HRImage, scale: int, input_channels: str, cache: LRCache) -> Prepared:
        raise NotImplementedError(f"protocol {self.id!r} has no preparation step")

    def degrade(self, hr: HRImage, rgb: np.ndarray, scale: int, cache: LRCache) -> np.ndarray:
        """The uint8 RGB LR image of ``rgb`` (``hr``'s modcropped pixels as RGB): the input
        this protocol gives a model, and what training pairs with the HR."""
        raise SRBenchError(f"protocol {self.id!r} makes no RGB LR images to train on")

    def score(self, output: np.ndarray, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
        """(image to save, float64 Y to score) from a C x H x W float64 output in [0, 1]."""
        raise NotImplementedError(f"protocol {self.id!r} has no scoring step")

    def preview(self, scored: Scored, prepared: Prepared) -> np.ndarray:
        """The SR image to save (RGB wherever the HR has colour)."""
        return scored.sr_image

    def view(
        self, name: str, sr_image: np.ndarray, sr_y: np.ndarray, prepared: Prepared
    ) -> tuple[np.ndarray, np.ndarray]:
        """(SR, HR) of view ``name`` (one of :attr:`views`), float64 in [0, 255]."""
        if name == "y":
            return sr_y, prepared.target_y
        raise SRBenchError(f"protocol {self.id!r} provides no {name!r} view")


@dataclass(frozen=True)
class StandardProtocol(Protocol):
    views: ClassVar[tuple[str, ...]] = ("y", "rgb")

    def view(
        self, name: str, sr_image: np.ndarray, sr_y: np.ndarray, prepared: Prepared
    ) -> tuple[np.ndarray, np.ndarray]:
        if name == "rgb" and prepared.target_rgb is not None:
            # channels first, as the metric functions take them
            sr = sr_image.transpose(2, 0, 1).astype(np.float64)
            return sr, prepared.target_rgb.transpose(2, 0, 1).astype(np.float64)
        return super().view(name, sr_image, sr_y, prepared)

    def prepare(self, hr: HRImage, scale: int, input_channels: str, cache: LRCache) -> Prepared:
        pixels = modcrop(hr.pixels, scale)
        rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
        lr = self.degrade(hr, rgb, scale, cache)
        target = rgb_to_y(rgb)
        if input_channels == "y":
            lr_ycbcr = rgb_to_ycbcr(lr)
            chroma_up = imresize(lr_ycbcr[..., 1:], scale)
            return Prepared(
                lr_ycbcr[None, ..., 0] / 255.0, target, scale, chroma_up, target_rgb=rgb
            )
        lr_input = lr.transpose(2, 0, 1).astype(np.float64) / 255.0
        return Prepared(lr_input, target, scale, target_rgb=rgb)

    def degrade(self, hr: HRImage, rgb: np.ndarray, scale: int, cache: LRCache) -> np.ndarray:
        return cache.get(hr, scale, "matlab-bicubic-rgb-uint8", lambda: imresize(rgb, 1 / scale))

    def score(self, output: np.ndarray, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
        if output.shape[0] == 1:
            y = output[0] * 255.0
            rgb_float = ycbcr_to_rgb(np.concatenate([y[..., None], prepared.chroma_up], axis=2))
            sr_image = matlab_round_uint8(rgb_float)
        else:
            # Rounded in place in the output's C x H x W memory, then viewed as H x W x C: the
            # values and the memory layout of matlab_round_uint8(output.transpose(1, 2, 0) *
            # 255.0), without its three temporaries.
            scaled = np.multiply(output, 255.0)
            scaled += 0.5
            np.floor(scaled, out=scaled)
            np.clip(scaled, 0, 255, out=scaled)
            sr_image = scaled.astype(np.uint8).transpose(1, 2, 0)
        return sr_image, rgb_to_y(sr_image)


@dataclass(frozen=True)
class LegacyYProtocol(Protocol):
    preview_note: ClassVar[str] = (
        "Only Y is scored; the colour of the SR crops comes from the LR image's chroma "
        "(bicubic), never from the HR."
    )

    def check_model(self, input_channels: str) -> None:
        if input_channels == "rgb":
            raise SRBenchError(
                f"the {self.id} protocol is Y-only and this model takes RGB; use --protocol standard"
            )

    def prepare(self, hr: HRImage, scale: int, input_channels: str, cache: LRCache) -> Prepared:
        self.check_model(input_channels)
        pixels = modcrop(hr.pixels, scale)
        y_hr = pixels if pixels.ndim == 2 else rgb_to_y_uint8(pixels)
        lr = cache.get(
            hr, scale, "matlab-bicubic-y-float64", lambda: imresize(y_hr / 255.0, 1 / scale)
        )
        hr_rgb = pixels if pixels.ndim == 3 else None
        return Prepared(lr[None], y_hr.astype(np.float64), scale, hr_rgb=hr_rgb)

    def score(self, output: np.ndarray, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
        sr_image = matlab_round_uint8(output[0] * 255.0)
        return sr_image, sr_image.astype(np.float64)

    def preview(self, scored: Scored, prepared: Prepared) -> np.ndarray:
        """Only Y is scored; the saved colour image takes its Cb/Cr from the bicubic down- and
        up-scaled HR chroma (the information an LR image carries), never from the HR itself."""
        if prepared.hr_rgb is None:
            return scored.sr_image
        s = prepared.scale
        chroma = rgb_to_ycbcr(prepared.hr_rgb)[..., 1:]
        chroma_up = imresize(imresize(chroma, 1 / s), s)
        y = scored.sr_image.astype(np.float64)[..., None]
        return matlab_round_uint8(ycbcr_to_rgb(np.concatenate([y, chroma_up], axis=2)))


STANDARD = StandardProtocol(
    id="standard",
    version=1,
    title="Modern standard: RGB MATLAB-bicubic LR, uint8 SR, float BT.601 Y, crop = scale",
    definition={
        "hr": "modcrop to a multiple of scale (bottom/right)",
        "lr": "MATLAB imresize(HR uint8 RGB, 1/scale, bicubic), uint8 rounding after each pass",
        "greyscale": "single-channel HR replicated to R=G=B",
        "y_models": "input float BT.601 Y of LR / 255; output + bicubic LR chroma -> RGB",
        "sr": "clamp to [0,255], round half away from zero to uint8 RGB",
        "y": "16 + (65.481 R + 128.553 G + 24.966 B)/255, float64, not rounded",
        "crop": "scale pixels on every side",
        "psnr": "10 log10(255^2/MSE) per image, mean over images",
        "ssim": "Wang 2004 ssim_index: gaussian 11x11 sigma 1.5, K=(0.01,0.03), L=255, valid, mean",
    },
)

LEGACY_Y = LegacyYProtocol(
    id="legacy-y",
    version=1,
    title="Legacy Y-only (SRCNN/VDSR/IDN test code): Y degraded in double, uint8(out*255)",
    definition={
        "hr": "modcrop to a multiple of scale (bottom/right)",
        "y_hr": "MATLAB rgb2ycbcr on uint8 RGB, Y rounded to uint8; single-channel files raw",
        "lr": "MATLAB imresize(Y_hr/255 float64, 1/scale, bicubic), not rounded",
        "models": "Y-channel input in [0,1]; RGB models are not supported",
        "sr": "uint8(output*255): clamp, round half away from zero",
        "crop": "scale pixels on every side",
        "psnr": "10 log10(255^2/MSE) per image on Y, mean over images",
        "ssim": "Wang 2004 ssim_index: gaussian 11x11 sigma 1.5, K=(0.01,0.03), L=255, valid, mean",
    },
)

PROTOCOLS = {p.id: p for p in (STANDARD, LEGACY_Y)}


def get_protocol(protocol_id: str) -> Protocol:
    try:
        return PROTOCOLS[protocol_id]
    except KeyError:
        raise SRBenchError(
            f"unknown protocol {protocol_id!r}; choose from {', '.join(PROTOCOLS)}"
        ) from None


@dataclass
class Prepared:
    """One HR image made ready for a model under a protocol."""

    model_input: np.ndarray  # float64, C x h x w, values in [0, 1]
    target_y: np.ndarray  # float64, H x W, the Y the SR output is scored against
    scale: int
    chroma_up: np.ndarray | None = None  # standard protocol, Y models: H x W x 2 (Cb, Cr)
    hr_rgb: np.ndarray | None = None  # legacy-y: the modcropped RGB HR, for colour previews only
    target_rgb: np.ndarray | None = None  # standard: uint8 H x W x 3, the RGB view's HR


@dataclass
class Scored:
    metrics: dict[str, float]  # every metric the protocol can feed, by record field name
    sr_image: np.ndarray  # uint8, what would be saved (RGB H x W x 3, or H x W for legacy grey)

    @property
    def psnr_db(self) -> float:
        return self.metrics["psnr_db"]

    @property
    def ssim(self) -> float:
        return self.metrics["ssim"]


class LRCache:
    """LR images keyed by HR fingerprint, scale, degradation method and the code that makes them
    (this module and what it imports: ``imresize``, colour conversion, crops), made once: after
    a change to that code an image is made again, never read from the old code's entry.

    One file per entry (``<key>.lr``): a line ``srbench-lr/1 <sha256>`` (of the array's dtype,
    shape and bytes), then the array in ``.npy`` format. An entry that no longer matches its
    digest -- altered pixels that still load, a torn file -- is made again, and :attr:`rebuilt`
    says so (the runner reports it), so a damaged cache can never move a number. (One file, not
    an ``.npy`` with a ``.sha256`` beside it: creating a file costs about 0.5 ms here, 0.3 s of a
    cold Set14 + B100 bicubic run.)
    """

    MAGIC = b"srbench-lr/1 "

    def __init__(self, root: Path | None = None, enabled: bool = True):
        self.root = (root or default_cache_dir() / "lr") if enabled else None
        self.rebuilt: list[str] = []

    @functools.cached_property
    def code(self) -> str:
        """The hash of the code that makes LR images (part of each entry's name)."""
        from srbench.codehash import modules_code_sha256

        return modules_code_sha256(__name__)[:12]

    @staticmethod
    def digest(array: np.ndarray) -> str:
        h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
        h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def _read(self, path: Path) -> np.ndarray | None:
        """The verified array in ``path``; None when it is torn, altered or not an entry."""
        try:
            with open(path, "rb") as fh:
                header = fh.readline()
                cached = np.load(fh, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # EOFError: an empty (torn) file
            return None
        expected = header.removeprefix(self.MAGIC).strip().decode("ascii", "replace")
        ok = header.startswith(self.MAGIC) and self.digest(cached) == expected
        return cached if ok else None

    def get(self, hr: HRImage, scale: int, method: str, make) -> np.ndarray:
        if self.root is None:
            return make()
        path = self.root / method / f"{hr.pixels_sha256[:32]}_x{scale}_{self.code}.lr"
        if path.is_file():
            cached = self._read(path)
            if cached is not None:
                return cached
            self.rebuilt.append(
                f"{path}: cached LR image of {hr.dataset}/{hr.name} x{scale} is damaged or "
                "unverified; made it again"
            )
        lr = make()
        try:
            # Atomic: a concurrent reader sees the old entry or the new one, never a half-written
            # array taken as valid. Not fsync-ed: a power cut can only lose or tear an entry, and
            # a torn entry fails its sha256 and is made again.
            with atomic_path(path, durable=False) as tmp, open(tmp, "wb") as fh:
                fh.write(self.MAGIC + self.digest(lr).encode("ascii") + b"\n")
                np.save(fh, lr, allow_pickle=False)
        except OSError as exc:
            raise DataError(
                f"{path.parent}: cannot write the LR cache ({exc.strerror or exc}); free disk "
                f"space, fix its permissions, or point $SRBENCH_CACHE at a writable folder"
            ) from None
        return lr


def _check_size(hr: HRImage, scale: int) -> None:
    h, w = hr.pixels.shape[:2]
    # The LR must be at least 2 pixels and the cropped HR must fit the 11x11 SSIM window.
    if h // scale < 2 or w // scale < 2 or h - 2 * scale < 11 or w - 2 * scale < 11:
        where = hr.path or f"{hr.dataset}/{hr.name}"
        raise DataError(
            f"{where}: image {h}x{w} is too small for x{scale} (needs at least "
            f"{max(2 * scale, 11 + 2 * scale)} pixels per side); remove it or use a smaller scale"
        )


def prepare(
    protocol: Protocol, hr: HRImage, scale: int, input_channels: str, cache: LRCache
) -> Prepared:
    """Model input and scoring target of one HR image under ``protocol``."""
    _check_size(hr, scale)
    return protocol.prepare(hr, scale, input_channels, cache)


def score(protocol: Protocol, output: torch.Tensor, prepared: Prepared) -> Scored:
    """Score one model output (C x H x W float tensor, values nominally in [0, 1])."""
    out = output.detach().to("cpu", torch.float64).numpy()
    sr_image, sr_y = protocol.score(out, prepared)
    if sr_y.shape != prepared.target_y.shape:
        raise SRBenchError(
            f"model output {sr_y.shape} does not match the HR size {prepared.target_y.shape}"
        )
    from srbench.schema import metric_specs

    views: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    metrics = {}
    for spec in metric_specs():
        if spec.needs not in protocol.views:
            continue  # not measured: unfed_metrics says so
        if spec.needs not in views:
            sr, hr = protocol.view(spec.needs, sr_image, sr_y, prepared)
            views[spec.needs] = (torch.from_numpy(sr), torch.from_numpy(hr))
        metrics[spec.name] = spec.compute(*views[spec.needs], prepared.scale)
    return Scored(metrics, sr_image)


def unfed_metrics(protocol: Protocol) -> list[str]:
    """One line per metric ``protocol`` cannot feed (its view is not among the protocol's):
    such a metric is not measured, and the run says so instead of failing."""
    from srbench.schema import metric_specs

    return [
        f"{spec.name} is not measured under the {protocol.id} protocol: it needs the "
        f"{spec.needs} view and the protocol provides {', '.join(protocol.views)}"
        for spec in metric_specs()
        if spec.needs not in protocol.views
    ]


def preview_rgb(protocol: Protocol, scored: Scored, prepared: Prepared) -> np.ndarray:
    """The SR image to save: RGB wherever the HR has colour (see :meth:`Protocol.preview`)."""
    return protocol.preview(scored, prepared)
