"""Dataset sources: the named lists of HR images a run scores -- a verified benchmark, the
built-in demo set (a folder of the user's own images: :mod:`srbench.userdata`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srbench.data import (
    BenchmarkSpec,
    HRImage,
    check_benchmark_folder,
    get_benchmark,
    load_hr,
    pixels_sha256,
)

DEMO_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket")
DEMO_NOTICE = (
    "demo set: 5 photographs shipped with scikit-image -- NOT a standard benchmark; its numbers "
    "are not comparable with any paper. Put Set5/Set14/B100/Urban100/Manga109 under --data-root "
    "or $SRBENCH_DATA (see `srbench data list`) for real results."
)


@dataclass
class DatasetSource:
    """A named list of HR images: a verified benchmark or the built-in demo set."""

    key: str
    fingerprint: str
    names: list[str]
    loader: Callable[[str], HRImage]
    is_standard: bool
    visual_images: tuple[str, ...] = ()  # crops of these are stored for the report


def demo_source() -> DatasetSource:
    import skimage.data

    def load(name: str) -> HRImage:
        pixels = np.ascontiguousarray(getattr(skimage.data, name)())
        return HRImage("demo", name, pixels, pixels_sha256(pixels), None)

    from importlib.metadata import version

    return DatasetSource(
        "demo",
        f"skimage-{version('scikit-image')}",
        list(DEMO_IMAGES),
        load,
        is_standard=False,
        visual_images=("astronaut",),
    )


class _DecodedImages:
    """The decoded, verified HR images of one source, kept up to ``max_bytes``: a run visits
    every image once per model and scale, and decoding plus fingerprinting a large lossless
    image costs more than scoring it."""

    def __init__(self, load: Callable[[str], HRImage], max_bytes: int = 1 << 30):
        self.load, self.max_bytes, self.nbytes = load, max_bytes, 0
        self.images: dict[str, HRImage] = {}

    def __call__(self, name: str) -> HRImage:
        image = self.images.get(name)
        if image is None:
            image = self.load(name)
            if self.nbytes + image.pixels.nbytes <= self.max_bytes:
                self.images[name] = image
                self.nbytes += image.pixels.nbytes
        return image


def benchmark_source(key: str, root: Path, *, verify: bool = True) -> DatasetSource:
    spec: BenchmarkSpec = get_benchmark(key)
    check_benchmark_folder(spec, root)
    by_name = {image.name: image for image in spec.images}
    return DatasetSource(
        spec.key,
        spec.fingerprint,
        list(by_name),
        _DecodedImages(lambda name: load_hr(spec, root, by_name[name], verify=verify)),
        is_standard=verify,
        visual_images=spec.visual_images,
    )
