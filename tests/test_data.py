"""Benchmark specs, verification by decoded pixels, the data root, and bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from srbench.data import (
    BENCHMARK_KEYS,
    decode_image,
    get_benchmark,
    iter_benchmark,
    pixels_sha256,
    resolve_data_root,
    verify_benchmark,
)
from srbench.errors import DataError
from srbench.protocols import LEGACY_Y, LRCache, prepare
from srbench.sources import benchmark_source


def test_specs_have_expected_counts():
    counts = {k: get_benchmark(k).count for k in BENCHMARK_KEYS}
    assert counts == {"set5": 5, "set14": 14, "b100": 100, "urban100": 100, "manga109": 109}
    bridge = next(i for i in get_benchmark("set14").images if i.name == "bridge")
    assert (bridge.mode, bridge.channels) == ("L", 1)
    assert len(get_benchmark("set5").fingerprint) == 64


def test_no_crop_of_a_benchmark_that_may_not_be_redistributed_is_stored_or_committed(
    monkeypatch, tmp_path
):
    """Manga109's licence forbids redistribution: its spec names no visual images (so `srbench
    run` stores no crops of its pages in a result store, which a project commits), a spec that
    names some is refused, and the committed store holds none."""
    import json
    from pathlib import Path

    import srbench.data as data

    assert [k for k in BENCHMARK_KEYS if not get_benchmark(k).redistributable] == ["manga109"]
    assert get_benchmark("manga109").visual_images == ()
    assert all(get_benchmark(k).visual_images for k in ("set5", "set14", "b100", "urban100"))

    spec = json.loads((Path(data.__file__).parent / "benchmarks/manga109.json").read_text())
    spec["visual_images"] = ["YumeiroCooking"]
    (tmp_path / "manga109.json").write_text(json.dumps(spec))
    monkeypatch.setattr(data.resources, "files", lambda package: tmp_path)
    get_benchmark.cache_clear()
    try:
        with pytest.raises(DataError, match=r"licence forbids redistribution.*remove them"):
            get_benchmark("manga109")
    finally:
        get_benchmark.cache_clear()

    crops = Path(__file__).resolve().parent.parent / "results" / "crops"
    index = [json.loads(line) for line in (crops / "index.jsonl").read_text().splitlines()]
    assert index and not [c for c in index if c["dataset"] == "manga109"]
    assert not list(crops.glob("*/*/manga109"))


def test_unknown_benchmark():
    with pytest.raises(DataError, match="unknown benchmark 'set15'"):
        get_benchmark("set15")


def test_data_root_resolution(monkeypatch, tmp_path):
    (tmp_path / "env").mkdir()
    (tmp_path / "cli").mkdir()
    monkeypatch.setenv("SRBENCH_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "cli") == tmp_path / "cli"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv("SRBENCH_DATA")
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    assert resolve_data_root() == tmp_path / "cache" / "datasets"


@pytest.fixture
def set5_copy(data_root, tmp_path):
    """Set5 HR re-encoded as BMP and lossless WebP: must verify by pixels."""
    dest = tmp_path / "Set5" / "HR"
    dest.mkdir(parents=True)
    for i, src in enumerate(sorted((data_root / "Set5" / "HR").iterdir())):
        img = Image.open(src)
        if i % 2:
            img.save(dest / f"{src.stem}.bmp")
        else:
            img.save(dest / f"{src.stem}.webp", lossless=True)
    return tmp_path


@pytest.mark.data
def test_lossless_copies_verify(set5_copy):
    statuses = verify_benchmark(get_benchmark("set5"), set5_copy)
    assert [s.status for s in statuses] == ["ok"] * 5


@pytest.mark.data
def test_all_shared_benchmarks_verify(data_root):
    for key in ("set5", "set14", "b100", "urban100"):
        statuses = verify_benchmark(get_benchmark(key), data_root)
        assert all(s.status == "ok" for s in statuses), key


@pytest.mark.data
def test_mismatch_and_missing_are_named_image_by_image(set5_copy):
    hr = set5_copy / "Set5" / "HR"
    (hr / "bird.bmp").unlink()
    pixels = np.asarray(Image.open(hr / "baby.webp")).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(hr / "baby.webp", lossless=True)
    Image.open(hr / "butterfly.webp").save(hr / "butterfly.webp", quality=90)  # lossy
    statuses = {s.name: s for s in verify_benchmark(get_benchmark("set5"), set5_copy)}
    assert statuses["bird"].status == "missing"
    assert statuses["baby"].status == "mismatch"
    assert statuses["butterfly"].status == "mismatch"
    assert statuses["woman"].status == "ok"
    with pytest.raises(DataError, match=r"baby\.webp: pixels differ.*replace it"):
        list(iter_benchmark(get_benchmark("set5"), set5_copy))


def test_missing_and_empty_dataset_folder(tmp_path):
    with pytest.raises(
        DataError, match=r"Set5/HR: no Set5 folder; get it with `srbench data fetch set5`"
    ):
        benchmark_source("set5", tmp_path)
    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    with pytest.raises(DataError, match=r"Set5/HR: folder is empty"):
        benchmark_source("set5", tmp_path)
    with pytest.raises(DataError, match=r"srbench data import manga109 FOLDER"):
        benchmark_source("manga109", tmp_path)


def test_corrupt_and_truncated_images(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage):
        with pytest.raises(DataError, match=rf"{path.name}: cannot decode.*corrupt or truncated"):
            decode_image(path)
    with pytest.raises(DataError, match="file not found"):
        decode_image(tmp_path / "absent.png")


def test_rgba_and_16bit_are_refused(tmp_path):
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((8, 8, 4), np.uint8), "RGBA").save(rgba)
    with pytest.raises(DataError, match=r"rgba\.png: has an alpha channel"):
        decode_image(rgba)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(deep)
    with pytest.raises(DataError, match=r"deep\.png: is a I;16 image \(16-bit"):
        decode_image(deep)


def test_greyscale_is_decoded_as_single_channel(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), "L").save(grey)
    pixels = decode_image(grey)
    assert pixels.shape == (8, 8)
    assert pixels_sha256(pixels) == pixels_sha256(np.arange(64, dtype=np.uint8).reshape(8, 8))


def test_image_smaller_than_the_scale_is_refused():
    from srbench.data import HRImage

    tiny = HRImage("demo", "tiny", np.zeros((12, 12, 3), np.uint8), "0" * 64, None)
    with pytest.raises(DataError, match=r"demo/tiny: image 12x12 is too small for x4"):
        prepare(LEGACY_Y, tiny, 4, "y", LRCache(enabled=False))


@pytest.mark.data
def test_lr_cache_makes_lr_once(data_root, tmp_path):
    spec = get_benchmark("set5")
    hr = next(iter_benchmark(spec, data_root))
    cache = LRCache(tmp_path)
    calls = []

    def make():
        calls.append(1)
        return np.ones((3, 3))

    first = cache.get(hr, 2, "m", make)
    second = cache.get(hr, 2, "m", make)
    assert calls == [1]
    assert np.array_equal(first, second)
    assert [p.suffix for p in (tmp_path / "m").iterdir()] == [".lr"]  # one file per entry


@pytest.mark.data
def test_lr_cache_entries_belong_to_the_code_that_made_them(data_root, tmp_path):
    """After a change to the code that makes LR images (imresize, say) an image is made again,
    never read from the old code's entry; the hash covers imresize through the protocols."""
    from srbench.codehash import OWN_PACKAGES, _closure

    assert "srbench.imresize" in _closure(("srbench.protocols",), OWN_PACKAGES)
    hr = next(iter_benchmark(get_benchmark("set5"), data_root))
    old, new = LRCache(tmp_path), LRCache(tmp_path)
    old.code, new.code = "old-code", "new-code"
    assert LRCache(tmp_path).code == LRCache(tmp_path).code != "old-code"  # 12 hex digits
    assert old.get(hr, 2, "m", lambda: np.zeros((3, 3))).sum() == 0
    assert new.get(hr, 2, "m", lambda: np.ones((3, 3))).sum() == 9  # made again
    assert old.get(hr, 2, "m", lambda: np.full((3, 3), 5.0)).sum() == 0  # the old entry stays


@pytest.mark.data
def test_shared_lr_files_match_standard_preparation(data_root, tmp_path):
    """The standard protocol's LR is exactly the MATLAB-made file, through the cache too."""
    from srbench.protocols import STANDARD

    spec = get_benchmark("set5")
    cache = LRCache(tmp_path)
    for hr in iter_benchmark(spec, data_root):
        for _ in range(2):  # second pass reads the cache
            prepared = prepare(STANDARD, hr, 3, "rgb", cache)
            lr = np.asarray(Image.open(data_root / "Set5/LR_bicubic/X3" / f"{hr.name}.png"))
            assert np.array_equal(np.rint(prepared.model_input.transpose(1, 2, 0) * 255), lr)
    shutil.rmtree(tmp_path)
