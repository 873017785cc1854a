"""Any checkpoint (the optional extra srbench[spandrel]): the architecture detected from the keys
of state dicts saved from spandrel's own classes at random initialisation (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from typer.testing import CliRunner

from srbench.cli import app
from srbench.registry import get_card
from srbench.results import ResultStore
from srbench.weights import file_sha256

spandrel = pytest.importorskip("spandrel")
runner = CliRunner()


@pytest.fixture()
def pics(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    # `run` also counts MACs at 720p; minutes for SwinIR on CPU and not what is tested here.
    monkeypatch.setattr("srbench.runner._ensure_costs", lambda *args: "")
    folder = tmp_path / "pics"
    folder.mkdir()
    for i, name in enumerate(("astronaut", "chelsea", "coffee")):
        Image.fromarray(getattr(skimage.data, name)()[:60, 40 * i : 40 * i + 52]).save(
            folder / f"{name}.png"
        )
    from srbench import registry

    before = set(registry._REGISTRY)
    yield folder
    # a detected checkpoint registers a card; later tests iterate every registered model
    for name in set(registry._REGISTRY) - before:
        registry.unregister_model(name)


def _swinir_light():
    from spandrel.architectures.SwinIR import SwinIR

    return SwinIR(upscale=2, img_size=64, window_size=8, img_range=1.0, depths=[6, 6, 6, 6],
                  embed_dim=60, num_heads=[6, 6, 6, 6], mlp_ratio=2,
                  upsampler="pixelshuffledirect")  # fmt: skip


def _safmn():
    from spandrel.architectures.SAFMN import SAFMN

    return SAFMN(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=2)


@pytest.mark.parametrize(("make", "arch"), [(_swinir_light, "SwinIR"), (_safmn, "SAFMN")])
def test_a_checkpoint_runs_with_weights_only(pics, tmp_path, make, arch):
    torch.manual_seed(0)
    net = make().eval()
    ckpt = tmp_path / f"{arch}.pth"
    torch.save({"params": net.state_dict()}, ckpt)  # the BasicSR-style wrapper is unwrapped
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", "--weights", str(ckpt), "--datasets", str(pics),
                                 "--results-dir", str(store)], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    name = f"{arch.lower()}_{file_sha256(ckpt)[:8]}"
    assert f"{arch} x2 detected by spandrel {spandrel.__version__}; stored as {name}" in (
        result.stderr.replace("\n", " ")
    )
    card = get_card(name)
    params = sum(p.numel() for p in net.parameters())
    assert card.family == arch and card.scales == (2,) and card.input_channels == "rgb"
    assert card.published_params == {2: params}
    assert f"detected by spandrel {spandrel.__version__}" in card.notes
    records = ResultStore(store).latest_records()
    assert len(records) == 3 and {r["model"] for r in records} == {name}
    assert {r["scale"] for r in records} == {2}
    # Evaluated like any model, with spandrel's own inference (its padding; 30x26 LR here).
    image = np.asarray(Image.open(pics / "chelsea.png"))
    from srbench.data import HRImage, pixels_sha256
    from srbench.protocols import LRCache, get_protocol, prepare, score

    protocol = get_protocol("standard")
    hr = HRImage("x", "chelsea", image, pixels_sha256(image), None)
    prepared = prepare(protocol, hr, 2, "rgb", LRCache(enabled=False))
    desc = spandrel.ModelLoader().load_from_state_dict(net.state_dict())
    with torch.no_grad():
        out = desc(torch.from_numpy(prepared.model_input).float()[None])[0]
    expected = score(protocol, out, prepared).metrics["psnr_db"]
    got = next(r["psnr_db"] for r in records if r["image"] == "chelsea")
    assert got == pytest.approx(expected, abs=1e-4)


def test_a_given_name_and_unknown_checkpoints(pics, tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "safmn.pth"
    torch.save(_safmn().state_dict(), ckpt)
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", "--weights", str(ckpt), "--name", "my-SAFMN",
                                 "--datasets", str(pics), "--results-dir", str(store)],
                           catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {r["model"] for r in ResultStore(store).latest_records()} == {"my_safmn"}
    odd = tmp_path / "odd.pth"
    torch.save({"body.0.weight": torch.zeros(8, 3, 3, 3), "tail.weight": torch.zeros(3, 8)}, odd)
    result = runner.invoke(app, ["run", "--weights", str(odd), "--datasets", str(pics),
                                 "--results-dir", str(store)])  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in result.output and len(lines) == 1
    assert f"odd.pth: no architecture spandrel {spandrel.__version__} knows matches" in lines[0]
