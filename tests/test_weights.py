"""Weights files: safetensors round trips, refusals with actionable one-line messages, conversion of
the official IDN/VDSR weights, and a fidelity smoke test of the converted weights."""

from __future__ import annotations

import dataclasses
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from srbench.convert import convert_official_npz, convert_torch_checkpoint
from srbench.errors import WeightsError
from srbench.registry import create_model, get_card, list_models
from srbench.weights import (
    file_sha256,
    index_weights,
    load_weights,
    read_metadata,
    resolve_default_weights,
    save_tensors,
    save_weights,
    shipped_dir,
)


def _model(name: str, scale: int, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(name, scale)


def _save(tmp_path: Path, name: str, scale, seed: int = 0, filename: str | None = None) -> Path:
    first = scale if isinstance(scale, int) else min(scale)
    path = tmp_path / (filename or f"{name}_x{first}.safetensors")
    save_weights(_model(name, first, seed), path, model_name=name, scale=scale)
    return path


def _assert_same_state(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_round_trip_every_model(tmp_path, name):
    path = _save(tmp_path, name, 2, seed=1)
    fresh = _model(name, 2, seed=2)
    digest = load_weights(fresh, path, card=get_card(name), scale=2)
    assert digest == file_sha256(path)
    _assert_same_state(fresh, _model(name, 2, seed=1))
    assert read_metadata(path) == {"model": name, "scales": (2,), "format": "1"}


def test_save_is_deterministic_and_has_metadata(tmp_path):
    a = _save(tmp_path, "idn", 3, filename="a.safetensors")
    b = _save(tmp_path, "idn", 3, filename="b.safetensors")
    assert a.read_bytes() == b.read_bytes()
    from safetensors import safe_open

    with safe_open(str(a), "pt") as f:
        assert f.metadata() == {
            "srbench.model": "idn",
            "srbench.scales": "3",
            "srbench.format": "1",
        }
        assert len(list(f.keys())) == 62


def test_scale_agnostic_file_serves_every_listed_scale(tmp_path):
    path = _save(tmp_path, "vdsr", (2, 3, 4))
    assert read_metadata(path)["scales"] == (2, 3, 4)
    for s in (2, 3, 4):
        load_weights(_model("vdsr", s, seed=9), path, card=get_card("vdsr"), scale=s)


def test_create_model_pretrained_path(tmp_path):
    path = _save(tmp_path, "srcnn", 2, seed=5)
    model = create_model("srcnn", 2, pretrained=str(path))
    assert model.srbench_weights_sha256 == file_sha256(path)
    _assert_same_state(model, _model("srcnn", 2, seed=5))


# ----------------------------------------------------------------------------------------------
# Refusals
# ----------------------------------------------------------------------------------------------


def test_wrong_scale(tmp_path):
    path = _save(tmp_path, "idn", 3)
    with pytest.raises(WeightsError) as exc:
        load_weights(_model("idn", 2), path, card=get_card("idn"), scale=2)
    msg = _one_line(exc)
    assert "idn_x3.safetensors are for x3, not x2" in msg


def test_wrong_architecture(tmp_path):
    path = _save(tmp_path, "vdsr", 2)
    with pytest.raises(WeightsError) as exc:
        load_weights(_model("idn", 2), path, card=get_card("idn"), scale=2)
    assert "vdsr_x2.safetensors are for model vdsr, not idn" in _one_line(exc)


def test_truncated_file(tmp_path):
    path = _save(tmp_path, "srcnn", 2)
    data = path.read_bytes()
    for cut in (len(data) - 100, 20, 4, 0):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(WeightsError) as exc:
            load_weights(_model("srcnn", 2), bad, card=get_card("srcnn"), scale=2)
        msg = _one_line(exc)
        assert str(bad) in msg and ("truncated" in msg or "not a valid" in msg)


def test_corrupt_header(tmp_path):
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(struct.pack("<Q", 16) + b"{not json at all" + b"\0" * 8)
    with pytest.raises(WeightsError, match="not a valid safetensors file") as exc:
        load_weights(_model("srcnn", 2), bad, card=get_card("srcnn"), scale=2)
    assert str(bad) in _one_line(exc)


@pytest.mark.parametrize("filename", ["model.pth", "model.pt", "disguised.safetensors"])
def test_pickle_refused(tmp_path, filename):
    path = tmp_path / filename
    torch.save(_model("srcnn", 2).state_dict(), path)
    with pytest.raises(WeightsError) as exc:
        load_weights(_model("srcnn", 2), path, card=get_card("srcnn"), scale=2)
    msg = _one_line(exc)
    assert str(path) in msg
    assert "refusing to load a pickled checkpoint" in msg
    assert "srbench weights convert" in msg and "weights_only=True" in msg


def test_header_length_that_looks_like_pickle_magic(tmp_path):
    """A 640-byte safetensors header starts the file with 0x80 0x02, the pickle protocol-2 magic."""
    from srbench.weights import _serialize

    state = _model("srcnn", 2).state_dict()
    path = tmp_path / "x.safetensors"
    for pad in range(640):
        meta = {"srbench.model": "srcnn", "srbench.scales": "2", "srbench.format": "1"}
        data = _serialize(state, {**meta, "note": "x" * pad})
        if data[:2] == b"\x80\x02":
            break
    path.write_bytes(data)
    assert path.read_bytes()[:2] == b"\x80\x02"
    load_weights(_model("srcnn", 2, seed=1), path, card=get_card("srcnn"), scale=2)


def _raw_file(tmp_path, tensors, name="raw.safetensors", model="srcnn", scales="2"):
    path = tmp_path / name
    meta = {"srbench.model": model, "srbench.scales": scales, "srbench.format": "1"}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def test_missing_unexpected_and_misshaped_tensors_are_named(tmp_path):
    state = _model("srcnn", 2).state_dict()
    card = get_card("srcnn")

    missing = _raw_file(tmp_path, {k: v for k, v in state.items() if k != "conv3.bias"}, "m.st")
    with pytest.raises(WeightsError) as exc:
        load_weights(_model("srcnn", 2), missing, card=card, scale=2)
    msg = _one_line(exc)
    assert "missing tensors: conv3.bias" in msg and str(missing) in msg

    extra = _raw_file(tmp_path, {**state, "conv4.weight": torch.zeros(1)}, "u.st")
    with pytest.raises(WeightsError, match=r"unexpected tensors: conv4\.weight"):
        load_weights(_model("srcnn", 2), extra, card=card, scale=2)

    shaped = _raw_file(tmp_path, {**state, "conv2.weight": torch.zeros(32, 64, 1, 1)}, "s.st")
    with pytest.raises(WeightsError) as exc:
        load_weights(_model("srcnn", 2), shaped, card=card, scale=2)
    assert "conv2.weight (file [32, 64, 1, 1], model [32, 64, 5, 5])" in _one_line(exc)

    # srcnn_915 is srcnn with a 1x1 middle layer: the same names, one shape differs.
    other = _save(tmp_path, "srcnn_915", 2)
    with pytest.raises(WeightsError, match="for model srcnn_915, not srcnn"):
        load_weights(_model("srcnn", 2), other, card=card, scale=2)


def test_metadata_required(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file(dict(_model("srcnn", 2).state_dict()), str(path))
    with pytest.raises(WeightsError, match="without srbench metadata") as exc:
        load_weights(_model("srcnn", 2), path, card=get_card("srcnn"), scale=2)
    assert "srbench weights convert" in _one_line(exc)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(
            _model("srcnn", 2), tmp_path / "nope.safetensors", card=get_card("srcnn"), scale=2
        )


# ----------------------------------------------------------------------------------------------
# Default weights lookup
# ----------------------------------------------------------------------------------------------


def test_resolve_official_weights(tmp_path, monkeypatch):
    """``idn.official``: the authors' weights, from $SRBENCH_WEIGHTS or the cache, sha-checked."""
    from srbench.registry import ModelRef, WeightsRef, resolve

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    weights_dir = tmp_path / "weights"
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(weights_dir))
    ref = resolve("idn.official")
    assert ref.key == "idn.official" and ref.weights is ref.card.official_weights

    with pytest.raises(WeightsError) as exc:
        resolve_default_weights(ref, 2)
    msg = _one_line(exc)
    assert "idn_x2.safetensors" in msg and str(weights_dir) in msg
    assert str(tmp_path / "home" / ".cache" / "srbench" / "weights") in msg
    assert "srbench weights fetch idn.official" in msg and "Zheng222/IDN-Caffe" in msg

    path = _save(weights_dir, "idn", 2, filename="idn_x2.safetensors")
    with pytest.raises(WeightsError, match="does not match") as exc:  # random weights: wrong sha
        resolve_default_weights(ref, 2)
    assert str(path) in _one_line(exc)

    pinned = WeightsRef(filename="idn_x2.safetensors", sha256=file_sha256(path), source="test")
    card = dataclasses.replace(ref.card, official_weights={2: pinned})
    assert resolve_default_weights(ModelRef(card, "official"), 2) == path

    with pytest.raises(WeightsError, match="no srbench weights for x2"):
        resolve_default_weights(ModelRef(dataclasses.replace(get_card("srcnn"), weights={})), 2)


def test_models_says_whether_the_official_weights_are_installed(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from srbench.cli import app
    from srbench.cli.run import _installed
    from srbench.registry import WeightsRef

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "weights"))
    out = CliRunner().invoke(app, ["models", "idn"], catch_exceptions=False).stdout
    assert "idn.official x2/x3/x4 (not installed: `srbench weights" in out  # a wrapped cell
    assert "fetch idn`)" in out
    path = _save(tmp_path / "weights", "idn", 2, filename="idn_x2.safetensors")
    card = get_card("idn")
    pinned = {
        2: WeightsRef("idn_x2.safetensors", file_sha256(path), "test"),
        3: card.official_weights[3],
    }
    assert _installed(dataclasses.replace(card, official_weights=pinned)) == (
        "(installed: x2; the rest: `srbench weights fetch idn`)"
    )
    assert _installed(dataclasses.replace(card, official_weights={2: pinned[2]})) == "(installed)"


def test_shipped_weights_resolve_without_flags_and_refuse_a_changed_file(tmp_path, monkeypatch):
    """Shipped zoo weights come from the package folder; a file whose sha256 differs from the
    card's pin is refused with a one-line error (never silently used)."""
    import srbench.weights as weights_mod
    from srbench.registry import ModelRef, WeightsRef

    monkeypatch.setattr(weights_mod, "shipped_dir", lambda: tmp_path)
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "elsewhere"))
    path = _save(tmp_path, "srcnn", 2, filename="srcnn_x2.safetensors")
    pinned = WeightsRef("srcnn_x2.safetensors", file_sha256(path), "test", shipped=True)
    ref = ModelRef(dataclasses.replace(get_card("srcnn"), weights={2: pinned}))
    assert resolve_default_weights(ref, 2) == path
    model = _model("srcnn", 2)
    assert load_weights(model, path, card=ref.card, scale=2) == pinned.sha256

    wrong = dataclasses.replace(pinned, sha256="0" * 64)
    with pytest.raises(WeightsError) as exc:
        resolve_default_weights(ModelRef(dataclasses.replace(ref.card, weights={2: wrong})), 2)
    assert "does not match" in _one_line(exc) and "reinstall srbench" in _one_line(exc)
    path.unlink()
    with pytest.raises(WeightsError, match="installation is incomplete"):
        resolve_default_weights(ref, 2)


