"""The command line as a user runs it: tables, errors as one line, the demo default."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from srbench.cli import app

runner = CliRunner()


def _invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def _one_line_error(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return " ".join(lines[errors[0] :])  # rich may wrap a long line; it is still one message


def test_missing_dataset_folder_is_one_line(tmp_path):
    result = _invoke("run", "--datasets", "set5", "--scales", "2", "--data-root", str(tmp_path))
    message = _one_line_error(result)
    assert "Set5/HR: no Set5 folder" in message


def test_unknown_model_suggests(tmp_path):
    result = _invoke(
        "run",
        "--models",
        "edsr_base",
        "--datasets",
        "demo",
        "--scales",
        "2",
        "--results-dir",
        str(tmp_path),
    )
    message = _one_line_error(result)
    assert "unknown model 'edsr_base'; did you mean edsr_baseline" in message


def test_unknown_protocol_and_bad_scale(tmp_path):
    result = _invoke(
        "run", "--protocol", "rgb", "--datasets", "demo", "--results-dir", str(tmp_path)
    )
    assert "unknown protocol 'rgb'" in _one_line_error(result)
    result = _invoke("run", "--scales", "two", "--datasets", "demo", "--results-dir", str(tmp_path))
    assert "--scales 'two': give comma-separated integers" in _one_line_error(result)


def test_corrupt_image_in_benchmark_is_one_line(tmp_path):
    hr = tmp_path / "Set5" / "HR"
    hr.mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(hr / "baby.png")
    (hr / "bird.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = _invoke(
        "run",
        "--datasets",
        "set5",
        "--scales",
        "2",
        "--data-root",
        str(tmp_path),
        "--results-dir",
        str(tmp_path / "r"),
    )
    message = _one_line_error(result)
    assert "baby.png: size 64x64x3, expected 512x512x3" in message


def test_demo_default_runs_and_writes_provenance(tmp_path, monkeypatch):
    monkeypatch.delenv("SRBENCH_DATA", raising=False)
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    result = _invoke("run", "--scales", "2", "--results-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "NOT a standard benchmark" in " ".join(result.stderr.split())
    assert "bicubic" in result.stdout and "demo" in result.stdout
    records = [json.loads(x) for x in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    # The main job is the comparison: bicubic and every model with shipped x2 weights.
    from srbench.pretrained import shipped as manifest

    shipped = {m for m, by_scale in manifest().items() if 2 in by_scale}
    assert {r["model"] for r in records} == {"bicubic", *shipped}
    assert len(records) == 5 * (1 + len(shipped))
    assert {r["standard_benchmark"] for r in records} == {False}
    assert {r["memory_format"] for r in records} == {"channels_last"}  # the CPU's layout
    summary = json.loads(next((tmp_path / "r" / "runs").glob("*.json")).read_text())
    assert summary["protocol"]["id"] == "standard"
    assert summary["environment"]["torch"]
    assert summary["datasets"]["demo"]["standard"] is False
    # resuming does nothing new
    again = _invoke("run", "--scales", "2", "--results-dir", str(tmp_path / "r"))
    assert "0 new per-image results" in " ".join(again.stderr.split())


@pytest.mark.data
def test_data_verify_and_list(data_root):
    result = _invoke("data", "verify", "--datasets", "set5,set14", "--data-root", str(data_root))
    assert result.exit_code == 0, result.output
    assert "Set5: 5/5 verified" in result.stdout
    assert "Set14: 14/14 verified" in result.stdout
    listing = _invoke("data", "list", "--data-root", str(data_root))
    assert "manga109" in listing.stdout


@pytest.mark.data
def test_data_verify_names_bad_images(data_root, tmp_path):
    hr = tmp_path / "Set5" / "HR"
    hr.mkdir(parents=True)
    for src in (data_root / "Set5" / "HR").iterdir():
        (hr / src.name).write_bytes(src.read_bytes())
    (hr / "bird.png").unlink()
    result = _invoke("data", "verify", "--datasets", "set5", "--data-root", str(tmp_path))
    assert result.exit_code == 1
    assert "Set5: 4/5 verified" in result.stdout
    assert "bird: missing" in result.stdout


@pytest.mark.data
def test_run_with_converted_weights_end_to_end(data_root, reference_weights, tmp_path):
    """`srbench weights convert` then `srbench run --weights DIR` under legacy-y, from the CLI."""
    weights = tmp_path / "w"
    convert = _invoke(
        "weights",
        "convert",
        str(reference_weights / "idn_x2.npz"),
        "--model",
        "idn",
        "--scale",
        "2",
        "-o",
        str(weights / "idn_x2.safetensors"),
    )
    assert convert.exit_code == 0, convert.output
    result = _invoke(
        "run",
        "--models",
        "idn,bicubic",
        "--protocol",
        "legacy-y",
        "--datasets",
        "set5",
        "--scales",
        "2",
        "--weights",
        str(weights),
        "--data-root",
        str(data_root),
        "--results-dir",
        str(tmp_path / "r"),
        "--save-images",
        str(tmp_path / "sr"),
    )
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "set5" in line}
    # The authors' file, passed with --weights, is stored and shown as idn.official.
    assert "37.83" in rows["idn.official"] and "33.66" in rows["bicubic"]
    saved = np.asarray(Image.open(tmp_path / "sr" / "idn.official" / "x2" / "set5" / "baby.png"))
    assert saved.shape == (512, 512, 3)  # Y model output rebuilt in colour


def test_wrong_scale_weights_from_the_cli(tmp_path):
    from srbench.registry import create_model
    from srbench.weights import save_weights

    path = tmp_path / "idn_x3.safetensors"
    save_weights(create_model("idn", scale=3), path, model_name="idn", scale=3)
    result = _invoke(
        "run",
        "--models",
        "idn",
        "--datasets",
        "demo",
        "--scales",
        "2",
        "--protocol",
        "legacy-y",
        "--weights",
        str(path),
        "--results-dir",
        str(tmp_path / "r"),
    )
    message = _one_line_error(result)
    assert "the weights given for idn are for x3" in message and "not x2" in message


def test_run_with_profile_stores_efficiency_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    result = _invoke(
        "run",
        "--models",
        "bicubic",
        "--datasets",
        "demo",
        "--scales",
        "4",
        "--results-dir",
        str(tmp_path / "r"),
        "--profile",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.output
    profile = [json.loads(x) for x in (tmp_path / "r" / "profile.jsonl").read_text().splitlines()]
    assert {r["model"] for r in profile} == {"bicubic"}
    assert len(profile) == 2  # the 720p-output and the 256x256-LR conventions
    # Timed as `run` evaluated: its layout, precision and --threads.
    assert {(r["memory_format"], r["as_run"], r["threads"]) for r in profile} == {
        ("channels_last", True, 1)
    }
    records = [json.loads(x) for x in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    assert {(r["torch_threads"], r["thread_policy"]) for r in records} == {(1, "fixed")}


def test_a_fresh_store_takes_counts_from_the_cost_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path / "cache"))
    args = ("run", "--models", "bicubic", "--datasets", "demo", "--scales", "4")
    assert _invoke(*args, "--results-dir", str(tmp_path / "a")).exit_code == 0
    cached = sorted((tmp_path / "cache" / "costs").glob("bicubic-x4-*.json"))
    assert len(cached) == 2  # one per default size
    for path in cached:  # a mark that only a cache read can carry into the new store
        path.write_text(json.dumps({**json.loads(path.read_text()), "from_cache": True}))
    assert _invoke(*args, "--results-dir", str(tmp_path / "b")).exit_code == 0
    profile = [json.loads(x) for x in (tmp_path / "b" / "profile.jsonl").read_text().splitlines()]
    assert len(profile) == 2 and all(r.get("from_cache") for r in profile)
    records = [json.loads(x) for x in (tmp_path / "b" / "records.jsonl").read_text().splitlines()]
    assert {r["thread_policy"] for r in records} == {"adaptive"}
    assert all(1 <= r["torch_threads"] <= os.cpu_count() for r in records)


@pytest.mark.parametrize("group", [(), ("ladder",), ("zoo",), ("data",), ("weights",)])
def test_each_command_summary_is_its_docstrings_first_paragraph_on_joined_lines(group):
    """The commands panel reflows each summary to the terminal's width (typer's rich markup
    mode would keep the docstring's own line breaks, cutting phrases mid-line)."""
    import click
    import typer.main

    command = typer.main.get_command(app)
    ctx = click.Context(command)
    for name in group:
        command = command.get_command(ctx, name)
        ctx = click.Context(command, parent=ctx)
    names = command.list_commands(ctx)
    assert names
    for name in names:
        sub = command.get_command(ctx, name)
        first = " ".join((sub.help or "").split("\n\n")[0].split())
        assert sub.short_help == first, name
        assert "\n" not in sub.short_help, name
