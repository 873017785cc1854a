"""The authors' own files: converted straight from .caffemodel / .mat / EDSR-PyTorch checkpoints,
and fetched over HTTP (a local server on 127.0.0.1 serving shared/, never another host)."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from srbench.convert import convert, detect_format, parse_caffemodel
from srbench.errors import WeightsError
from srbench.fetch import fetch
from srbench.registry import create_model, get_card


@pytest.fixture(scope="module")
def originals(reference_weights):
    root = reference_weights / "original"
    if not (root / "IDN_x2.caffemodel").is_file():
        pytest.fail(f"the authors' original files are missing from {root}")
    return root


def _same_tensors(a: Path, b: Path) -> None:
    ta, tb = load_file(a), load_file(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


# -- conversion ---------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_caffemodel_converts_to_the_npz_tensors_and_the_pinned_hash(
    originals, reference_weights, tmp_path, scale
):
    got = convert(originals / f"IDN_x{scale}.caffemodel", tmp_path / "c.safetensors")
    assert (got.model, got.scales, got.format) == ("idn", (scale,), "caffemodel")
    assert got.sha256 == get_card("idn").official_weights[scale].sha256
    ref = convert(reference_weights / f"idn_x{scale}.npz", tmp_path / "n.safetensors",
                  model="idn", scale=scale)  # fmt: skip
    _same_tensors(got.path, ref.path)
    assert got.note == ""


@pytest.mark.data
def test_mat_converts_to_the_npz_tensors_for_every_scale(originals, reference_weights, tmp_path):
    got = convert(originals / "VDSR_Official.mat", tmp_path / "m.safetensors")
    assert (got.model, got.scales, got.format) == ("vdsr", (2, 3, 4), "mat")
    assert got.sha256 == get_card("vdsr").official_weights[2].sha256
    ref = convert(reference_weights / "vdsr_official.npz", tmp_path / "n.safetensors",
                  model="vdsr", scale=2)  # fmt: skip
    _same_tensors(got.path, ref.path)


@pytest.mark.data
def test_caffemodel_layers_and_the_scale_it_declares(originals):
    layers = parse_caffemodel((originals / "IDN_x3.caffemodel").read_bytes())
    with_blobs = [layer for layer in layers if layer.blobs]
    assert [layer.name for layer in with_blobs][:3] == ["conv1", "conv2", "conv3_1"]
    (up,) = [layer for layer in with_blobs if layer.name == "upsample"]
    assert "Deconvolution" in up.type and up.stride[0] == 3
    assert up.blobs[0].shape == (64, 1, 17, 17)
    n_params = sum(b.size for layer in with_blobs for b in layer.blobs)
    assert n_params == 552_769  # IDN's published parameter count


@pytest.mark.data
def test_wrong_scale_or_model_for_an_original_is_refused(originals, reference_weights, tmp_path):
    with pytest.raises(WeightsError, match=r"is for x3 .*not x2"):
        convert(originals / "IDN_x3.caffemodel", tmp_path / "x.safetensors", scale=2)
    with pytest.raises(WeightsError, match="holds idn weights, not vdsr"):
        convert(originals / "IDN_x2.caffemodel", tmp_path / "x.safetensors", model="vdsr")
    # The x3 .npz converted as x2 has the shapes of x2 (IDN's are scale-independent) but the
    # card's pinned x3 hash: refused, and no file is left.
    with pytest.raises(WeightsError, match=r"authors' idn x3 weights .*not x2"):
        convert(reference_weights / "idn_x3.npz", tmp_path / "y.safetensors",
                model="idn", scale=2)  # fmt: skip
    assert not (tmp_path / "y.safetensors").exists()


@pytest.mark.data
def test_acceptance_caffemodel_then_legacy_run(originals, tmp_path, monkeypatch, data_root):
    """`weights convert IDN_x2.caffemodel` (no flags) then `run --models idn.official`: 37.83."""
    from typer.testing import CliRunner

    from srbench.cli import app

    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    cli = CliRunner()
    result = cli.invoke(app, ["weights", "convert", str(originals / "IDN_x2.caffemodel"), "-o",
                              str(tmp_path / "w" / "idn_x2.safetensors")])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["run", "--models", "idn.official", "--datasets", "set5", "--scales",
                              "2", "--protocol", "legacy-y", "--results-dir",
                              str(tmp_path / "r")])  # fmt: skip
    assert result.exit_code == 0, result.output
    from srbench.results import ResultStore

    records = ResultStore(tmp_path / "r").iter_records()
    assert {r["model"] for r in records} == {"idn.official"}
    published = get_card("idn").published_for("set5", 2)
    assert np.mean([r["psnr_db"] for r in records]) == pytest.approx(published.psnr_db, abs=0.01)


def _edsr_checkpoint(scale: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """An EDSR-PyTorch release state dict: official key names and shapes, MeanShift convs."""
    torch.manual_seed(seed)
    state = {k: torch.randn_like(v) * 0.01 for k, v in create_model("edsr_baseline", scale)
             .state_dict().items()}  # fmt: skip
    mean = 255.0 * torch.tensor([0.4488, 0.4371, 0.4040])
    eye = torch.eye(3).view(3, 3, 1, 1)
    state.update({"sub_mean.weight": eye, "sub_mean.bias": -mean,
                  "add_mean.weight": eye, "add_mean.bias": mean})  # fmt: skip
    return state


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_release_checkpoint_maps_with_its_scale(tmp_path, scale):
    state = _edsr_checkpoint(scale)
    path = tmp_path / f"edsr_baseline_x{scale}-00000000.pt"
    torch.save(state, path)
    got = convert(path, tmp_path / "e.safetensors")  # model and scale read from the keys
    assert (got.model, got.scales, got.format) == ("edsr_baseline", (scale,), "torch")
    loaded = load_file(got.path)
    assert "sub_mean.weight" not in loaded and set(loaded) == set(
        create_model("edsr_baseline", scale).state_dict()
    )
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    # The same output as the original network: MeanShift (x - mean) then + mean, rgb_range 255.
    model = create_model("edsr_baseline", scale, pretrained=str(got.path)).eval()
    x = torch.rand(1, 3, 8, 8)
    assert model(x).shape == (1, 3, 8 * scale, 8 * scale)


def test_edsr_wrong_scale_tail_is_refused_by_strict_loading(tmp_path):
    state = _edsr_checkpoint(2)
    path = tmp_path / "edsr_baseline_x2.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"the file is for x2 .*not x3"):
        convert(path, tmp_path / "e.safetensors", scale=3)  # the file's upsampler says x2
    # An x4 checkpoint whose first upsampler stage is x3's: strict loading names the tensor.
    mixed = _edsr_checkpoint(4)
    mixed["tail.0.0.weight"] = _edsr_checkpoint(3)["tail.0.0.weight"]
    mixed["tail.0.0.bias"] = _edsr_checkpoint(3)["tail.0.0.bias"]
    torch.save(mixed, path)
    with pytest.raises(WeightsError) as exc:
        convert(path, tmp_path / "e.safetensors")
    message = str(exc.value)
    assert "shape mismatches: tail.0.0.bias (file [576], model [256])" in message
    assert "\n" not in message and not (tmp_path / "e.safetensors").exists()


def test_edsr_with_another_mean_is_refused(tmp_path):
    state = _edsr_checkpoint(2)
    state["sub_mean.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "x.pt")
    with pytest.raises(WeightsError, match="not the DIV2K mean shift"):
        convert(tmp_path / "x.pt", tmp_path / "e.safetensors")


def test_renamed_pth_is_detected_by_its_bytes(tmp_path):
    state = create_model("srcnn", 2).state_dict()
    fake = tmp_path / "weights.safetensors"
    torch.save(state, fake)  # a .pth with the wrong suffix
    assert detect_format(fake) == "torch"
    got = convert(fake, tmp_path / "out.safetensors", model="srcnn", scale=2)
    assert got.format == "torch"
    from srbench.weights import load_weights

    with pytest.raises(WeightsError) as exc:  # loading it as weights says how to convert it
        load_weights(create_model("srcnn", 2), fake, card=get_card("srcnn"), scale=2)
    assert "srbench weights convert" in str(exc.value)
    load_weights(create_model("srcnn", 2), got.path, card=get_card("srcnn"), scale=2)  # works


# -- fetch over HTTP (127.0.0.1 only) -------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate: ClassVar[set[str]] = set()

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        if name in self.truncate:
            data = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])  # then close: a broken download
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    _Handler.truncate = set()


@pytest.mark.data
def test_fetch_downloads_checks_and_converts(originals, server, tmp_path, monkeypatch):
    root, url = server
    for name in ("IDN_x2.caffemodel", "IDN_x3.caffemodel", "IDN_x4.caffemodel",
                 "VDSR_Official.mat"):  # fmt: skip
        (root / name).write_bytes((originals / name).read_bytes())
    monkeypatch.setenv("SRBENCH_WEIGHTS_MIRROR", url)
    cache = tmp_path / "cache"
    seen = []
    got = fetch("idn", cache_dir=cache, progress=lambda n, d, t: seen.append((n, d, t)))
    assert [g.scales for g in got] == [(2,), (3,), (4,)]
    for g in got:
        assert g.sha256 == get_card("idn").official_weights[g.scales[0]].sha256
    assert seen[-1][1] == seen[-1][2]  # progress reached the total
    (vdsr,) = fetch("vdsr.official", cache_dir=cache)
    assert vdsr.scales == (2, 3, 4) and vdsr.key == "vdsr.official"
    assert sorted(p.name for p in cache.iterdir()) == [
        "idn_x2.safetensors",
        "idn_x3.safetensors",
        "idn_x4.safetensors",
        "vdsr.safetensors",
    ]  # fmt: skip  (no download left behind)


@pytest.mark.data
def test_fetch_wrong_hash_truncated_and_refused_leave_nothing(originals, server, tmp_path,
                                                             monkeypatch):  # fmt: skip
    root, url = server
    cache = tmp_path / "cache"
    monkeypatch.setenv("SRBENCH_WEIGHTS_MIRROR", url)
    # A wrong file under the right name.
    (root / "IDN_x2.caffemodel").write_bytes((originals / "IDN_x3.caffemodel").read_bytes())
    with pytest.raises(WeightsError) as exc:
        fetch("idn", cache_dir=cache)
    assert "does not match the model card" in str(exc.value) and "\n" not in str(exc.value)
    assert not cache.exists() or not any(cache.iterdir())
    # A connection that breaks off half way.
    (root / "IDN_x2.caffemodel").write_bytes((originals / "IDN_x2.caffemodel").read_bytes())
    _Handler.truncate = {"IDN_x2.caffemodel"}
    with pytest.raises(WeightsError, match=r"truncated download|broke off"):
        fetch("idn", cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())
    # A refused connection: a closed port on 127.0.0.1.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SRBENCH_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsError, match=r"cannot download .*refused"):
        fetch("idn", cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())


def test_fetch_of_a_model_without_published_weights():
    with pytest.raises(WeightsError, match="no published weights"):
        fetch("drn")