def test_every_shipped_file_matches_its_card_and_loads():
    """The package's own weights: present, pinned, strictly loadable, fp16 storage, finite."""
    from srbench.pretrained import shipped
    from srbench.registry import resolve

    for model, by_scale in shipped().items():
        for scale in by_scale:
            ref = resolve(model)
            path = resolve_default_weights(ref, scale)
            assert file_sha256(path) == ref.card.weights[scale].sha256
            net = _model(model, scale)
            load_weights(net, path, card=ref.card, scale=scale)
            assert all(t.dtype == torch.float32 for t in net.state_dict().values())
            assert all(t.dtype == torch.float16 for t in load_file(path).values())
    files = {row["file"] for by_scale in shipped().values() for row in by_scale.values()}
    total = sum((shipped_dir() / f).stat().st_size for f in files)
    assert total <= 30 * 2**20  # the budget for all shipped weights


def test_non_finite_weights_are_refused(tmp_path):
    model = _model("srcnn", 2)
    state = model.state_dict()
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_tensors(state, path, model_name="srcnn", scale=2)
    with pytest.raises(WeightsError) as exc:
        load_weights(_model("srcnn", 2), path, card=get_card("srcnn"), scale=2)
    assert "NaN or Inf" in _one_line(exc) and "conv1.weight" in _one_line(exc)
    assert str(path) in _one_line(exc)


