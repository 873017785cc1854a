"""Benchmarks as data: specs, the data root, loading and verifying HR images, the LR cache.

Conventions (every loader here follows them):
- images are ``numpy.uint8`` arrays, H x W x 3 (RGB) or H x W (single-channel ``L``), exactly as
  ``numpy.asarray(PIL.Image.open(f))`` decodes them; no colour management, no gamma;
- an image is identified by its decoded pixels (sha256 of the C-ordered uint8 array, plus its
  shape), never by its file bytes, so PNG, lossless WebP, BMP and TIFF copies all verify;
- RGBA, 16-bit, palette and other modes are refused with a message saying how to convert, since a
  silent conversion would change the numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from srbench.errors import DataError

IMAGE_SUFFIXES = (".png", ".webp", ".bmp", ".tif", ".tiff")
BENCHMARK_KEYS = ("set5", "set14", "b100", "urban100", "manga109")


def benchmark_order(name: str) -> tuple[int, str]:
    """Sort key putting datasets in the field's table order (BENCHMARK_KEYS), others after."""
    return (BENCHMARK_KEYS.index(name) if name in BENCHMARK_KEYS else len(BENCHMARK_KEYS), name)


ENV_DATA_ROOT = "SRBENCH_DATA"


@dataclass(frozen=True)
class ImageSpec:
    name: str
    mode: str  # "RGB" or "L"
    height: int
    width: int
    channels: int
    pixels_sha256: str


@dataclass(frozen=True)
class BenchmarkSpec:
    key: str
    name: str
    folder: str
    citation: str
    images: tuple[ImageSpec, ...]
    # Images whose zoomed crops `srbench run` stores for the report's visual comparison.
    visual_images: tuple[str, ...] = ()
    # False where the licence forbids redistribution (Manga109): no download source, and no
    # crops of its pages in a result store, which a project commits and shares.
    redistributable: bool = True

    @property
    def count(self) -> int:
        return len(self.images)

    @property
    def fingerprint(self) -> str:
        """One hash for the whole benchmark: the sorted per-image fingerprints."""
        digest = hashlib.sha256()
        for image in self.images:
            digest.update(f"{image.name}:{image.height}x{image.width}x{image.channels}:".encode())
            digest.update(image.pixels_sha256.encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class HRImage:
    """A verified HR image of a benchmark (or of the built-in demo set)."""

    dataset: str
    name: str
    pixels: np.ndarray  # uint8, H x W x 3 or H x W
    pixels_sha256: str
    path: Path | None


@cache
def get_benchmark(key: str) -> BenchmarkSpec:
    key = key.lower()
    if key not in BENCHMARK_KEYS:
        raise DataError(
            f"unknown benchmark {key!r}; choose from {', '.join(BENCHMARK_KEYS)} (or 'demo')"
        )
    text = resources.files("srbench.benchmarks").joinpath(f"{key}.json").read_text()
    raw = json.loads(text)
    images = tuple(ImageSpec(**image) for image in raw["images"])
    if len(images) != raw["count"]:
        raise DataError(f"benchmark spec {key}.json is inconsistent: reinstall srbench")
    visual = tuple(raw.get("visual_images", ()))
    unknown = set(visual) - {image.name for image in images}
    if unknown:
        raise DataError(f"benchmark spec {key}.json names unknown visual images: reinstall srbench")
    free = bool(raw.get("redistributable", True))
    if visual and not free:
        raise DataError(
            f"benchmark spec {key}.json names visual images of a benchmark whose licence forbids "
            "redistribution (their crops would be stored with the results): remove them"
        )
    return BenchmarkSpec(
        raw["key"], raw["name"], raw["folder"], raw["citation"], images, visual, free
    )


def list_benchmarks() -> list[BenchmarkSpec]:
    return [get_benchmark(k) for k in BENCHMARK_KEYS]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("SRBENCH_CACHE", Path(base) / "srbench"))


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """``--data-root``, then ``$SRBENCH_DATA``, then ``<user cache>/srbench/datasets``.

    A folder the user named (flag or variable) must exist: a typo must not quietly turn a
    benchmark run into a demo run. Only the default location may be absent.
    """
    if data_root is not None:
        named, how = Path(data_root).expanduser(), "--data-root"
    elif os.environ.get(ENV_DATA_ROOT):
        named, how = Path(os.environ[ENV_DATA_ROOT]).expanduser(), f"${ENV_DATA_ROOT}"
    else:
        return default_cache_dir() / "datasets"
    if not named.is_dir():
        what = "is not a folder" if named.exists() else "does not exist"
        raise DataError(
            f"{named}: the data root given by {how} {what}; fix the path (it holds Set5/, "
            f"Set14/, ...), or leave {how} unset to use the built-in demo set"
        )
    return named


