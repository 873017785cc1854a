"""Write srbench/benchmarks/<key>.json from a pixel-fingerprint table or an image folder.

usage: python tools/make_benchmark_specs.py DATA_ROOT

For each benchmark, reads DATA_ROOT/<Folder>/HR.pixels.tsv (name, mode, height, width, channels,
sha256 of the decoded uint8 pixels) and writes the spec srbench ships. The fingerprints are facts
about the standard images (no pixels are copied), so a user's copy in any lossless format verifies.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

BENCHMARKS = {
    "set5": ("Set5", "Bevilacqua et al., BMVC 2012"),
    "set14": ("Set14", "Zeyde et al., Curves and Surfaces 2010"),
    "b100": ("B100", "Martin et al., ICCV 2001 (BSD100 test split)"),
    "urban100": ("Urban100", "Huang et al., CVPR 2015"),
    "manga109": ("Manga109", "Matsui et al., Multimedia Tools and Applications 2017"),
}
# The hard images SR papers show crops of: `srbench run` stores a zoomed crop of every model's
# output on these, and the report's visual comparison shows them.
VISUAL_IMAGES = {
    "set5": ["butterfly"],
    "set14": ["barbara"],
    "b100": ["253027"],
    "urban100": ["img_092", "img_004"],
    "manga109": ["YumeiroCooking"],
}


def _pinned_sources(path: Path) -> list:
    return json.loads(path.read_text()).get("download", []) if path.is_file() else []


def main(root: Path) -> None:
    out_dir = Path(__file__).resolve().parent.parent / "srbench" / "benchmarks"
    sys.path.insert(0, str(out_dir.parent.parent))  # run as a script from a checkout
    from srbench.files import atomic_write

    for key, (folder, citation) in BENCHMARKS.items():
        with open(root / folder / "HR.pixels.tsv", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        images = [
            {
                "name": r["name"],
                "mode": r["mode"],
                "height": int(r["height"]),
                "width": int(r["width"]),
                "channels": int(r["channels"]),
                "pixels_sha256": r["sha256_of_decoded_uint8_pixels"],
            }
            for r in sorted(rows, key=lambda r: r["name"])
        ]
        spec = {
            "key": key,
            "name": folder,
            "folder": folder,
            "citation": citation,
            "count": len(images),
            "visual_images": VISUAL_IMAGES[key],
            # the pinned archives (`srbench data fetch`) are kept from the spec being replaced
            "download": _pinned_sources(out_dir / f"{key}.json"),
            "images": images,
        }
        atomic_write(out_dir / f"{key}.json", json.dumps(spec, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