def test_two_files_claiming_one_model_and_scale_are_an_error(tmp_path):
    first = _save(tmp_path, "idn", 2, filename="a.safetensors")
    second = _save(tmp_path, "idn", 2, filename="b.safetensors", seed=1)
    with pytest.raises(WeightsError) as exc:
        index_weights([tmp_path])
    msg = _one_line(exc)
    assert str(first) in msg and str(second) in msg and "idn x2" in msg
    assert index_weights([first]) == {("idn", 2): first}


# ----------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------


class _NotATensor:
    pass


def test_convert_torch_checkpoint(tmp_path):
    state = _model("srcnn", 2, seed=3).state_dict()
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, ckpt)
    out = tmp_path / "srcnn_x2.safetensors"
    digest = convert_torch_checkpoint(ckpt, "srcnn", 2, out)
    assert digest == file_sha256(out)
    model = _model("srcnn", 2, seed=4)
    load_weights(model, out, card=get_card("srcnn"), scale=2)
    _assert_same_state(model, _model("srcnn", 2, seed=3))

    # Keys dropped and renamed (e.g. an official EDSR checkpoint's frozen mean-shift layers).
    ckpt2 = tmp_path / "ckpt2.pt"
    torch.save(
        {**{f"net.{k}": v for k, v in state.items()}, "sub_mean.weight": torch.eye(3)}, ckpt2
    )
    convert_torch_checkpoint(
        ckpt2,
        "srcnn",
        2,
        tmp_path / "b.safetensors",
        drop=["sub_mean.*"],
        rename=lambda k: k.removeprefix("net."),
    )
    assert file_sha256(tmp_path / "b.safetensors") == digest

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": state, "obj": _NotATensor()}, evil)
    with pytest.raises(WeightsError, match="will not unpickle") as exc:
        convert_torch_checkpoint(evil, "srcnn", 2, tmp_path / "c.safetensors")
    assert str(evil) in _one_line(exc)
    assert not (tmp_path / "c.safetensors").exists()

    with pytest.raises(WeightsError, match=r"missing tensors: conv1\.bias"):
        torch.save({k: v for k, v in state.items() if k != "conv1.bias"}, tmp_path / "p.pth")
        convert_torch_checkpoint(tmp_path / "p.pth", "srcnn", 2, tmp_path / "d.safetensors")


