"""Visual-comparison crops: written by ``srbench run`` into the store's folder, read by the report.

For every benchmark image a spec names in ``visual_images`` (Urban100 ``img_092``, Set14
``barbara``, ...), the runner saves the same zoomed window of each model's output and of the HR
image as PNGs under ``<results>/crops/`` and appends one line per model output to
``<results>/crops/index.jsonl``. The report only copies those files; it never runs a model.

The window is a function of the HR image alone (the highest-variance ``CROP_SIZE`` x ``CROP_SIZE``
window of the scoring target's Y inside the scored area, found deterministically), so every model
-- run today or in a later run -- is cropped at the same place. Each index line carries the
record key of the result it belongs to (so the report shows a crop only beside the number it
was made with), the window, the PSNR of the whole image and of the crop, and the PNG's sha256.
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from srbench.data import HRImage
from srbench.files import atomic_write
from srbench.imresize import modcrop
from srbench.protocols import Prepared, Protocol, Scored
from srbench.results import append_jsonl, read_jsonl
from srbench.schema import KEY_FIELDS, record_key

CROP_DIR = "crops"
INDEX_FILE = "index.jsonl"
CROP_SIZE = 96  # HR pixels per side (shown enlarged in the report)


def highest_variance_crop(
    y: np.ndarray, size: int, border: int, stride: int = 8
) -> tuple[int, int, int]:
    """``(top, left, size)`` of the ``size`` x ``size`` window of ``y`` with the highest variance.

    Only windows inside the scored area (``border`` pixels off every side) on a ``stride`` grid
    are considered; ties go to the first window in raster order, so the choice is deterministic.
    """
    h, w = y.shape
    size = max(1, min(size, h - 2 * border, w - 2 * border))
    y = y.astype(np.float64)
    ii = np.pad(y, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    ii2 = np.pad(y * y, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    tops = np.arange(border, h - border - size + 1, stride)
    lefts = np.arange(border, w - border - size + 1, stride)
    t, lft = np.meshgrid(tops, lefts, indexing="ij")

    def box(s: np.ndarray) -> np.ndarray:
        return s[t + size, lft + size] - s[t, lft + size] - s[t + size, lft] + s[t, lft]

    n = size * size
    variance = box(ii2) / n - (box(ii) / n) ** 2
    idx = int(np.argmax(variance))  # first maximum in raster order
    return int(t.flat[idx]), int(lft.flat[idx]), size


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _write_png(pixels: np.ndarray, path: Path) -> str:
    """Write atomically; returns the file's sha256."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    data = buffer.getvalue()
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


class CropStore:
    """The crops of one result store (``<results_dir>/crops``)."""

    def __init__(self, results_dir: str | Path, size: int = CROP_SIZE):
        self.root = Path(results_dir) / CROP_DIR
        self.index = self.root / INDEX_FILE
        self.size = size

    def entries(self) -> list[dict[str, Any]]:
        """Every index line whose PNGs exist (a crop whose file is gone is not shown), one per
        record key: the last written (two workers can both add the crop of one image)."""
        if not self.index.exists():
            return []
        latest: dict[tuple, dict[str, Any]] = {}
        for e in read_jsonl(self.index):
            if (
                isinstance(e, dict)
                and (self.root / str(e.get("file", ""))).is_file()
                and (self.root / str(e.get("hr_file", ""))).is_file()
            ):
                latest[record_key(e)] = e
        return list(latest.values())

    def keys(self) -> set[tuple]:
        return {record_key(e) for e in self.entries()}

    def save(
        self,
        base: dict[str, Any],
        hr: HRImage,
        prepared: Prepared,
        scored: Scored,
        protocol: Protocol,
    ) -> dict[str, Any]:
        """Store the crop of one scored output (``base``: the record's key fields)."""
        scale = int(base["scale"])
        top, left, size = highest_variance_crop(prepared.target_y, self.size, scale)
        window = (slice(top, top + size), slice(left, left + size))
        folder = Path(
            _safe(f"{protocol.id}-{protocol.hash}"),
            f"x{scale}",
            _safe(str(base["dataset"])),
            _safe(str(base["image"])),
        )
        # The HR is shown in colour wherever it has colour (also under Y-only protocols).
        hr_pixels = modcrop(hr.pixels, scale)
        hr_file = folder / f"hr-{str(base['hr_sha256'])[:12]}.png"
        if not (self.root / hr_file).is_file():
            _write_png(hr_pixels[window], self.root / hr_file)
        variant = ("-ensemble" if base.get("ensemble") else "") + (
            f"-{base['precision']}" if base.get("precision", "fp32") != "fp32" else ""
        )
        name = _safe(f"{base['model']}-{str(base['weights_sha256'])[:12]}{variant}")
        file = folder / f"{name}.png"
        # legacy-y: the SR Y with the LR's chroma (Protocol.preview), never the HR's.
        sha = _write_png(protocol.preview(scored, prepared)[window], self.root / file)
        sr_y = scored.sr_image.astype(np.float64)
        if sr_y.ndim == 3:
            from srbench.color import rgb_to_y

            sr_y = rgb_to_y(scored.sr_image)
        diff = sr_y[window] - prepared.target_y[window]
        mse = float(np.mean(diff**2))
        entry = {
            **{f: base.get(f) for f in KEY_FIELDS},
            "box": {"top": top, "left": left, "size": size},
            "psnr_db": scored.psnr_db,
            "crop_psnr_db": math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse),
            "file": file.as_posix(),
            "file_sha256": sha,
            "hr_file": hr_file.as_posix(),
        }
        append_jsonl(self.index, [entry])
        return entry
