"""Pareto fronts on hand-made points, and plots made from a fabricated store."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from PIL import Image

from srbench.errors import SRBenchError
from srbench.pareto import (
    counted_costs,
    drop_partial,
    efficiency_table,
    pareto_front,
    pareto_plot,
    place_labels,
    plot_all,
    summary_table,
)


def test_empty_and_single_point():
    assert pareto_front([]) == []
    assert pareto_front([(10.0, 30.0)]) == [True]


def test_dominance():
    points = [
        (100, 30.0),  # front
        (200, 31.0),  # front
        (300, 30.5),  # dominated by (200, 31)
        (50, 29.0),  # front: cheapest
        (400, 32.0),  # front: best
    ]
    assert pareto_front(points) == [True, True, False, True, True]


def test_duplicates_are_all_on_the_front():
    assert pareto_front([(100, 30.0), (100, 30.0), (200, 29.0)]) == [True, True, False]
    # ... and are all dominated together when something beats them
    assert pareto_front([(100, 30.0), (100, 30.0), (50, 31.0)]) == [False, False, True]


def test_ties_on_one_axis():
    # Same cost, lower quality: dominated. Same quality, higher cost: dominated.
    assert pareto_front([(100, 30.0), (100, 29.0)]) == [True, False]
    assert pareto_front([(100, 30.0), (150, 30.0)]) == [True, False]
    # Zero cost (bicubic's parameters) is an ordinary, cheapest cost.
    assert pareto_front([(0, 28.0), (100, 30.0), (0, 27.0)]) == [True, True, False]


def test_missing_values_are_never_on_the_front():
    points = [(math.nan, 40.0), (100, 30.0), (None, 50.0), (50, math.inf)]
    assert pareto_front(points) == [False, True, False, False]


def test_order_is_preserved_and_input_not_mutated():
    points = [(3, 3.0), (1, 1.0), (2, 2.0), (2, 1.5)]
    before = list(points)
    assert pareto_front(points) == [True, True, True, False]
    assert points == before


# ------------------------------------------------------------------------------------------------
# Frames and plots
# ------------------------------------------------------------------------------------------------

COSTS = {
    ("bicubic", 2): {"params": 0, "macs": 755_712_000, "network_macs": 0},
    ("small", 2): {"params": 8_000, "macs": 8e9, "network_macs": 8e9},
    ("big", 2): {"params": 1_500_000, "macs": 3e11, "network_macs": 3e11},
    ("worse", 2): {"params": 2_000_000, "macs": 4e11, "network_macs": 4e11},
}


def fake_costs(model: str, scale: int) -> dict:
    return COSTS[(model, scale)]


def store_frame(protocols=(("standard", "aaa"),)) -> pd.DataFrame:
    rows = []
    psnr = {"bicubic": 33.7, "small": 36.0, "big": 37.8, "worse": 37.0}
    for protocol, phash in protocols:
        for model, value in psnr.items():
            for i in range(5):  # all of Set5: a partial mean is never plotted
                rows.append(
                    {"model": model, "weights_sha256": "none" if model == "bicubic" else "w" + model,
                     "scale": 2, "dataset": "set5", "image": f"i{i}", "protocol": protocol,
                     "protocol_hash": phash, "ensemble": False, "precision": "fp32",
                     "psnr_db": value + i * 0.1, "ssim": 0.9 + i * 0.001}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_summary_table_joins_costs_and_profiles():
    profiles = [
        {"model": "big", "scale": 2, "size": "720p", "precision": "fp32", "trainable_params": 7,
         "total_macs": 70, "network_macs": 60, "latency": {"status": "measured"},
         "latency_median_ms": 12.5, "threads": 2, "device_type": "cpu", "as_run": True,
         "env": {"cpu_model": "Test CPU"}, "peak_memory": {"status": "not measured"}},
    ]  # fmt: skip
    table = summary_table(store_frame(), profiles, cost_fn=fake_costs).set_index("model")
    assert table.loc["big", "params"] == 7  # the profile record wins
    assert table.loc["big", "latency_ms"] == 12.5
    assert table.loc["big", "latency_hardware"] == "Test CPU (cpu, 2 threads)"
    assert table.loc["small", "params"] == 8_000  # counted
    assert math.isnan(table.loc["small", "latency_ms"])  # never estimated
    assert table.loc["small", "psnr_db"] == pytest.approx(36.2)
    assert table.loc["small", "images"] == 5


def test_unknown_model_gets_missing_costs_not_an_error():
    table = efficiency_table([("no_such_model", 2)], cost_fn=counted_costs)
    assert math.isnan(table.loc[0, "params"])
    assert "not counted" in table.loc[0, "cost_source"]


def test_plot_writes_png_and_svg_with_labels(tmp_path):
    paths = pareto_plot(store_frame(), "set5", 2, "psnr_db", "params", tmp_path, cost_fn=fake_costs)
    assert paths["png"].parent == tmp_path
    with Image.open(paths["png"]) as img:
        assert img.size[0] > 300 and img.size[1] > 200
    svg = paths["svg"].read_text()
    ET.fromstring(svg)  # well-formed
    for model in ("bicubic", "small", "big", "worse"):
        assert model in svg  # every point is labelled (matplotlib keeps text as comments/glyph ids)


def test_a_mean_over_part_of_a_benchmark_is_never_plotted(tmp_path):
    frame = store_frame()
    frame = frame[~((frame["model"] == "small") & (frame["image"] == "i4"))]
    table = summary_table(frame, cost_fn=fake_costs)
    complete, notes = drop_partial(table)
    assert sorted(complete["model"]) == ["bicubic", "big", "worse"]
    assert notes == ["not the benchmark's number, not plotted: small set5 (4/5 images)"]
    assert drop_partial(summary_table(store_frame(), cost_fn=fake_costs))[1] == []
    paths = pareto_plot(frame, "set5", 2, out_dir=tmp_path, cost_fn=fake_costs)
    assert (
        "not the benchmark's number, not plotted: small set5 (4/5 images)"
        in paths["svg"].read_text()
    )


def test_plot_refuses_mixed_protocols_and_plots_each_when_asked(tmp_path):
    frame = store_frame((("standard", "aaa"), ("legacy-y", "bbb")))
    with pytest.raises(SRBenchError, match="several protocols"):
        pareto_plot(frame, "set5", 2, out_dir=tmp_path, cost_fn=fake_costs)
    paths = pareto_plot(frame, "set5", 2, "ssim", "macs", tmp_path, protocol="legacy-y",
                        cost_fn=fake_costs)  # fmt: skip
    assert "legacy-y-bbb" in paths["png"].name
    results = plot_all(frame, tmp_path / "all", cost_fn=fake_costs)
    assert len(results) == 2 and all(isinstance(p, dict) for _, p in results)


def test_plot_without_the_cost_says_why(tmp_path):
    with pytest.raises(SRBenchError, match="srbench profile"):
        pareto_plot(store_frame(), "set5", 2, cost="latency_ms", out_dir=tmp_path,
                    cost_fn=fake_costs)  # fmt: skip
    with pytest.raises(SRBenchError, match="no results for set14"):
        pareto_plot(store_frame(), "set14", 2, out_dir=tmp_path, cost_fn=fake_costs)
    with pytest.raises(SRBenchError, match="unknown cost"):
        pareto_plot(store_frame(), "set5", 2, cost="watts", out_dir=tmp_path)


# ------------------------------------------------------------------------------------------------
# tools/make_readme_assets.py
# ------------------------------------------------------------------------------------------------


def _readme_tool():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / "make_readme_assets.py"
    spec = importlib.util.spec_from_file_location("make_readme_assets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_assets_are_generated_from_the_store(tmp_path):
    from srbench.results import ResultStore

    tool = _readme_tool()
    frame = store_frame()
    frame.loc[frame["model"] == "worse", "model"] = "a|b<i>"
    COSTS[("a|b<i>", 2)] = COSTS[("worse", 2)]
    later = (frame["model"] == "small") & frame["image"].isin(["i3", "i4"])
    ResultStore(tmp_path / "results").append(frame[~later].to_dict("records"))
    paths = tool.readme_assets(tmp_path / "results", tmp_path / "reports", cost_fn=fake_costs)
    assert paths["png"].name == "readme_pareto.png" and paths["png"].stat().st_size > 0
    text = paths["markdown"].read_text()
    assert "do not edit" in text and "standard@aaa" in text
    # 3 of Set5's 5 images: a partial mean is never shown as the benchmark's number
    assert "| small | other weights (--weights) | (3/5 images) | 8,000 | 8.0 G |" in text
    ResultStore(tmp_path / "results").append(frame[later].to_dict("records"))
    paths = tool.readme_assets(tmp_path / "results", tmp_path / "reports", cost_fn=fake_costs)
    text = paths["markdown"].read_text()
    assert "| small | other weights (--weights) | 36.20 / 0.9020 | 8,000 | 8.0 G |" in text
    assert "a\\|b&lt;i&gt;" in text  # table-safe

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{tool.BEGIN}\nold\n{tool.END}\noutro\n")
    tool.update_readme(readme, paths["markdown"], paths["png"])
    new = readme.read_text()
    assert new.startswith("intro\n") and new.endswith("outro\n") and "old" not in new
    assert "![Pareto front](reports/readme_pareto.png)" in new


def test_labels_of_close_points_do_not_overlap():
    """DRN-M and EDSR-baseline sit ~1% apart in parameters and 0.05 dB apart: their labels (and
    a cluster of five) are placed so that no two overlap and none covers another marker."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from srbench.plotting import _overlap_area, _text_box

    fig = Figure(figsize=(7.5, 5.0), dpi=110)
    ax = fig.subplots()
    xs = [1.370e6, 1.383e6, 5.21e5, 5.29e5, 5.53e5, 3.81e5, 5.53e5]
    ys = [36.664, 36.710, 35.94, 36.27, 35.70, 35.76, 37.84]
    texts = ["edsr_baseline", "drn_m", "drn_s_plain", "drn_s", "idn", "drn_s_nodistill", "x"]
    ax.scatter(xs, ys)
    ax.set_xscale("log")
    ax.set_xlim(1e3, 3e6)  # the README figure's range (bicubic at the left)
    fig.tight_layout()
    annotations = place_labels(ax, xs, ys, texts, fontsize=8)
    assert sorted(a.get_text() for a in annotations) == sorted(texts)  # none dropped
    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = [_text_box(a, renderer) for a in annotations]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert _overlap_area(a, b) == 0
    points = ax.transData.transform(list(zip(xs, ys, strict=True)))
    for box, ann in zip(boxes, annotations, strict=True):
        for (px, py), text in zip(points, texts, strict=True):
            if text != ann.get_text():
                assert not box.contains(px, py), (ann.get_text(), text)
    frame = ax.get_window_extent(renderer)
    assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1) for b in boxes)


