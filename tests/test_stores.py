"""The user's results are theirs: `srbench run` never writes into the committed reference store,
and report/pareto show the reference beside the user's when asked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srbench.cli import app
from srbench.results import ResultStore
from srbench.stores import reference_results_dir, user_results_dir

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    """Bicubic x2 on the demo set, run the README's way (no --results-dir) into a user store."""
    user = tmp_path_factory.mktemp("user")
    before = _tree(REPO / "results")
    result = _invoke(
        "run", "--models", "bicubic", "--datasets", "demo", "--scales", "2",
        env={"SRBENCH_RESULTS": str(user)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _tree(REPO / "results") == before  # the committed store is untouched
    return user


def test_default_user_store_is_under_the_cache_unless_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SRBENCH_RESULTS", raising=False)
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    assert user_results_dir() == tmp_path / "cache" / "results"
    monkeypatch.setenv("SRBENCH_RESULTS", str(tmp_path / "mine"))
    assert user_results_dir() == tmp_path / "mine"


def test_run_writes_to_the_user_store_and_leaves_git_clean(demo_store):
    records = ResultStore(demo_store).latest_records()
    assert {(r["model"], r["dataset"], r["scale"]) for r in records} == {("bicubic", "demo", 2)}
    assert len(records) == 5
    assert len(list((demo_store / "runs").glob("*.json"))) == 1
    if shutil.which("git") and (REPO / ".git").exists():
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "results"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert status == ""


def test_reference_is_the_checkouts_results_or_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SRBENCH_REFERENCE", raising=False)
    assert reference_results_dir() == REPO / "results"
    monkeypatch.setenv("SRBENCH_REFERENCE", str(tmp_path))
    result = _invoke("pareto", "--reference", "--output-dir", str(tmp_path / "out"))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output
    assert "no reference store" in lines[0] and "SRBENCH_REFERENCE" in lines[0]


def test_pareto_and_report_show_the_reference_beside_the_users(demo_store, tmp_path, monkeypatch):
    # The reference: a second demo store standing in for the committed results/.
    monkeypatch.setenv("SRBENCH_REFERENCE", str(demo_store))
    result = _invoke(
        "pareto", "--reference", "--output-dir", str(tmp_path / "plots"),
        env={"SRBENCH_RESULTS": str(demo_store)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    svg = next((tmp_path / "plots").glob("*demo_x2*.svg")).read_text()
    assert "<!-- bicubic -->" in svg and "<!-- bicubic@ref -->" in svg  # two labelled points
    result = _invoke(
        "report", "--reference", "--visual-images", "0", "--output-dir", str(tmp_path / "rep"),
        env={"SRBENCH_RESULTS": str(tmp_path / "empty")},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "bicubic@ref" in html
