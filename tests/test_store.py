"""A store anyone can read: plain pandas gives the README's numbers, every record's run has a
committed summary or is listed in docs/store.md, the migration is idempotent and changes no
number, and records say whether uncommitted code made them."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from srbench.errors import SRBenchError
from srbench.results import ResultStore

REPO = Path(__file__).resolve().parent.parent
STORE = REPO / "results" / "records.jsonl"
MIGRATE = "python tools/migrate_store.py results/records.jsonl"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _readme_cells() -> tuple[str, list[tuple[str, str, int, str, str]]]:
    """(protocol, [(model, dataset, scale, PSNR text, SSIM text)]) of the README's main table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- srbench:results:begin -->")[1].split("<!-- srbench:results:end -->")[0]
    protocol = re.search(r"Protocol `([a-z0-9-]+)@", block).group(1)
    cells, scale, datasets = [], 0, []
    for line in block.splitlines():
        if match := re.fullmatch(r"\*\*x(\d)\*\*", line.strip()):
            scale = int(match.group(1))
        elif line.startswith("| model |"):
            datasets = [c.strip() for c in line.strip("|").split("|")][2:-2]
        elif line.startswith("| ") and scale and datasets:
            row = [c.strip() for c in line.strip("|").split("|")]
            for dataset, cell in zip(datasets, row[2:-2], strict=True):
                if " / " in cell:
                    psnr, ssim = cell.split(" / ")
                    cells.append((row[0], dataset, scale, psnr, ssim))
        elif not line.startswith("|"):
            datasets = [] if line.startswith("**") else datasets
    return protocol, cells


def test_plain_pandas_reads_the_readmes_numbers():
    """`pandas.read_json(lines=True)` and a groupby over model/dataset/scale/protocol give every
    number of the README's main table: no srbench loader, no renaming on read."""
    protocol, cells = _readme_cells()
    assert len(cells) == 145  # 11 models x 5 sets at x2, 9 x 5 at x3 and x4
    frame = pd.read_json(STORE, lines=True)
    means = frame.groupby(["model", "dataset", "scale", "protocol"])[["psnr_db", "ssim"]].mean()
    wrong = []
    for model, dataset, scale, psnr, ssim in cells:
        key = (model, dataset, scale, protocol)
        got = means.loc[key] if key in means.index else None
        if got is None or (f"{got.psnr_db:.2f}", f"{got.ssim:.4f}") != (psnr, ssim):
            wrong.append(f"{model} {dataset} x{scale}: README {psnr}/{ssim}, pandas "
                         f"{'none' if got is None else f'{got.psnr_db:.3f}/{got.ssim:.5f}'}")  # fmt: skip
    assert not wrong, f"{len(wrong)} cells differ (run `{MIGRATE}`): " + "; ".join(wrong[:5])


def test_every_record_has_a_run_summary_or_is_listed_in_the_docs():
    tool = _tool("store_gaps")
    rows = tool.gaps(REPO / "results")
    listed = tool.documented(REPO / "docs" / "store.md")
    assert listed == tool.markdown(rows), (
        "docs/store.md does not list today's records without a run summary; run "
        "`python tools/store_gaps.py --update-docs docs/store.md`"
    )
    assert all(row["summarised_by"] for row in rows)  # every gap's images are summarised


def _record(model: str, image: str, psnr: float, **extra) -> dict:
    from srbench.registry import get_card

    sha = get_card("idn").official_weights[2].sha256 if model == "idn" else "abc"
    return {"model": model, "weights_sha256": sha, "scale": 2, "dataset": "set5", "image": image,
            "protocol": "standard", "protocol_hash": "h", "psnr_db": psnr, "ssim": 0.9,
            "run_id": "r1", "git_commit": "a" * 40, **extra}  # fmt: skip


