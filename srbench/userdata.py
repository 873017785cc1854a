"""The user's own images: a folder of HR images as an ad-hoc benchmark, and plain upscaling.

An ad-hoc benchmark is named by its folder and a hash of its content (every image's name and pixel
fingerprint), e.g. ``holiday-3f9c0a1b2d``: another folder, or the same folder with one image
changed, is another benchmark, so its stored results are never reused for different pixels. It is
never verified (there is no published fingerprint to check against) and never one of the standard
benchmarks: its records carry ``standard_benchmark: false`` like the demo set's.

Upscaling takes LR images as they are (no downscaling, no metrics) and gives the model the input
its card declares, with the colour handling of the ``standard`` protocol: RGB models see RGB;
Y models see BT.601 Y and get the LR chroma upscaled with MATLAB bicubic.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from srbench.data import IMAGE_SUFFIXES, LOSSY_SUFFIXES, HRImage, decode_image, pixels_sha256
from srbench.errors import DataError, SRBenchError
from srbench.sources import DatasetSource

READABLE = IMAGE_SUFFIXES + LOSSY_SUFFIXES


def image_files(folder: Path) -> list[Path]:
    """The images directly in ``folder`` (sorted by name; hidden files and links left out)."""
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in READABLE
        and not p.name.startswith(".")
        and p.is_file()
        and not p.is_symlink()
    ]
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(READABLE)}) in this folder")
    stems = [p.stem for p in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise DataError(f"{folder}: {', '.join(twice)} exist in several formats; keep one of each")
    return files


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or "images"


def folder_source(folder: str | Path) -> DatasetSource:
    """A folder of HR images as an ad-hoc, unverified benchmark (see the module docstring)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of HR images")
    files = {p.stem: p for p in image_files(root)}
    shas = {name: pixels_sha256(decode_image(path)) for name, path in files.items()}
    digest = hashlib.sha256("".join(f"{n}\t{s}\n" for n, s in shas.items()).encode()).hexdigest()
    key = f"{_slug(root.resolve().name)}-{digest[:10]}"

    def load(name: str) -> HRImage:
        pixels = decode_image(files[name])
        sha = pixels_sha256(pixels)
        if sha != shas[name]:  # changed while the run was going: its key would be wrong
            raise DataError(f"{files[name]}: changed during the run; run again")
        return HRImage(key, name, pixels, sha, files[name])

    return DatasetSource(key, f"adhoc-{digest}", list(files), load, is_standard=False)


def is_folder(dataset: str) -> bool:
    """A ``--datasets`` entry naming a folder rather than a benchmark (``demo``, ``set5``...)."""
    from srbench.data import BENCHMARK_KEYS

    return dataset.lower() not in (*BENCHMARK_KEYS, "demo") and Path(dataset).expanduser().is_dir()


# -- upscaling ------------------------------------------------------------------------------------


def upscale_pixels(
    model: torch.nn.Module,
    input_channels: str,
    lr: np.ndarray,
    scale: int,
    *,
    device: torch.device,
    tile: int | None = None,
    overlap: int | None = None,
) -> np.ndarray:
    """SR of one uint8 LR image (H x W x 3 or H x W) as uint8 RGB, s*H x s*W x 3."""
    from srbench.color import rgb_to_ycbcr
    from srbench.imresize import imresize
    from srbench.inference import in_memory_format, infer, memory_format
    from srbench.protocols import STANDARD, Prepared

    rgb = lr if lr.ndim == 3 else np.repeat(lr[..., None], 3, axis=2)
    h, w = rgb.shape[:2]
    if input_channels == "y":
        ycbcr = rgb_to_ycbcr(rgb)
        prepared = Prepared(
            ycbcr[None, ..., 0] / 255.0, np.empty(0), scale, imresize(ycbcr[..., 1:], scale)
        )
    else:
        prepared = Prepared(rgb.transpose(2, 0, 1).astype(np.float64) / 255.0, np.empty(0), scale)
    # The layout `run` evaluates in (channels_last on the CPU): the same pixels as `run` saves.
    x = torch.from_numpy(prepared.model_input).to(device, torch.float32)[None]
    x = x.contiguous(memory_format=memory_format(device))
    # overlap None: the model's receptive radius, so tiles give the untiled pixels
    output, _ = infer(in_memory_format(model, device), x, scale, tile=tile, overlap=overlap)
    out = output[0].detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(out).all():
        raise SRBenchError("the model gave NaN or Inf pixels: the weights are broken")
    if out.shape[1:] != (h * scale, w * scale):
        raise SRBenchError(f"model output {out.shape[1:]} is not x{scale} of the input {(h, w)}")
    sr_image, _ = STANDARD.score(out, prepared)  # the standard protocol's output -> uint8 RGB
    return sr_image


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders as their images; a missing path is one error naming it."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            out.extend(image_files(path))
        elif path.is_file():
            out.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return out


def upscale_files(
    model_name: str,
    scale: int,
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    *,
    weights: Path | None = None,
    device: str = "cpu",
    tile: int | None = None,
    overlap: int | None = None,
) -> Iterator[tuple[Path, Path]]:
    """Super-resolve every input into ``output_dir/<name>_x<scale>.png``; yields (input, output)."""
    from srbench.devices import resolve_device
    from srbench.inference import in_memory_format
    from srbench.registry import create_model, resolve
    from srbench.runner import _save_png

    files = expand_inputs(inputs)
    ref = resolve(model_name)
    dev = resolve_device(device)
    pretrained: Path | bool = weights or (ref.card.trainable and bool(ref.weights or ref.tag))
    model = create_model(ref.key, scale=scale, pretrained=pretrained).to(dev).eval()
    if ref.card.trainable and getattr(model, "srbench_weights_sha256", None) in (
        None,
        "random-init",
    ):
        raise SRBenchError(
            f"model {ref.key} x{scale} has no weights; pass --weights FILE (srbench weights convert)"
        )
    model = in_memory_format(model, dev)  # once, not per image
    out = Path(output_dir)
    for path in files:
        sr = upscale_pixels(
            model, ref.card.input_channels, decode_image(path), scale,
            device=dev, tile=tile, overlap=overlap,
        )  # fmt: skip
        name = f"{path.stem}_x{scale}"
        _save_png(sr, out, name)
        yield path, out / f"{name}.png"
