"""Third-party models through the `srbench.architectures` entry-point group.

The plugin is a real installed distribution: a package plus a ``.dist-info`` with
``entry_points.txt`` on ``sys.path``, which is exactly what ``pip install`` leaves behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import srbench.registry as registry
from srbench.errors import ModelNotFoundError, SRBenchError

PLUGIN_CODE = textwrap.dedent(
    """
    import torch
    from srbench.registry import ModelCard, register_model

    class TinySR(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale
            self.body = torch.nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
            self.shuffle = torch.nn.PixelShuffle(scale)

        def forward(self, x):
            up = torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
            return up + 0.01 * self.shuffle(self.body(x))

    @register_model(ModelCard(
        name="tiny_plugin", family="tiny", paper="A tiny third-party test model", year=2026,
        scales=(2, 3, 4), input_channels="rgb", pre_upsampled=False, licence="MIT",
        published_params={2: 336, 3: 756, 4: 1344},
    ))
    def tiny_plugin(scale, **overrides):
        return TinySR(scale)
    """
)


def _install(site: Path, dist: str, module: str, code: str, entry_name: str) -> None:
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(code)
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[srbench.architectures]\n{entry_name} = {module}\n")


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "srbench_tiny_plugin", "srbench_tiny_plugin", PLUGIN_CODE, "tiny")
    _install(
        site,
        "srbench_broken_plugin",
        "srbench_broken_plugin",
        "raise ImportError('this plugin needs a package that is not installed')\n",
        "broken",
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    registry.unregister_model("tiny_plugin")
    for module in ("srbench_tiny_plugin", "srbench_broken_plugin"):
        sys.modules.pop(module, None)
    registry.reload_plugins()


def test_plugin_is_discovered_and_broken_one_skipped(plugin_site):
    with pytest.warns(RuntimeWarning, match=r"plugin 'broken'.*failed to load and is skipped"):
        registry.reload_plugins()
    assert "tiny_plugin" in registry.list_models()
    assert registry.model_origin("tiny_plugin") == "srbench_tiny_plugin"
    model = registry.create_model("tiny_plugin", scale=3)
    assert sum(p.numel() for p in model.parameters()) == 756


def test_duplicate_name_is_an_error(tmp_path, monkeypatch):
    site = tmp_path / "dup"
    site.mkdir()
    code = PLUGIN_CODE.replace('name="tiny_plugin"', 'name="idn"')
    _install(site, "srbench_dup_plugin", "srbench_dup_plugin", code, "dup")
    monkeypatch.syspath_prepend(str(site))
    try:
        with pytest.raises(SRBenchError, match="model name 'idn' is registered twice"):
            registry.reload_plugins()
    finally:
        sys.modules.pop("srbench_dup_plugin", None)
        monkeypatch.undo()
        registry.reload_plugins()


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'idm'; did you mean idn"):
        registry.create_model("idm", scale=2)


def test_plugin_through_the_cli(plugin_site, tmp_path):
    """`srbench models` lists it and `srbench run` runs it, in a fresh process."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{plugin_site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "SRBENCH_CACHE": str(tmp_path / "cache"),
    }
    listing = subprocess.run(
        [sys.executable, "-m", "srbench", "models", "tiny*"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert "tiny_plugin" in listing.stdout
    assert "756" in listing.stdout  # parameters at x3
    assert "broken" in listing.stderr  # the broken plugin is reported, not fatal
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "srbench",
            "run",
            "--models",
            "tiny_plugin",
            "--datasets",
            "demo",
            "--scales",
            "2",
            "--allow-random-weights",
            "--results-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "tiny_plugin" in result.stdout
    assert (tmp_path / "r" / "records.jsonl").read_text().count("tiny_plugin") == 5