def test_saved_figures_are_byte_reproducible(tmp_path):
    """No date stamp and fixed SVG ids: a regenerated README plot of an unchanged store does not
    show up as a change in git."""
    from matplotlib.figure import Figure

    from srbench.pareto import save_figure

    saved = []
    for i in range(2):
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [1, 0])  # a clipped line: its clip-path id is in the SVG
        paths = save_figure(fig, {"png": tmp_path / f"{i}.png", "svg": tmp_path / f"{i}.svg"})
        saved.append({kind: path.read_bytes() for kind, path in paths.items()})
    assert saved[0] == saved[1]
    assert b"clip-path" in saved[0]["svg"]


def test_each_kind_of_weights_has_its_own_front_and_marker():
    """srbench's short training and the authors' weights are never one front: a zoo model that
    an official file would dominate is still on the zoo's front, drawn with the zoo's marker."""
    from matplotlib.figure import Figure

    from srbench.kinds import KINDS, training_budget, weights_kind
    from srbench.pareto import draw_fronts
    from srbench.registry import get_card

    idn, edsr = get_card("idn"), get_card("edsr_baseline")
    assert weights_kind("idn", idn.weights[2].sha256) == "srbench"
    assert weights_kind("idn.official", idn.official_weights[2].sha256) == "official"
    assert weights_kind("idn", "f" * 64) == "other"
    assert weights_kind("bicubic", "none") == "none"
    assert weights_kind("idn", "random-init") == "random"
    assert training_budget("edsr_baseline", 2, edsr.weights[2].sha256) == (
        "srbench zoo: 1,000 iterations (0.33% of its paper's 300,000 x batch 16)"
    )
    assert training_budget("idn.official", 2, idn.official_weights[2].sha256) == ""

    ax = Figure().subplots()
    costs, qualities = [1.0, 2.0, 1.5, 3.0], [30.0, 31.0, 33.0, 34.0]
    kinds = ["srbench", "srbench", "official", "official"]
    draw_fronts(ax, costs, costs, qualities, kinds, 4.0, 30)
    by_label = {c.get_label(): c for c in ax.collections}
    zoo = by_label["srbench-trained (zoo): on its front"]
    assert sorted(map(tuple, zoo.get_offsets().tolist())) == [(1.0, 30.0), (2.0, 31.0)]
    assert "srbench-trained (zoo): dominated" not in by_label  # one front would drop (2, 31)
    assert len(by_label["authors' weights (.official): on its front"].get_offsets()) == 2
    assert len(ax.lines) == 2  # a step line per kind
    assert {c.get_paths()[0] == by_label[k].get_paths()[0] for k, c in by_label.items()} == {True}
    assert KINDS["srbench"][1] != KINDS["official"][1]  # markers tell them apart


