"""The committed outputs are what the code makes of the committed store: the README's results
block and the verdict files regenerate byte for byte (a refactor that changes a number, or a
store edit without regenerating them, fails here)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"


def _readme_tool():
    spec = importlib.util.spec_from_file_location("assets", REPO / "tools/make_readme_assets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdict_files_regenerate_identically(tmp_path):
    from srbench.cli.report import verdict

    verdict(results_dir=RESULTS, protocol="standard", output=tmp_path / "verdict.json")
    for name in ("verdict.json", "verdict_budget.json"):
        assert (tmp_path / name).read_bytes() == (RESULTS / name).read_bytes(), name


def test_readme_results_block_regenerates_identically(tmp_path):
    tool = _readme_tool()
    # readme_assets reads verdict.json beside the store: the committed one (tested above)
    paths = tool.readme_assets(RESULTS, tmp_path, protocol="standard", dataset="set5", scale=2)
    committed = (REPO / "reports" / "readme_results.md").read_text(encoding="utf-8")
    assert paths["markdown"].read_text(encoding="utf-8") == committed
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    png = tmp_path / "reports" / "readme_pareto.png"  # the link is relative to the README
    png.parent.mkdir()
    shutil.copy(REPO / "reports" / "readme_pareto.png", png)
    tool.update_readme(readme, paths["markdown"], png)
    assert readme.read_text(encoding="utf-8") == (REPO / "README.md").read_text(encoding="utf-8")
