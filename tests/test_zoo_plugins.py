"""Plugins in the zoo: a registered model the spec does not list trains under the zoo's recipe."""

from __future__ import annotations

import pytest
import torch
import yaml
from typer.testing import CliRunner

from srbench.cli import app
from srbench.registry import ModelCard, register_model, unregister_model
from srbench.training.recipe import RecipeError
from srbench.training.zoo import load_zoo, select

runner = CliRunner()


class _TinySR(torch.nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.body = torch.nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.shuffle = torch.nn.PixelShuffle(scale)

    def forward(self, x):
        return self.shuffle(self.body(x))


@pytest.fixture()
def tiny():
    card = ModelCard(name="tiny_zoo_plugin", family="tiny", paper="a test plugin", year=2026,
                     scales=(2, 3), input_channels="rgb", pre_upsampled=False, licence="MIT")  # fmt: skip
    register_model(card)(lambda scale, **_: _TinySR(scale))
    yield card.name
    unregister_model(card.name)


def _shared(recipe) -> dict:
    d = recipe.to_dict()
    return {k: v for k, v in d.items() if k not in ("model", "run_name", "init_from", "name")}


def test_a_plugin_gets_the_zoos_own_recipe(tiny):
    zoo = load_zoo("zoo")
    with pytest.raises(RecipeError, match="tiny_zoo_plugin is not in the zoo"):
        select(zoo, [tiny], [2])
    runs = select(zoo, [tiny, "idn"], [2, 3], registered=True)
    labels = [r.label for r in runs]
    assert labels == ["idn x2", "idn x3", "tiny_zoo_plugin x2", "tiny_zoo_plugin x3"]
    idn2, _, tiny2, tiny3 = runs
    assert _shared(tiny2.recipe) == _shared(idn2.recipe)  # same budget, data, loss, schedule
    assert tiny3.recipe.init_from == tiny2.name  # x3 starts from x2, as every zoo model's
    with pytest.raises(RecipeError, match="tiny_zoo_plugin supports x2, x3, not 4"):
        select(zoo, [tiny], [4], registered=True)


def test_zoo_train_trains_a_plugin(tiny, tmp_path):
    import skimage.data
    from PIL import Image

    images = tmp_path / "train"
    images.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(skimage.data, name)()[:64, :64]).save(images / f"{name}.png")
    spec = {
        "name": "tiny",
        "recipe": {
            "iterations": 4, "log_interval": 2, "checkpoint_interval": 2, "precision": "fp32",
            "data": {"train": [str(images)], "patch_size": 8, "batch_size": 4},
            "optimizer": {"name": "adam", "lr": 1e-3}, "schedule": {"name": "constant"},
            "validation": {"datasets": []},
        },
        "runs": [{"model": "srcnn", "scales": [2]}],
    }  # fmt: skip
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(spec))
    args = ["--spec", str(tmp_path / "zoo.yaml"), "--output-dir", str(tmp_path / "out"),
            "--models", tiny, "--scales", "2"]  # fmt: skip
    result = runner.invoke(app, ["zoo", "train", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = select(load_zoo(tmp_path / "zoo.yaml"), [tiny], [2], registered=True)
    assert (tmp_path / "out" / run.name / "weights.safetensors").is_file()
    status = runner.invoke(app, ["zoo", "status", *args[:-2]], catch_exceptions=False).stdout
    assert "tiny_zoo_plugin x2" in status and "finished" in status
