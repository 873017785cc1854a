"""The report's visual comparisons: the HR crops ``srbench run`` stored for exactly the records
the tables show, copied into the report's build folder (:mod:`srbench.crops`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from srbench.data import BENCHMARK_KEYS, benchmark_order
from srbench.errors import SRBenchError
from srbench.report.page import Crop, Visual
from srbench.report.text import fmt
from srbench.schema import record_key

IMG_DIR = "img"


def src(file: Path) -> str:
    """The page's relative link to ``file`` in a build folder ``img/<build>/``."""
    return f"{IMG_DIR}/{file.parent.name}/{file.name}"


# Visual comparison: one image per benchmark by default (each spec's first, hardest-first
# ``visual_images``), so Manga109 is shown beside Urban100 and Set14, not cut off after four.
VISUAL_IMAGES = len(BENCHMARK_KEYS)


def visual_order(images: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(dataset, image) pairs in the order the visual comparison shows them: each benchmark's
    first named image in benchmark order, then each one's second, and so on; unnamed last."""
    from srbench.data import get_benchmark

    def key(item: tuple[str, str]) -> tuple[bool, int, tuple[int, str], str]:
        dataset, image = item
        try:
            visual = list(get_benchmark(dataset).visual_images)
        except SRBenchError:
            visual = []
        named = image in visual
        return not named, visual.index(image) if named else 0, benchmark_order(dataset), image

    return sorted(images, key=key)


def visuals(
    group: pd.DataFrame, entries: list[dict], crops_root: Path, img: Path, count: int, prefix: str
) -> tuple[list[Visual], list[str]]:
    """The stored crops (``srbench run`` wrote them, :mod:`srbench.crops`) of the results in
    ``group`` -- exactly the records the tables show, matched by record key -- copied into the
    report folder; up to ``count`` images, in :func:`visual_order`. Nothing is re-run."""
    import hashlib

    labels: dict[tuple, str] = {}
    for row in group.to_dict("records"):
        labels[record_key(row)] = str(row["label"])
    mine = [e for e in entries if record_key(e) in labels]
    without = sorted({labels[k] for k in labels} - {labels[record_key(e)] for e in mine})
    skipped = []
    if without and mine:
        skipped.append(
            f"no stored crops for {', '.join(without)} (run them again with `srbench run` to add "
            "their crops)"
        )

    by_image: dict[tuple[str, str], list[dict]] = {}
    for e in mine:
        by_image.setdefault((str(e["dataset"]), str(e["image"])), []).append(e)
    visuals = []
    for v_index, (dataset, image) in enumerate(visual_order(by_image)[:count]):
        shown = sorted(by_image[(dataset, image)], key=lambda e: labels[record_key(e)])
        first = shown[0]
        box = first["box"]
        hr_file = img / f"{prefix}_v{v_index}_hr.png"
        shutil.copyfile(crops_root / first["hr_file"], hr_file)
        crops = [Crop("HR (ground truth)", src(hr_file), "", "")]
        for m_index, e in enumerate(shown):
            data = (crops_root / e["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != e.get("file_sha256"):
                skipped.append(f"{labels[record_key(e)]} on {image}: its crop file was changed")
                continue
            file = img / f"{prefix}_v{v_index}_m{m_index}.png"
            file.write_bytes(data)  # into this build's own new folder (see build_report)
            crops.append(
                Crop(labels[record_key(e)], src(file), fmt(e["psnr_db"]), fmt(e["crop_psnr_db"]))
            )
        where = f"{box['size']}×{box['size']} HR pixels at (x={box['left']}, y={box['top']})"
        visuals.append(Visual(dataset, image, where, crops))
    return visuals, skipped