@pytest.mark.data
def test_convert_official_npz(reference_weights, tmp_path, monkeypatch):
    for scale in (2, 3, 4):
        out = tmp_path / f"idn_x{scale}.safetensors"
        digest = convert_official_npz(reference_weights / f"idn_x{scale}.npz", "idn", scale, out)
        assert (
            digest == get_card("idn").official_weights[scale].sha256
        )  # deterministic, pinned in the card
        assert read_metadata(out) == {"model": "idn", "scales": (scale,), "format": "1"}
    out = tmp_path / "vdsr.safetensors"
    digest = convert_official_npz(reference_weights / "vdsr_official.npz", "vdsr", 2, out)
    assert digest == get_card("vdsr").official_weights[2].sha256
    assert read_metadata(out)["scales"] == (2, 3, 4)
    assert (
        convert_official_npz(
            reference_weights / "vdsr_official.npz", "vdsr", 4, tmp_path / "again.safetensors"
        )
        == digest
    )

    # The converted files are the authors' weights, what NAME.official loads: found via
    # $SRBENCH_WEIGHTS, sha-checked.
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    for name, scale in (("idn", 3), ("vdsr", 4)):
        model = create_model(f"{name}.official", scale, pretrained=True)
        assert model.srbench_weights_sha256 == get_card(name).official_weights[scale].sha256

    with pytest.raises(WeightsError) as exc:  # IDN weights into VDSR: every mismatch is named
        convert_official_npz(reference_weights / "idn_x2.npz", "vdsr", 2, tmp_path / "x.st")
    msg = _one_line(exc)
    assert "missing tensors: conv10.bias" in msg and "unexpected tensors: conv3_1.bias" in msg


