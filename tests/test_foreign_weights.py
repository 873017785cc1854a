"""Weights knowledge per model family: a family module alone makes its authors' files convert and
run as ``NAME.official``; the shipped-weights manifest is data written by `srbench zoo ship`."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from srbench.convert import ForeignFile, convert, recognise
from srbench.errors import WeightsError
from srbench.registry import (
    ModelCard,
    create_model,
    get_card,
    register_model,
    resolve,
    unregister_model,
)
from srbench.weights import file_sha256

# A family module as a contributor would write it: the architecture, its card with the authors'
# pinned weights, and the recogniser of their file (keys "W1"/"B1" in an .npz, scale in "S").
FAMILY = """
import torch
from torch import nn

from srbench.convert import ForeignFile, Recognised
from srbench.registry import ModelCard, WeightsRef, register_model


class Toy(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.shuffle(self.conv(x))


def recognise_release(foreign: ForeignFile):
    if foreign.format != "npz" or set(foreign.tensors) != {"W1", "B1", "S"}:
        return None
    tensors = {"conv.weight": foreign.tensors["W1"], "conv.bias": foreign.tensors["B1"]}
    return Recognised("toyfam", int(foreign.tensors["S"].item()), tensors)


@register_model(
    ModelCard(
        name="toyfam", family="toy", paper="a test family", year=2026, scales=(2,),
        input_channels="rgb", pre_upsampled=False, licence="MIT",
        official_weights={2: WeightsRef("toyfam_x2.safetensors", "{SHA}", "the toy authors")},
        recognise_weights=recognise_release,
    )
)
def toyfam(scale, **overrides):
    return Toy(scale)
"""


def _release(path, seed: int = 0) -> None:
    """The toy authors' file: their own key names, and the scale as a tensor."""
    g = torch.Generator().manual_seed(seed)
    np.savez(
        path,
        W1=torch.randn(12, 3, 3, 3, generator=g).numpy(),
        B1=torch.randn(12, generator=g).numpy(),
        S=np.array(2),
    )


def _load_family(tmp_path, sha: str):
    source = tmp_path / "toyfam_family.py"
    source.write_text(textwrap.dedent(FAMILY).replace("{SHA}", sha))
    spec = importlib.util.spec_from_file_location("toyfam_family", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules["toyfam_family"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def toyfam(tmp_path):
    yield tmp_path
    unregister_model("toyfam")
    sys.modules.pop("toyfam_family", None)


def test_a_family_module_alone_makes_its_authors_file_convert_and_run(toyfam, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    release = tmp_path / "toy_release.npz"
    _release(release)
    # The pin is what converting the authors' file gives: compute it once, then pin it.
    _load_family(tmp_path, "")
    first = convert(release, tmp_path / "first.safetensors")
    unregister_model("toyfam")
    _load_family(tmp_path, first.sha256)

    got = convert(release, tmp_path / "w" / "toyfam_x2.safetensors")  # no --model, no --scale
    assert (got.model, got.scales, got.format, got.note) == ("toyfam", (2,), "npz", "")
    assert got.sha256 == first.sha256 == file_sha256(got.path)
    assert set(load_file(got.path)) == {"conv.weight", "conv.bias"}
    # NAME.official resolves to the card's pin and loads from $SRBENCH_WEIGHTS.
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    ref = resolve("toyfam.official")
    assert ref.key == "toyfam.official" and ref.weights[2].sha256 == got.sha256
    model = create_model("toyfam.official", 2, pretrained=True)
    assert model.srbench_weights_sha256 == got.sha256
    assert torch.equal(model.conv.bias, torch.from_numpy(np.load(release)["B1"]))
    # Other weights in the authors' format convert too, with a note: not the pinned file.
    other = tmp_path / "other.npz"
    _release(other, seed=1)
    note = convert(other, tmp_path / "o.safetensors").note
    assert "not the card's pinned toyfam.official x2" in note


def test_two_cards_claiming_one_file_is_an_error(toyfam, tmp_path):
    _load_family(tmp_path, "")
    card = ModelCard(name="toyfam_twin", family="toy", paper="p", year=2026, scales=(2,),
                     input_channels="rgb", pre_upsampled=False, licence="MIT",
                     recognise_weights=get_card("toyfam").recognise_weights)  # fmt: skip
    register_model(card)(lambda scale, **_: create_model("toyfam", scale))
    try:
        release = tmp_path / "toy_release.npz"
        _release(release)
        with pytest.raises(WeightsError, match=r"several models recognise this file \(toyfam, "):
            convert(release, tmp_path / "x.safetensors")
    finally:
        unregister_model("toyfam_twin")


def test_built_in_families_recognise_only_their_own_files():
    """IDN knows Caffe layers, VDSR a twenty-layer .mat, EDSR the release's keys; a plain
    state dict with none of them is recognised by no card."""
    idn = create_model("idn", 2).state_dict()
    caffe = ForeignFile(__file__, "caffemodel", idn, {"upsample": (3, 3)})  # type: ignore[arg-type]
    assert (recognise(caffe).model, recognise(caffe).scale) == ("idn", 3)
    assert recognise(ForeignFile(__file__, "npz", idn)) is None  # type: ignore[arg-type]
    vdsr = create_model("vdsr", 2).state_dict()
    found = recognise(ForeignFile(__file__, "mat", vdsr))  # type: ignore[arg-type]
    assert (found.model, found.scale) == ("vdsr", None)
    edsr = create_model("edsr_baseline", 3).state_dict()
    found = recognise(ForeignFile(__file__, "torch", edsr))  # type: ignore[arg-type]
    assert (found.model, found.scale, set(found.tensors)) == ("edsr_baseline", 3, set(edsr))
    srcnn = create_model("srcnn", 2).state_dict()
    assert recognise(ForeignFile(__file__, "torch", srcnn)) is None  # type: ignore[arg-type]


def test_zoo_ship_writes_the_manifest_as_data(tmp_path):
    """`srbench zoo ship` writes fp16 weights and their row in shipped.json, keeping the other
    models' rows; the cards read the manifest (no generated Python)."""
    from srbench.pretrained import SHIPPED_FIELDS, SHIPPED_MANIFEST, shipped, zoo_weights
    from srbench.training.zoo import load_zoo, ship
    from srbench.weights import save_weights

    run = next(r for r in load_zoo("zoo").runs if r.model == "srcnn" and r.scales == (3,))
    folder = tmp_path / "zoo" / run.name
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    save_weights(create_model("srcnn", 3), folder / "weights.safetensors", model_name="srcnn",
                 scale=3)  # fmt: skip
    info = {"iterations": 1000, "train_seconds": 90.0, "cpu_model": "Test CPU",
            "torch_threads": 2, "precision": "bf16"}  # fmt: skip
    (folder / "run.json").write_text(json.dumps(info))
    package = tmp_path / "pkg"
    package.mkdir()
    shutil.copy(SHIPPED_MANIFEST, package / SHIPPED_MANIFEST.name)
    before = json.loads(SHIPPED_MANIFEST.read_text())

    (row,) = ship([run], output_dir=tmp_path / "zoo", package_dir=package)
    written = json.loads((package / "shipped.json").read_text())
    sha = file_sha256(package / "srcnn_x3.safetensors")
    assert row["sha256"] == sha
    assert written["srcnn"]["3"] == {
        "file": "srcnn_x3.safetensors", "sha256": sha, "run": run.name, "recipe": "zoo",
        "tag": "zoo1k_cosine", "seed": 0, "train_seconds": 90.0, "iterations": 1000,
        "machine": "Test CPU, 2 threads", "precision": "bf16",
    }  # fmt: skip
    assert tuple(written["srcnn"]["3"]) == tuple(sorted(SHIPPED_FIELDS))
    assert {k: v for k, v in written.items() if k != "srcnn"} == {
        k: v for k, v in before.items() if k != "srcnn"
    }
    assert written["srcnn"]["2"] == before["srcnn"]["2"]
    assert all(
        t.dtype == torch.float16 for t in load_file(package / "srcnn_x3.safetensors").values()
    )
    # The package's own manifest is untouched, and the cards read exactly it.
    assert json.loads(SHIPPED_MANIFEST.read_text()) == before
    assert {s: w.sha256 for s, w in zoo_weights("idn").items()} == {
        s: r["sha256"] for s, r in shipped()["idn"].items()
    }
    assert get_card("idn").weights == zoo_weights("idn")


def test_cards_declare_min_input_size_and_profiling_reads_it():
    from srbench.errors import ProfilingError
    from srbench.profiling import lr_shape, parse_size

    assert {get_card(name).min_input_size for name in ("idn", "vdsr", "drn_s")} == {1}
    card = ModelCard(name="_min16", family="t", paper="p", year=2026, scales=(2,),
                     input_channels="rgb", pre_upsampled=False, min_input_size=16)  # fmt: skip
    with pytest.raises(ProfilingError, match="at least 16x16"):
        lr_shape(card, 2, parse_size("8"))
    assert lr_shape(card, 2, parse_size("16")) == (1, 3, 16, 16)
