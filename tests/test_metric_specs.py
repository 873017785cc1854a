"""A metric lives in its spec: a lower-is-better RGB metric registered here (its function and its
spec, nothing else) flows through scoring, the run, the gate, the verdict, the Pareto front, the
printers and the report -- and the committed store, written before it existed, still loads."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from srbench import schema
from srbench.data import HRImage, pixels_sha256
from srbench.protocols import LRCache, get_protocol, prepare, score, unfed_metrics
from srbench.schema import MetricSpec

STANDARD, LEGACY = get_protocol("standard"), get_protocol("legacy-y")
REPO = Path(__file__).resolve().parents[1]


def mae(sr: torch.Tensor, hr: torch.Tensor, *, crop: int = 0) -> torch.Tensor:
    """Mean absolute error per image, after the border crop (lower is better)."""
    from srbench.metrics import _pair

    sr, hr = _pair(sr, hr, crop)
    return (sr - hr).abs().mean(dim=(1, 2, 3))


MAE = MetricSpec("mae", "MAE", "", False, 0.05, 3, f"{__name__}:mae", (0.0, 255.0), needs="rgb")


@pytest.fixture
def with_mae(monkeypatch):
    monkeypatch.setattr(schema, "METRICS", (*schema.METRICS, MAE))


def _image(seed: int = 0) -> HRImage:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    return HRImage("synthetic", f"i{seed}", pixels, pixels_sha256(pixels), None)


def test_a_protocol_feeds_the_views_it_provides_and_says_which_metric_it_cannot(with_mae):
    hr = _image()
    prepared = prepare(STANDARD, hr, 2, "rgb", LRCache(enabled=False))
    scored = score(STANDARD, torch.zeros(3, 40, 48, dtype=torch.float64), prepared)
    # an all-black SR: the MAE is the mean of the cropped HR's RGB values
    assert scored.metrics["mae"] == hr.pixels[2:-2, 2:-2].astype(np.float64).mean()
    assert set(scored.metrics) == {"psnr_db", "ssim", "mae"}
    assert unfed_metrics(STANDARD) == []

    prepared = prepare(LEGACY, hr, 2, "y", LRCache(enabled=False))
    scored = score(LEGACY, torch.zeros(1, 40, 48, dtype=torch.float64), prepared)
    assert set(scored.metrics) == {"psnr_db", "ssim"}  # skipped, not an error
    assert unfed_metrics(LEGACY) == [
        "mae is not measured under the legacy-y protocol: it needs the rgb view and the protocol "
        "provides y"
    ]


def test_a_run_stores_the_metric_where_the_protocol_feeds_it_and_notes_where_not(
    with_mae, tmp_path
):
    from srbench.runner import RunConfig, iter_run
    from srbench.sources import DatasetSource

    images = {f"s{i}": _image(i) for i in range(2)}
    source = DatasetSource("synthetic", "test", list(images), images.__getitem__,
                           is_standard=False)  # fmt: skip
    notes = {}
    for protocol in ("standard", "legacy-y"):
        config = RunConfig(models=["bicubic"], datasets=["synthetic"], scales=[2],
                           protocol=protocol, results_dir=tmp_path, cache_lr=False, crops=False)  # fmt: skip
        events = list(iter_run(config, [source]))
        notes[protocol] = [e.message for e in events if e.kind == "note"]
    assert notes == {"standard": [], "legacy-y": unfed_metrics(LEGACY)}
    from srbench.results import ResultStore

    store = ResultStore(tmp_path)
    records = store.shown_records()
    assert store.invalid == [] and len(records) == 4
    by_protocol = {p: [r for r in records if r["protocol"] == p] for p in ("standard", "legacy-y")}
    assert all(0 < r["mae"] < 255 for r in by_protocol["standard"])
    assert all("mae" not in r for r in by_protocol["legacy-y"])


def test_the_committed_store_still_loads_and_reads_not_measured(with_mae):
    """Every committed record predates ``mae``: none becomes invalid, every mean of it is NaN,
    and the PSNR/SSIM means and the verdict are exactly what they were without it."""
    from srbench.results import ResultStore, summarise
    from srbench.verdict import verdict

    store = ResultStore(REPO / "results")
    records = store.shown_records()
    assert store.invalid == [] and len(records) > 1000
    frame = store.load()
    summary = summarise(frame)
    assert summary["mae"].isna().all()
    rows = verdict(records)
    assert rows and not any(r.metric == "mae" for r in rows)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schema, "METRICS", schema.METRICS[:2])
        before = summarise(store.load())
        assert [r.as_dict() for r in verdict(records)] == [r.as_dict() for r in rows]
    for name in ("psnr_db", "ssim", "images"):
        assert summary[name].tolist() == before[name].tolist()


def test_a_record_with_no_metric_is_invalid_and_a_newer_metric_never_is(with_mae):
    base = {"model": "m", "weights_sha256": "w", "scale": 2, "dataset": "d", "image": "i",
            "protocol": "p", "protocol_hash": "h"}  # fmt: skip
    assert schema.invalid_reason(base) == "no metric (psnr_db, ssim, mae)"
    assert schema.invalid_reason({**base, "psnr_db": 30.0, "ssim": 0.9}) is None
    assert schema.invalid_reason({**base, "mae": 3.0}) is None
    assert schema.invalid_reason({**base, "psnr_db": 30.0, "mae": 300.0}) == (
        "mae is 300.0, outside [0, 255]"
    )
    assert schema.invalid_reason({**base, "psnr_db": 30.0, "mae": "3"}) == "'mae' is str, not int"


def _entry(mae_value: float | None, psnr: float = 30.0) -> dict:
    entry = {"model": "m", "weights_sha256": "w", "protocol": "standard", "protocol_hash": "h",
             "dataset": "set5", "scale": 2, "ensemble": False, "precision": "fp32",
             "psnr_db": psnr, "ssim": 0.9, "images": 5, "params": 10, "macs": 100,
             "latency_ms": None, "latency_hardware": None}  # fmt: skip
    if mae_value is not None:
        entry["mae"] = mae_value
    return entry


def test_the_gate_judges_a_lower_is_better_metric_in_its_direction(with_mae):
    from srbench.gate import Tolerances, compare, make_baseline

    def status(base: float | None, now: float | None) -> tuple[str, str]:
        result = compare(make_baseline([_entry(base)]), [_entry(now)])
        (entry,) = result.entries
        (mae_result,) = [m for m in entry.metrics if m.metric == "mae"]
        return entry.status, mae_result.status

    assert status(2.0, 2.05) == ("ok", "ok")  # worse by exactly the tolerance
    assert status(2.0, 2.06) == ("regressed", "regressed")  # higher MAE: worse
    assert status(2.0, 1.9) == ("improved", "improved")  # lower MAE: better
    # a baseline written before the metric existed: not measured there, never a failure
    assert status(None, 2.0) == ("ok", "skipped: not measured")
    assert make_baseline([_entry(2.0)])["tolerances"] == {
        "psnr_db": 0.01, "ssim": 0.0002, "mae": 0.05, "latency_rel": 0.1,
    }  # fmt: skip
    # a baseline without the metric's tolerance gets the spec's
    assert Tolerances.from_dict({"psnr_db": 0.5}).of("mae") == 0.05


def test_the_gate_table_has_a_column_per_metric_and_its_direction(with_mae):
    from rich.console import Console

    from srbench.cli.gate import gate_table
    from srbench.gate import compare, make_baseline

    result = compare(make_baseline([_entry(2.0)]), [_entry(2.3)])
    console = Console(width=250, record=True)
    console.print(gate_table(result))
    text = console.export_text()
    assert "PSNR -0.01 dB, SSIM -0.0002, MAE +0.05, params/MACs/images exact" in text
    (header,) = [line for line in text.splitlines() if "PSNR dB" in line]
    assert header.split("┃")[6:9] == [
        "         PSNR dB ",
        "               SSIM ",
        "              MAE ",
    ]
    (row,) = [line for line in text.splitlines() if "standard@h" in line]
    assert "│ 2.3000 (+0.3000) │" in row and row.rstrip(" │").endswith("regressed")


def _records(model: str, psnr: list[float], mae_values: list[float]) -> list[dict]:
    return [
        {"model": model, "weights_sha256": model[0] * 64, "scale": 2, "dataset": "set5",
         "image": f"img{i}", "protocol": STANDARD.id, "protocol_hash": STANDARD.hash,
         "ensemble": False, "precision": "fp32", "psnr_db": p, "ssim": 0.9, "mae": m}
        for i, (p, m) in enumerate(zip(psnr, mae_values, strict=True))
    ]  # fmt: skip


# drn_s: lower MAE on every image (better), by more than the tolerance on four of five
DRN = _records("drn_s", [36.0, 35.0, 34.0, 33.0, 32.0], [1.0, 2.0, 3.0, 4.0, 5.0])
IDN = _records("idn", [35.5, 34.6, 33.5, 32.7, 31.5], [1.5, 2.6, 3.4, 4.7, 5.03])


def test_the_verdict_counts_a_lower_value_as_a_win(with_mae):
    from srbench.verdict import verdict

    rows = {r.metric: r for r in verdict(DRN + IDN, pairs=[("drn_s", "idn", "t")])}
    assert set(rows) == {"psnr_db", "ssim", "mae"}
    mae_row = rows["mae"]
    assert mae_row.diff.mean == pytest.approx(-0.446)  # A - B, as stored
    assert (mae_row.wins, mae_row.ties, mae_row.losses) == (4, 1, 0)
    assert mae_row.sign == "better" and mae_row.diff.high < 0
    assert rows["psnr_db"].sign == "better" and rows["psnr_db"].diff.low > 0


def test_the_pareto_front_follows_the_metric_direction(with_mae):
    from srbench.pareto import pareto_front, quality_spec

    points = [(100, 2.0), (200, 1.0), (300, 1.5), (50, 3.0)]
    assert pareto_front(points, higher_is_better=False) == [True, True, False, True]
    assert pareto_front(points) == [False, False, False, True]
    assert not quality_spec("mae").higher_is_better


def test_a_pareto_plot_of_the_metric_labels_its_direction(with_mae, tmp_path, monkeypatch):
    import pandas as pd
    from matplotlib.axes import Axes

    from srbench.pareto import pareto_plot

    labels = []
    monkeypatch.setattr(Axes, "set_ylabel", lambda self, text, **kw: labels.append(text))
    frame = pd.DataFrame.from_records(DRN + IDN)
    costs = {"drn_s": 529379, "idn": 552769}

    def cost_fn(model, scale):
        return {"params": costs[model], "macs": 1.0, "network_macs": 1.0}

    paths = pareto_plot(frame, "set5", 2, "mae", "params", tmp_path, cost_fn=cost_fn)
    assert labels == ["MAE -- lower is better"] and paths["png"].is_file()


def test_the_report_shows_every_metric_and_judges_each_in_its_direction(with_mae, tmp_path):
    from srbench.report import build_report
    from srbench.results import ResultStore

    root = tmp_path / "results"
    ResultStore(root).append(DRN + IDN)
    costs = {"drn_s": 529379, "idn": 552769}
    html = build_report(
        root, tmp_path / "out", visual_images=0,
        cost_fn=lambda m, s: {"params": costs[m], "macs": 1e9, "network_macs": 1e9},
    ).read_text()  # fmt: skip
    assert "PSNR (dB) / SSIM / MAE, mean over images" in html
    # drn_s on Set5: PSNR first, then SSIM and MAE (3 decimals, its spec's)
    assert '34.00<span class="sub">0.9000 · 3.000 · n=5</span>' in html
    assert "<th>paper MAE</th>" not in html  # no card publishes it: no paper row either way
    assert "within 0.01 dB PSNR or 0.0002 SSIM or 0.05 MAE" in html
    row = html[html.index("<td>mae</td>") - 200 : html.index("<td>mae</td>")]
    assert '<tr class="better">' in row and "<td>drn_s - idn</td>" in row
    assert "<td>−0.4460</td>" not in html and "<td>-0.4460</td>" in html


def test_the_readme_table_carries_every_metric(with_mae):
    import importlib.util

    import pandas as pd

    spec = importlib.util.spec_from_file_location("assets", REPO / "tools/make_readme_assets.py")
    assert spec is not None and spec.loader is not None
    assets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(assets)
    summary = pd.DataFrame(
        [{"protocol": "standard", "protocol_hash": "h", "scale": 2, "dataset": "set5",
          "label": "drn_s", "model": "drn_s", "weights_sha256": "none", "images": 5,
          "psnr_db": 34.0, "ssim": 0.9, "mae": math.nan, "params": 1, "macs": 1}]
    )  # fmt: skip
    text = assets.markdown_table(summary, "standard", "h")
    assert "; PSNR (dB) on Y / SSIM on Y / MAE on RGB, mean over" in text
    assert "| 34.00 / 0.9000 / - |" in text  # not measured: "-"


def test_a_spec_field_change_is_all_it_takes(with_mae):
    """The spec's fields are read: flipping the direction flips the gate."""
    from srbench.gate import compare, make_baseline

    flipped = dataclasses.replace(MAE, higher_is_better=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schema, "METRICS", (*schema.METRICS[:2], flipped))
        (entry,) = compare(make_baseline([_entry(2.0)]), [_entry(2.3)]).entries
    assert entry.status == "improved"