def pixels_sha256(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def decode_image(path: Path) -> np.ndarray:
    """Decode a lossless 8-bit RGB or greyscale image; refuse anything else with a one-line fix."""
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("RGBA", "LA", "PA"):
                raise DataError(
                    f"{path}: has an alpha channel ({mode}); save it as 8-bit RGB without alpha "
                    "(e.g. PIL: img.convert('RGB').save(...)) after checking the alpha is opaque"
                )
            if mode in ("I;16", "I;16B", "I;16L", "I", "F") or mode.startswith("I;16"):
                raise DataError(
                    f"{path}: is a {mode} image (16-bit or float); benchmarks are 8-bit: "
                    "convert it to 8-bit RGB with the rounding you intend"
                )
            if mode not in ("RGB", "L"):
                raise DataError(
                    f"{path}: unsupported image mode {mode}; convert it to 8-bit RGB or L"
                )
            img.load()
            pixels = np.asarray(img)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Image.DecompressionBombError as exc:  # not an OSError: would be a traceback
        raise DataError(
            f"{path}: refused: {str(exc).rstrip('.')}; a benchmark image is never this large -- replace the file "
            "with the real image"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot decode the image ({exc}); the file is corrupt or truncated: "
            "replace it with a good copy"
        ) from None
    if pixels.dtype != np.uint8:
        raise DataError(f"{path}: decoded to {pixels.dtype}, expected 8-bit; convert it to 8-bit")
    return pixels


LOSSY_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
_LOSSY_NOTE = (
    "JPEG is lossy: its pixels are not the standard benchmark image's, so srbench does not read "
    "it; put the lossless original (PNG/WebP lossless/BMP/TIFF) there"
)


def _first_file(folder: Path, name: str, suffixes: tuple[str, ...]) -> Path | None:
    for suffix in suffixes:
        for candidate in (folder / f"{name}{suffix}", folder / f"{name}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _lossy_file(folder: Path, name: str) -> Path | None:
    return _first_file(folder, name, LOSSY_SUFFIXES)


def find_image_file(folder: Path, name: str) -> Path | None:
    return _first_file(folder, name, IMAGE_SUFFIXES)


def hr_folder(spec: BenchmarkSpec, root: Path) -> Path:
    return root / spec.folder / "HR"


@dataclass(frozen=True)
class ImageStatus:
    name: str
    status: str  # "ok", "missing", "lossy", "mismatch", "unreadable"
    detail: str
    path: Path | None


def verify_benchmark(spec: BenchmarkSpec, root: Path) -> list[ImageStatus]:
    """Check every image of a benchmark against its fingerprint (image by image)."""
    folder = hr_folder(spec, root)
    statuses = []
    for image in spec.images:
        path = find_image_file(folder, image.name)
        if path is None:
            lossy = _lossy_file(folder, image.name)
            if lossy is not None:
                statuses.append(ImageStatus(image.name, "lossy", f"{lossy}: {_LOSSY_NOTE}", lossy))
            else:
                statuses.append(ImageStatus(image.name, "missing", f"not found in {folder}", None))
            continue
        try:
            pixels = decode_image(path)
        except DataError as exc:
            statuses.append(ImageStatus(image.name, "unreadable", str(exc), path))
            continue
        problem = _fingerprint_problem(image, pixels)
        if problem:
            statuses.append(ImageStatus(image.name, "mismatch", problem, path))
        else:
            statuses.append(ImageStatus(image.name, "ok", "", path))
    return statuses


def _fingerprint_problem(image: ImageSpec, pixels: np.ndarray) -> str:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    shape = (image.height, image.width)
    if pixels.shape[:2] != shape or channels != image.channels:
        return (
            f"size {pixels.shape[0]}x{pixels.shape[1]}x{channels}, expected "
            f"{image.height}x{image.width}x{image.channels}"
        )
    if pixels_sha256(pixels) != image.pixels_sha256:
        return "pixels differ from the standard copy (lossy re-encode, crop or different release?)"
    return ""


def load_hr(spec: BenchmarkSpec, root: Path, image: ImageSpec, *, verify: bool = True) -> HRImage:
    folder = hr_folder(spec, root)
    path = find_image_file(folder, image.name)
    if path is None:
        lossy = _lossy_file(folder, image.name)
        if lossy is not None:
            raise DataError(f"{lossy}: {_LOSSY_NOTE}")
        raise DataError(
            f"{folder / image.name}.png: missing image of {spec.name}; run "
            f"`srbench data verify --datasets {spec.key}` to list what is missing"
        )
    pixels = decode_image(path)
    digest = pixels_sha256(pixels)
    if verify:
        problem = _fingerprint_problem(image, pixels)
        if problem:
            raise DataError(
                f"{path}: {problem}; replace it with the standard {spec.name} image "
                "(or pass --no-verify to evaluate it anyway, unlabelled as the benchmark)"
            )
    return HRImage(spec.key, image.name, pixels, digest, path)


def check_benchmark_folder(spec: BenchmarkSpec, root: Path) -> None:
    folder = hr_folder(spec, root)
    if not folder.is_dir():
        hint = (
            f"get it with `srbench data fetch {spec.key}`"
            if spec.redistributable
            else f"import your own copy with `srbench data import {spec.key} FOLDER` (its "
            "licence forbids redistribution)"
        )
        raise DataError(f"{folder}: no {spec.name} folder; {hint} (or set --data-root)")
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        lossy = sorted(p for p in folder.iterdir() if p.suffix.lower() in LOSSY_SUFFIXES)
        if lossy:
            raise DataError(
                f"{folder}: holds {len(lossy)} JPEG file(s) (e.g. {lossy[0].name}) and no "
                f"lossless image; {_LOSSY_NOTE}"
            )
        raise DataError(
            f"{folder}: folder is empty; put the {spec.count} {spec.name} HR images there"
        )


def iter_benchmark(spec: BenchmarkSpec, root: Path, *, verify: bool = True) -> Iterator[HRImage]:
    check_benchmark_folder(spec, root)
    for image in spec.images:
        yield load_hr(spec, root, image, verify=verify)


def available_benchmarks(root: Path) -> list[str]:
    return [s.key for s in list_benchmarks() if hr_folder(s, root).is_dir()]