def test_labels_name_the_budget_where_srbench_files_were_trained_differently(monkeypatch):
    """DRN-S shipping its 16k ladder file at x2 while IDN ships the zoo's 1k one: one front of
    "srbench-trained" points would hide two budgets, so each plain-name point's label in a
    figure says its budget tag; at x4, where every srbench file has the same budget, the labels
    stay plain."""
    import srbench.pretrained as pretrained
    from srbench.pareto import budget_labels

    table = {
        "drn_s": {2: {"tag": "zoo16k", "sha256": "d16"}, 4: {"tag": "zoo1k_cosine", "sha256": "d4"}},
        "idn": {2: {"tag": "zoo1k_cosine", "sha256": "i2"}, 4: {"tag": "zoo1k_cosine", "sha256": "i4"}},
    }  # fmt: skip
    monkeypatch.setattr(pretrained, "shipped", lambda: table)
    frame = pd.DataFrame(
        [
            {"model": m, "label": m, "scale": s, "weights_sha256": w}
            for m, s, w in [
                ("drn_s", 2, "d16"), ("idn", 2, "i2"), ("drn_s.zoo4k", 2, "x"),
                ("idn.official", 2, "o"), ("bicubic", 2, "none"), ("drn_s", 4, "d4"),
                ("idn", 4, "i4"),
            ]
        ]
    )  # fmt: skip
    assert budget_labels(frame) == [
        "drn_s (zoo16k)", "idn (zoo1k_cosine)", "drn_s.zoo4k", "idn.official", "bicubic",
        "drn_s", "idn",
    ]  # fmt: skip