def test_convert_npz_key_spellings(tmp_path):
    state = _model("srcnn", 2, seed=7).state_dict()
    npz = tmp_path / "srcnn.npz"
    np.savez(
        npz,
        **{k.replace(".weight", "_w").replace(".bias", "_b"): v.numpy() for k, v in state.items()},
    )
    out = tmp_path / "srcnn_x2.safetensors"
    convert_official_npz(npz, "srcnn", 2, out)
    model = _model("srcnn", 2, seed=8)
    load_weights(model, out, card=get_card("srcnn"), scale=2)
    _assert_same_state(model, _model("srcnn", 2, seed=7))


# ----------------------------------------------------------------------------------------------
# Fidelity smoke test: official weights under the legacy Y-only pipeline (Set5 baby, x2)
# ----------------------------------------------------------------------------------------------


def _legacy_y_psnr(model, hr_path: Path, scale: int) -> float:
    from PIL import Image

    from srbench.imresize import imresize, modcrop

    rgb = np.asarray(Image.open(hr_path).convert("RGB")).astype(np.float64)
    y = 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255
    hr = np.floor(modcrop(y, scale) + 0.5)  # rgb2ycbcr on uint8: Y rounded to uint8
    lr = imresize(hr / 255, 1 / scale)  # float64, unrounded
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.no_grad():
        x = torch.from_numpy(lr)[None, None].float().to(device)
        out = model.to(device).eval()(x)[0, 0].double().cpu().numpy()
    sr = np.floor(np.clip(out * 255, 0, 255) + 0.5)  # uint8(out * 255)
    b = scale
    mse = np.mean((sr[b:-b, b:-b] - hr[b:-b, b:-b]) ** 2)
    return 10 * math.log10(255**2 / mse)


@pytest.mark.data
@pytest.mark.slow
def test_official_weights_reproduce_baby_x2(data_root, reference_weights, tmp_path):
    baby = data_root / "Set5" / "HR" / "baby.png"
    idn_file, vdsr_file = tmp_path / "idn_x2.safetensors", tmp_path / "vdsr.safetensors"
    convert_official_npz(reference_weights / "idn_x2.npz", "idn", 2, idn_file)
    convert_official_npz(reference_weights / "vdsr_official.npz", "vdsr", 2, vdsr_file)

    bicubic = _legacy_y_psnr(create_model("bicubic", 2), baby, 2)
    idn = _legacy_y_psnr(create_model("idn", 2, pretrained=str(idn_file)), baby, 2)
    vdsr = _legacy_y_psnr(create_model("vdsr", 2, pretrained=str(vdsr_file)), baby, 2)
    assert idn == pytest.approx(38.88, abs=0.01), idn  # reference-weights README: 38.88
    assert vdsr > bicubic + 1.0, (vdsr, bicubic)  # measured: vdsr 38.75, bicubic 37.07