def test_migration_renames_drops_superseded_backfills_and_is_idempotent(tmp_path):
    tool = _tool("migrate_store")
    path = tmp_path / "records.jsonl"
    lines = [
        _record("idn", "baby", 38.0, git_commit="b" * 40 + "+dirty"),  # authors' weights, old name
        _record("srcnn", "baby", 33.0),
        _record("srcnn", "baby", 33.5),  # the same key again: the loader keeps this one
        _record("srcnn", "bird", 34.0, code_dirty=True),
    ]
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in lines) + '{"model": "torn'
    path.write_text(text)
    before = {(r["model"], r["image"]): r["psnr_db"] for r in ResultStore(tmp_path).shown_records()}
    changes = tool.migrate_store(path)
    assert dict(changes) == {"renamed idn -> idn.official": 1, "code_dirty added": 3,
                             "superseded records dropped": 1}  # fmt: skip
    records = [json.loads(x) for x in path.read_text().splitlines()[:-1]]
    assert [(r["model"], r["psnr_db"], r["code_dirty"]) for r in records] == [
        ("idn.official", 38.0, None), ("srcnn", 33.5, False), ("srcnn", 34.0, True)
    ]  # fmt: skip
    assert path.read_text().splitlines()[-1] == '{"model": "torn'  # kept for the loader to skip
    after = {(r["model"], r["image"]): r["psnr_db"] for r in ResultStore(tmp_path).shown_records()}
    assert after == before  # the loader reads the same numbers
    plain = pd.DataFrame.from_records(records)  # what pandas reads, the torn line aside
    assert plain.groupby("model")["psnr_db"].mean().to_dict() == {"idn.official": 38.0,
                                                                  "srcnn": 33.75}  # fmt: skip
    data = path.read_bytes()
    assert not tool.migrate_store(path) and path.read_bytes() == data  # idempotent
    assert tool.main([str(tmp_path), "--check"]) == 0


def test_migrating_the_committed_store_changes_no_number(tmp_path):
    tool = _tool("migrate_store")
    shutil.copy(STORE, tmp_path / "records.jsonl")
    tool.migrate_store(tmp_path / "records.jsonl")
    data = (tmp_path / "records.jsonl").read_bytes()

    def numbers(root: Path) -> dict:
        from srbench.schema import entry_key

        return {(*entry_key(r), r["image"]): (r["psnr_db"], r["ssim"])
                for r in ResultStore(root).shown_records()}  # fmt: skip

    assert numbers(tmp_path) == numbers(REPO / "results")
    assert not tool.migrate_store(tmp_path / "records.jsonl")
    assert (tmp_path / "records.jsonl").read_bytes() == data
    plain = pd.read_json(tmp_path / "records.jsonl", lines=True)
    assert plain["code_dirty"].isin([True, False]).sum() + plain["code_dirty"].isna().sum() == len(
        plain
    )


# -- uncommitted code and the committed store --------------------------------------------------


def _git_store(tmp_path: Path) -> Path:
    repo = tmp_path / "clone"
    (repo / "results").mkdir(parents=True)
    (repo / "results" / "records.jsonl").write_text("")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "results/records.jsonl"], check=True)
    subprocess.run([*git, "commit", "-qm", "store"], check=True)
    return repo / "results"


def test_a_committed_store_refuses_records_of_uncommitted_code(tmp_path, monkeypatch):
    from srbench import provenance

    store = _git_store(tmp_path)
    monkeypatch.setattr(provenance, "code_dirty", lambda: True)
    with pytest.raises(SRBenchError) as exc:
        provenance.refuse_dirty_store(store, allow_dirty=False)
    message = str(exc.value)
    assert "\n" not in message and str(store / "records.jsonl") in message
    assert "--allow-dirty" in message
    provenance.refuse_dirty_store(store, allow_dirty=True)  # the override
    provenance.refuse_dirty_store(tmp_path / "mine", allow_dirty=False)  # not committed: fine
    monkeypatch.setattr(provenance, "code_dirty", lambda: False)
    provenance.refuse_dirty_store(store, allow_dirty=False)  # committed code: fine


def test_srbench_run_refuses_then_marks_records_with_allow_dirty(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from srbench import provenance
    from srbench.cli import app

    store = _git_store(tmp_path)
    monkeypatch.setattr(provenance, "code_dirty", lambda: True)
    args = ["run", "--models", "bicubic", "--datasets", "demo", "--scales", "2",
            "--results-dir", str(store)]  # fmt: skip
    runner = CliRunner()
    refused = runner.invoke(app, args)
    assert refused.exit_code != 0 and "--allow-dirty" in " ".join(refused.output.split())
    assert (store / "records.jsonl").read_text() == ""
    done = runner.invoke(app, [*args, "--allow-dirty"])
    assert done.exit_code == 0, done.output
    records = [json.loads(x) for x in (store / "records.jsonl").read_text().splitlines()]
    assert len(records) == 5 and {r["code_dirty"] for r in records} == {True}


def test_code_dirty_looks_at_code_only():
    """This checkout's answer agrees with git about srbench's own .py files, whatever else
    (the store, docs) differs from the commit."""
    from srbench.provenance import code_dirty

    changed = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "srbench", "architectures"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert code_dirty() is any(line.rstrip().endswith(".py") for line in changed)
