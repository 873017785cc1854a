"""Your own images: a folder as an ad-hoc benchmark, and `srbench upscale`."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image
from typer.testing import CliRunner

from srbench.cli import app
from srbench.imresize import imresize
from srbench.results import ResultStore
from srbench.userdata import folder_source

runner = CliRunner()
DEMO = ("astronaut", "camera", "chelsea")


def _invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture()
def pics(tmp_path):
    folder = tmp_path / "My Pics"
    folder.mkdir()
    for name in DEMO:
        Image.fromarray(getattr(skimage.data, name)()).save(folder / f"{name}.png")
    return folder


def test_a_folder_is_an_adhoc_benchmark_with_the_demo_sets_numbers(pics, tmp_path):
    store = tmp_path / "store"
    common = ("run", "--models", "bicubic", "--scales", "2", "--results-dir", str(store))
    result = _invoke(*common, "--datasets", str(pics))
    assert result.exit_code == 0, result.output
    key = folder_source(pics).key
    assert key.startswith("my_pics-") and len(key) == len("my_pics-") + 10
    assert f"ad-hoc benchmark {key} (3 images" in result.stderr
    assert _invoke(*common, "--datasets", "demo").exit_code == 0
    records = ResultStore(store).latest_records()
    mine = {r["image"]: r for r in records if r["dataset"] == key}
    demo = {r["image"]: r for r in records if r["dataset"] == "demo" and r["image"] in DEMO}
    assert sorted(mine) == sorted(DEMO) and not any(r["standard_benchmark"] for r in mine.values())
    for name in DEMO:  # same pixels, same protocol: the same numbers as the demo set's
        assert mine[name]["hr_sha256"] == demo[name]["hr_sha256"]
        assert mine[name]["psnr_db"] == demo[name]["psnr_db"]
        assert mine[name]["ssim"] == demo[name]["ssim"]


def test_the_name_follows_the_content(pics, tmp_path):
    first = folder_source(pics).key
    moved = pics.rename(tmp_path / "other")
    assert folder_source(moved).key == "other-" + first.split("-")[1]  # same content hash
    pixels = np.asarray(Image.open(moved / "camera.png")).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(moved / "camera.png")
    assert folder_source(moved).key.split("-")[1] != first.split("-")[1]


def test_folder_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _invoke("run", "--models", "bicubic", "--datasets", str(tmp_path / "empty"),
                     "--results-dir", str(tmp_path / "s"))  # fmt: skip
    assert "empty: no images (.png" in _one_line_error(result)
    result = _invoke("upscale", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o"))
    assert "missing.png: no such file or folder" in _one_line_error(result)
    result = _invoke("upscale", "--models", "drn,idn", str(tmp_path), "-o", str(tmp_path / "o"))
    assert "one model and one scale" in _one_line_error(result)


@pytest.mark.parametrize("model", ["drn", "srcnn"])  # an RGB model and a Y model
def test_upscale_equals_the_runs_sr_image(tmp_path, model):
    """LR made as `run` makes it -> `upscale` gives the very image `run --save-images` saves."""
    hr = skimage.data.chelsea()[:96, :120]
    (tmp_path / "hr").mkdir()
    Image.fromarray(hr).save(tmp_path / "hr" / "cat.png")
    Image.fromarray(imresize(hr, 1 / 2)).save(tmp_path / "cat.png")
    result = _invoke("run", "--models", model, "--scales", "2", "--datasets", str(tmp_path / "hr"),
                     "--results-dir", str(tmp_path / "s"),
                     "--save-images", str(tmp_path / "saved"))  # fmt: skip
    assert result.exit_code == 0, result.output
    result = _invoke("upscale", "--models", model, "--scale", "x2", str(tmp_path / "cat.png"),
                     "-o", str(tmp_path / "up"))  # fmt: skip
    assert result.exit_code == 0, result.output
    up = np.asarray(Image.open(tmp_path / "up" / "cat_x2.png"))
    saved = np.asarray(Image.open(next((tmp_path / "saved").rglob("cat.png"))))
    assert up.shape == (96, 120, 3) and np.array_equal(up, saved)
    # Tiled (for large images): tiles overlap by the receptive field, so the same picture up to
    # the last bit of float summation order (a rounding flip here and there).
    result = _invoke("upscale", "--models", model, "--tile", "24", str(tmp_path / "cat.png"),
                     "-o", str(tmp_path / "tiled"))  # fmt: skip
    assert result.exit_code == 0, result.output
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "cat_x2.png")).astype(int)
    assert np.abs(tiled - up).max() <= 1 and (tiled != up).mean() < 0.01