def test_the_training_printers_show_every_metric_and_the_headline(with_mae, monkeypatch):
    from rich.console import Console

    from srbench.cli import train as train_cli
    from srbench.training.ladder import ladder_table

    results = {
        "set5": {"psnr_db": 30.0, "ssim": 0.9, "mae": 1.25, "images": 5},
        "old": {"psnr_db": 29.0, "ssim": 0.8, "images": 5},  # validated before MAE existed
    }
    assert train_cli.val_text(results) == "set5 30.00 dB / 0.9000 / 1.250, old 29.00 dB / 0.8000"
    console = Console(record=True, width=200)
    monkeypatch.setattr(train_cli, "console", console)
    train_cli.print_validation(results, "run")
    rows = [line.replace("┃", " ").replace("│", " ").split() for line in console.export_text()
            .splitlines() if line.startswith(("┃", "│"))]  # fmt: skip
    assert rows == [
        ["dataset", "PSNR", "dB", "SSIM", "MAE", "images"],
        ["set5", "30.00", "0.9000", "1.250", "5"],
        ["old", "29.00", "0.8000", "-", "5"],
    ]

    # The ladder's Set5 columns are the headline metric's, with its display.
    monkeypatch.setattr(schema, "METRICS", (MAE, *schema.METRICS[:2]))
    curve = [{"iteration": 1000, "ema": ema, "set5": {"psnr_db": 30.0, "mae": value}}
             for ema, value in ((False, 1.2345), (True, 1.0))]  # fmt: skip
    record = {"ladder_run": "r", "summary": {}, "curve": curve, "rung": 1000, "scales": [2],
              "model": "m", "seed": 0, "own_train_seconds": 60.0}  # fmt: skip
    assert "| 1.234 | 1.000 | `r` |" in ladder_table([record])
