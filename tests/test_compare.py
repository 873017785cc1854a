"""`srbench compare`: any two stored models, with the verdict's interval method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srbench.cli import app
from srbench.comparison import compare_models, preset_pairs
from srbench.protocols import STANDARD
from srbench.results import ResultStore
from srbench.verdict import verdict

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def _rows(path: Path) -> list[dict]:
    rows = json.loads(path.read_text())
    return [{k: v for k, v in r.items() if k != "per_image"} for r in rows]


def test_compare_reproduces_the_verdicts_x3_rows(tmp_path):
    # `srbench verdict` on the committed store, now (not its committed JSON, which may predate a
    # change of the verdict's interval method): compare must give the very same rows.
    result = _invoke("verdict", "--results-dir", str(REPO / "results"),
                     "--output", str(tmp_path / "verdict.json"))  # fmt: skip
    assert result.exit_code == 0, result.output
    committed = [
        r for r in _rows(tmp_path / "verdict.json")
        if (r["a"], r["b"]) == ("drn_s", "idn") and r["scale"] == 3
        and r["dataset"] in ("set5", "set14")
    ]  # fmt: skip
    assert len(committed) == 4  # set5, set14 x psnr, ssim
    result = _invoke(
        "compare", "drn_s", "idn", "--datasets", "set5,set14", "--scales", "3",
        "--results-dir", str(REPO / "results"), "--output-dir", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _rows(tmp_path / "compare_drn_s_vs_idn.json") == committed
    assert (tmp_path / "compare_drn_s_vs_idn.png").stat().st_size > 0
    assert "│ drn_s │ idn │ set14   │    x3 │ psnr_db │     14 │   -0.263 │" in result.stdout
    # The same from the user's (empty) store, reading the reference with NAME@ref; aliases work.
    result = _invoke(
        "compare", "drn@ref", "idn@ref", "--datasets", "set5,set14", "--scales", "x3",
        "--output-dir", str(tmp_path), env={"SRBENCH_RESULTS": str(tmp_path / "mine")},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = _rows(tmp_path / "compare_drn_s@ref_vs_idn@ref.json")
    assert [{**r, "a": "drn_s", "b": "idn"} for r in got] == committed


def _store(tmp_path: Path) -> Path:
    records = []
    for model, offset in (("drn_s", 0.5), ("idn", 0.0), ("drn_m", 0.1), ("edsr_baseline", 0.0)):
        for i in range(6):
            psnr = 30.0 + i + offset * (1 if i % 3 else -0.5)
            records.append(
                {"model": model, "weights_sha256": "w", "dataset": "set5", "scale": 2,
                 "protocol": "standard", "protocol_hash": STANDARD.hash, "image": f"im{i}",
                 "hr_sha256": f"h{i}", "psnr_db": psnr, "ssim": psnr / 40}
            )  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path


def test_the_drn_verdict_is_a_preset_of_compare(tmp_path):
    records = [
        {"model": m, "dataset": d, "scale": s, "protocol": "standard", "image": f"i{k}",
         "protocol_hash": STANDARD.hash, "hr_sha256": f"h{k}",
         "psnr_db": 30.0 + k * (m == "drn_s") + s, "ssim": 0.9}
        for m in ("drn_s", "idn") for d in ("set5", "set14") for s in (2, 4) for k in range(4)
    ]  # fmt: skip
    assert compare_models(records, preset_pairs("drn")) == verdict(records)
    x2 = compare_models(records, preset_pairs("drn"), datasets=["set14"], scales=[2])
    assert [(r.dataset, r.scale, r.metric) for r in x2] == [
        ("set14", 2, "psnr_db"),
        ("set14", 2, "ssim"),
    ]
    assert x2[0].diff.mean == pytest.approx(1.5)  # k = 0..3 -> mean 1.5 dB
    assert (x2[0].wins, x2[0].ties, x2[0].losses) == (3, 1, 0)


def test_compare_cli_preset_and_errors(tmp_path):
    store = _store(tmp_path / "store")
    assert len(ResultStore(store).latest_records()) == 24
    out = tmp_path / "out"
    result = _invoke("compare", "--preset", "drn", "--results-dir", str(store),
                     "--output-dir", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    pairs = {(r["a"], r["b"]) for r in _rows(out / "compare_drn.json")}
    assert pairs == {("drn_s", "idn"), ("drn_m", "edsr_baseline")}
    for args, message in (
        (("compare", "drn_s", "idnn"), "no results of 'idnn' in"),
        (("compare", "drn_s"), "give two models"),
        (("compare", "--preset", "nope"), "unknown preset 'nope'; choose from drn"),
        (("compare", "drn_s", "idn", "--scales", "4"), "no images that both models have"),
    ):
        result = _invoke(*args, "--results-dir", str(store), "--output-dir", str(out))
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert len(lines) == 1 and message in lines[0], result.stderr
    assert "did you mean idn" in _invoke("compare", "drn_s", "idnn", "--results-dir",
                                         str(store), "--output-dir", str(out)).stderr  # fmt: skip
