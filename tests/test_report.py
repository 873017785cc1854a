"""The HTML report: self-contained, escaped, protocols apart, paper deltas, crops, ablation."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from srbench.crops import CropStore, highest_variance_crop
from srbench.data import HRImage, pixels_sha256
from srbench.protocols import get_protocol
from srbench.report import VISUAL_IMAGES, build_report, visual_order
from srbench.results import ResultStore
from srbench.runner import RunConfig, run
from srbench.sources import DatasetSource

STANDARD, LEGACY = get_protocol("standard"), get_protocol("legacy-y")
EVIL = "<script>alert(1)</script>"


def synthetic_source() -> DatasetSource:
    rng = np.random.default_rng(1)
    images = {}
    for i in range(3):
        img = np.full((72, 96, 3), 120, np.uint8)
        img[20:50, 30:70] = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)  # one busy region
        images[f"s{i}"] = img

    def load(name: str) -> HRImage:
        return HRImage("synthetic", name, images[name], pixels_sha256(images[name]), None)

    return DatasetSource("synthetic", "test", list(images), load, is_standard=False,
                         visual_images=("s0", "s1"))  # fmt: skip


def fabricated(model, protocol, dataset, scale, psnr, n, sha="none", **extra):
    return [
        {"model": model, "weights_sha256": sha, "scale": scale, "dataset": dataset,
         "image": f"img{i}", "protocol": protocol.id, "protocol_hash": protocol.hash,
         "ensemble": False, "precision": "fp32", "psnr_db": psnr, "ssim": 0.9, "device": "Test CPU",
         "device_type": "cpu", "torch_threads": 2, "torch_version": "2.x",
         "srbench_version": "0.1.0", "git_commit": "abc123", "run_id": "r1",
         "time_utc": "2026-01-01T00:00:00+00:00", **extra}
        for i in range(n)
    ]  # fmt: skip


def make_store(root: Path) -> Path:
    """Real bicubic runs on synthetic images (both protocols) plus fabricated records."""
    for protocol in ("standard", "legacy-y"):
        config = RunConfig(models=["bicubic"], datasets=["synthetic"], scales=[2], protocol=protocol,
                           results_dir=root, cache_lr=False)  # fmt: skip
        run(config, [synthetic_source()])
    store = ResultStore(root)
    store.append(fabricated("bicubic", LEGACY, "set5", 2, 33.70, 5))  # paper: 33.66
    store.append(fabricated("bicubic", STANDARD, "set5", 2, 31.11, 5))
    store.append(fabricated(EVIL, STANDARD, "set5", 2, 35.55, 5, sha="e" * 64))
    store.append(fabricated("srcnn_915", STANDARD, "synthetic", 2, 12.34, 3, sha="random-init"))
    # as `srbench ablate` writes them: ablation (study), variant, model_overrides, params
    store.append(fabricated("drn_s", STANDARD, "set5", 2, 36.01, 5, sha="a" * 64, ablation="drn",
                            variant="drn_s", model_overrides={}, params=529379))  # fmt: skip
    store.append(fabricated("drn_s", STANDARD, "set5", 2, 35.80, 5, sha="b" * 64, ablation="drn",
                            variant=f"no-distill {EVIL}", model_overrides={"use_distill": False},
                            params=381475))  # fmt: skip
    store.append(fabricated("drn_s_plain", STANDARD, "set5", 2, 35.90, 5, sha="c" * 64,
                            ablation="drn", variant="plain-matched"))  # fmt: skip
    return root


def fake_costs(model: str, scale: int) -> dict:
    table = {"bicubic": 0, "srcnn_915": 8129, "drn_s": 529379, "drn_s_plain": 520739}
    if model not in table:
        raise KeyError(model)
    return {"params": table[model], "macs": 1e9 + table[model] * 1e5, "network_macs": 0}


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    root = make_store(tmp / "results")
    index = build_report(root, tmp / "out", cost_fn=fake_costs, visual_images=2)
    return index


def _section(html: str, protocol) -> str:
    """The HTML of one protocol's section (up to the next protocol, the ablation or the footer)."""
    start = html.index(f'<section id="p-{protocol.id}-{protocol.hash}">')
    ends = [
        html.find(marker, start + 1)
        for marker in (
            *(f'<section id="p-{p.id}-{p.hash}">' for p in (STANDARD, LEGACY)),
            '<section id="ablation">',
            '<footer id="provenance">',
        )
    ]
    return html[start : min(e for e in ends if e > 0)]


def test_folder_is_self_contained(report):
    html = report.read_text()
    parser = _Refs()
    parser.feed(html)
    assert "script" not in parser.tags and "link" not in parser.tags and "iframe" not in parser.tags
    assert "url(" not in html and "@import" not in html
    images = [v for t, n, v in parser.refs if t == "img"]
    assert len(images) >= 4
    for tag, _, ref in parser.refs:
        if ref.startswith("#"):
            continue
        assert not re.match(r"^[a-z]+:|^//|^/", ref), f"{tag} refers outside the folder: {ref}"
        assert (report.parent / ref).is_file(), ref
    assert any(ref.endswith(".svg") for _, _, ref in parser.refs)


def test_everything_is_escaped(report):
    html = report.read_text()
    assert EVIL not in html
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "no-distill &lt;script&gt;" in html  # ablation tags too


def test_protocols_are_in_separate_tables(report):
    html = report.read_text()
    standard, legacy = _section(html, STANDARD), _section(html, LEGACY)
    assert "31.11" in standard and "31.11" not in legacy
    assert "33.70" in legacy and "33.70" not in standard
    assert "35.55" in standard and "35.55" not in legacy


def test_paper_vs_measured_only_under_the_same_protocol(report):
    html = report.read_text()
    legacy = _section(html, LEGACY)
    assert "Paper vs measured" in legacy
    assert "+0.04" in legacy and "33.66" in legacy  # bicubic's published legacy-y Set5 x2
    assert "Paper vs measured" not in _section(html, STANDARD)


def test_random_weights_are_flagged(report):
    html = report.read_text()
    assert "partial:" not in html  # every fabricated set5 result has all 5 images
    assert "random weights: numbers are meaningless" in html
    assert "srcnn_915 (random weights) (run them again with" in html  # no crop, said so


def test_visual_comparison_shows_the_crops_run_stored(report):
    """`srbench run` stored the crops (with the record key of the number they belong to); the
    report copies them, with the stored whole-image PSNR under each, and runs nothing."""
    html = report.read_text()
    standard = _section(html, STANDARD)
    assert "Visual comparison" in standard
    assert "synthetic / s0" in standard and "synthetic / s1" in standard
    stored = {
        r["image"]: r["psnr_db"]
        for r in ResultStore(report.parent.parent / "results").iter_records()
        if r["dataset"] == "synthetic" and r["protocol"] == "standard" and r["model"] == "bicubic"
    }
    assert f"image {stored['s0']:.2f} dB" in standard
    assert "no stored crops for" in standard and "srcnn_915" in standard
    # the crop is the busy region of the synthetic images, clipped to the scored area
    assert re.search(r"68×68 HR pixels at \(x=26, y=2\)", standard)
    entries = CropStore(report.parent.parent / "results").entries()
    assert len(entries) == 4  # s0, s1 x (standard, legacy-y)
    for e in entries:
        assert e["psnr_db"] == stored[e["image"]] or e["protocol"] == "legacy-y"
        assert e["hr_sha256"] and e["box"]["size"] == 68


def test_run_adds_the_crops_of_results_stored_before_crops_existed(tmp_path):
    config = RunConfig(models=["bicubic"], datasets=["synthetic"], scales=[2],
                       results_dir=tmp_path, cache_lr=False, crops=False)  # fmt: skip
    run(config, [synthetic_source()])
    assert CropStore(tmp_path).entries() == []
    config.crops = True
    assert run(config, [synthetic_source()]) == []  # nothing recomputed into the store ...
    entries = CropStore(tmp_path).entries()
    assert sorted(e["image"] for e in entries) == ["s0", "s1"]  # ... but the crops were made
    records = {r["image"]: r for r in ResultStore(tmp_path).iter_records()}
    assert all(e["psnr_db"] == records[e["image"]]["psnr_db"] for e in entries)


def test_crops_of_old_records_and_crops_added_twice_show_once(tmp_path):
    """A record an older srbench wrote lacks later key fields (here ``scorer_version``), which a
    table built beside newer records holds as NaN: its crop is still found by the record key.
    Two workers can both add one image's crop: it is shown once."""
    import json

    config = RunConfig(models=["bicubic"], datasets=["synthetic"], scales=[2],
                       results_dir=tmp_path, cache_lr=False)  # fmt: skip
    run(config, [synthetic_source()])
    store = ResultStore(tmp_path)
    old = [{k: v for k, v in r.items() if k != "scorer_version"} for r in store.iter_records()]
    store.records_path.write_text("".join(json.dumps(r) + "\n" for r in old))
    store.append(fabricated("bicubic", STANDARD, "set5", 2, 31.11, 5, scorer_version=1))
    index = CropStore(tmp_path).index
    index.write_text(index.read_text() * 2)
    assert len(CropStore(tmp_path).entries()) == 2  # s0 and s1, once each
    html = build_report(tmp_path, tmp_path / "out", cost_fn=fake_costs, visual_images=2)
    standard = _section(html.read_text(), STANDARD)
    assert standard.count('alt="bicubic: synthetic s0 crop"') == 1
    assert standard.count('alt="bicubic: synthetic s1 crop"') == 1
    assert "no stored crops for" not in standard


def test_ablation_section_and_footer(report):
    html = report.read_text()
    assert 'id="ablation"' in html
    ablation = html[html.index('<section id="ablation">') : html.index('<footer id="provenance">')]
    assert "Ablation <code>drn</code>" in ablation
    order = [ablation.index(v) for v in ("<td>drn_s</td>", "<td>no-distill", "<td>plain-matched")]
    assert order == sorted(order)  # in the order they were measured
    assert "36.01" in ablation and "381,475" in ablation and "use_distill=False" in ablation
    assert "(registered drn_s_plain)" in ablation  # no params in the record: the card's, marked
    footer = html[html.index('<footer id="provenance">') :]
    assert STANDARD.hash in footer and LEGACY.hash in footer
    assert STANDARD.definition["crop"] in footer
    assert "Test CPU" in footer and "abc123" in footer
    # provenance of the code: the real runs' hash, the fabricated (older) records' unknown code
    from srbench.codehash import model_code_sha256

    assert f"from code {model_code_sha256('bicubic')}" in footer
    assert "made before srbench recorded its code hash (code unknown" in footer


def test_no_ablation_section_without_ablation_records(tmp_path):
    root = tmp_path / "r"
    ResultStore(root).append(fabricated("bicubic", STANDARD, "set5", 2, 33.0, 3))
    ResultStore(root).append(
        fabricated("bicubic", STANDARD, "set14", 2, 30.0, 14, standard_benchmark=False)
    )
    html = build_report(root, tmp_path / "o", cost_fn=fake_costs, visual_images=0).read_text()
    assert 'id="ablation"' not in html
    assert "Protocol <code>standard@" in html
    # A mean over part of a benchmark, or over an unverified copy, is refused: the reason, no number.
    assert 'title="3/5 images">– (3/5 images)' in html
    unverified = "14 of 14 images not the verified benchmark copy"
    assert f'title="{unverified}">– ({unverified})' in html
    assert ">33.00" not in html and ">30.00" not in html


def test_empty_store_and_stale_images(tmp_path):
    out = tmp_path / "o"
    root = tmp_path / "r"
    ResultStore(root).append(fabricated("bicubic", STANDARD, "set5", 2, 33.0, 5))
    build_report(root, out, cost_fn=fake_costs, visual_images=0)
    assert list((out / "img").glob("build-*/*.png"))
    html = build_report(tmp_path / "empty", out, cost_fn=fake_costs).read_text()
    assert "The result store is empty" in html
    assert not list((out / "img").glob("**/*.png"))  # our own stale plots are gone

    foreign = tmp_path / "foreign"
    (foreign / "img").mkdir(parents=True)
    (foreign / "img" / "keep.png").write_bytes(b"x")
    build_report(tmp_path / "empty", foreign, cost_fn=fake_costs)
    assert (foreign / "img" / "keep.png").exists()  # a folder we did not write is never cleared


def _build_dir(out: Path) -> str:
    """``img/build-...``: the one image folder of the report in ``out``."""
    (build,) = (out / "img").glob("build-*")
    return f"img/{build.name}"


def test_a_scale_with_only_random_weights_is_reported_and_labelled(tmp_path):
    root = tmp_path / "r"
    store = ResultStore(root)
    store.append(fabricated("bicubic", STANDARD, "set5", 2, 33.0, 5))
    store.append(fabricated("srcnn_915", STANDARD, "set5", 3, 12.34, 5, sha="random-init"))
    html = build_report(root, tmp_path / "o", cost_fn=fake_costs, visual_images=0).read_text()
    x3 = html[html.index(f'id="p-standard-{STANDARD.hash}-x3"') :]
    assert "<td>srcnn_915 (random weights)</td>" in x3 and "12.34" in x3
    assert "random-weight results left out: srcnn_915 (random weights)" in x3


def test_kill_9_during_report_leaves_the_old_report_whole(tmp_path):
    """A report killed after writing some of its figures: the old page and every image it shows
    are still there (the new build is swapped in whole, or not at all)."""
    import subprocess
    import sys

    root = make_store(tmp_path / "results")
    out = tmp_path / "out"
    index = build_report(root, out, cost_fn=fake_costs, visual_images=2)
    before = index.read_bytes()
    script = (
        "import os, signal, sys\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from test_report import fake_costs\n"
        "from srbench.report import build_report\n"
        "def progress(message):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # after the first scale's figures\n"
        "build_report(sys.argv[1], sys.argv[2], cost_fn=fake_costs, visual_images=2, "
        "progress=progress)\n"
    )
    tests = str(Path(__file__).parent)
    done = subprocess.run([sys.executable, "-c", script, str(root), str(out), tests], check=False)
    assert done.returncode == -9
    assert index.read_bytes() == before
    parser = _Refs()
    parser.feed(before.decode())
    refs = [v for t, _, v in parser.refs if t == "img"]
    assert len(refs) >= 4 and all((out / ref).is_file() for ref in refs), refs
    assert len(list((out / "img").glob("build-*"))) == 2  # the killed build wrote figures
    build_report(root, out, cost_fn=fake_costs, visual_images=2)  # the leftovers are cleared
    assert len(list((out / "img").glob("build-*"))) == 1


def test_paper_vs_measured_only_for_the_papers_weights_and_zoo_budget_shown(tmp_path):
    """srbench's short zoo training is never a failed reproduction: only NAME.official (and
    weightless bicubic) meet the paper's numbers; a zoo row says its budget."""
    from srbench.registry import get_card

    card = get_card("idn")
    root = tmp_path / "r"
    store = ResultStore(root)
    store.append(fabricated("idn", LEGACY, "set5", 2, 35.70, 5, sha=card.weights[2].sha256))
    store.append(
        fabricated("idn.official", LEGACY, "set5", 2, 37.84, 5, sha=card.official_weights[2].sha256)
    )

    def costs(model: str, scale: int) -> dict:
        return {"params": 552769, "macs": 1e9, "network_macs": 0}

    html = build_report(root, tmp_path / "o", cost_fn=costs, visual_images=0).read_text()
    paper = html[html.index("<h4>Paper vs measured") : html.index("<h4>Pareto fronts")]
    assert "<td>idn.official</td>" in paper and "<td>idn</td>" not in paper
    assert "37.84" in paper and "35.70" not in paper
    # IDN's x2 file is the budget ladder's 16k rung (shipped.json), and the row says so.
    assert "srbench ladder: 16,000 iterations (its paper&#39;s budget is not recorded)" in html
    assert "authors&#39; weights (.official)" in html


def test_highest_variance_crop_is_deterministic():
    y = np.zeros((100, 120))
    y[40:60, 70:90] = np.indices((20, 20)).sum(0) % 2 * 255  # a checkerboard patch
    top, left, size = highest_variance_crop(y, 16, border=2, stride=2)
    assert size == 16
    assert 40 <= top <= 44 and 70 <= left <= 74
    assert highest_variance_crop(y, 16, border=2, stride=2) == (top, left, size)
    flat = np.zeros((50, 50))
    assert highest_variance_crop(flat, 96, border=4) == (4, 4, 42)  # clipped; first window


def test_verdict_and_training_sections_come_from_the_store(tmp_path):
    """The verdict table (from paired per-image records) and the zoo's learning curves (from
    <store>/training/*.json, written by `srbench zoo ship`) are rendered from the store alone."""
    import json

    root = tmp_path / "r"
    store = ResultStore(root)
    store.append(fabricated("drn_s", STANDARD, "set5", 2, 36.0, 5, sha="a" * 64))
    store.append(fabricated("bicubic", STANDARD, "set5", 2, 33.0, 5))
    idn = fabricated("bicubic", STANDARD, "set5", 2, 35.5, 5, sha="b" * 64)
    for r in idn:
        r["model"] = "idn"
    store.append(idn)
    (root / "training").mkdir()
    for model, ys in (("drn_s", [34.0, 36.0]), ("idn", [33.5, 35.5])):
        (root / "training" / f"{model}.json").write_text(json.dumps({
            "zoo_run": f"{model}-x2-run", "model": model, "scales": [2], "recipe_hash": "h",
            "shipped_sha256": None,
            "summary": {"iterations": 1000, "train_seconds": 600.0, "cpu_model": "Test CPU",
                        "torch_threads": 2, "precision": "bf16",
                        "validation": {"set5": {"psnr_db": ys[-1]}}},
            "curve": [{"iteration": 500 * (i + 1), "scale": 2, "set5": {"psnr_db": y}}
                      for i, y in enumerate(ys)],
        }))  # fmt: skip

    def costs(model: str, scale: int) -> dict:
        return {"params": {"bicubic": 0, "drn_s": 529379, "idn": 552769}[model], "macs": 1e9,
                "network_macs": 0}  # fmt: skip

    out = tmp_path / "o"
    html = build_report(root, out, cost_fn=costs, visual_images=0).read_text()
    verdict = html[html.index('<section id="verdict">') : html.index('<section id="training">')]
    assert "drn_s - idn" in verdict and "+0.500" in verdict and "[+0.500, +0.500]" in verdict
    assert "5/0/0" in verdict and "better with 95% confidence in 1" in verdict
    # the forest plot and the per-image strip plot of the pair, drawn from the same records
    build = _build_dir(out)
    assert f"{build}/verdict_forest.png" in verdict
    assert f"{build}/verdict_strip_drn_s_vs_idn.png" in verdict
    assert (out / build / "verdict_forest.png").is_file()
    training = html[html.index('<section id="training">') :]
    assert "drn_s-x2-run" in training and "10.0" in training and "bf16" in training
    assert (out / build / "learning_x2.png").is_file() and f"{build}/learning_x2.png" in training


def test_paper_points_sit_at_the_stored_cost_of_their_architecture_and_protocol():
    """Hollow paper markers: the card's number under the same protocol only, placed at the cost
    the store has for that architecture (idn.official costs what idn costs)."""
    import pandas as pd

    from srbench.registry import get_card
    from srbench.report.plots import _paper_points

    table = pd.DataFrame(
        [
            {"model": "idn.official", "scale": 2, "dataset": "set5", "params": 552769.0},
            {"model": "bicubic", "scale": 2, "dataset": "set5", "params": 0.0},
        ]
    )
    published = get_card("idn").published_for("set5", 2)
    assert published is not None and published.protocol == "legacy-y"
    points = _paper_points(table, ["set5"], 2, "legacy-y", "params")
    idn = [p for p in points if p.label == "idn (paper)"]
    assert len(idn) == 1 and idn[0].value == published.psnr_db and idn[0].cost == 552769.0
    assert not [p for p in _paper_points(table, ["set5"], 2, "standard", "params")
                if p.label == "idn (paper)"]  # fmt: skip  # never across protocols


def test_efficiency_section_reads_profile_records_and_shows_both_deconv_counts(tmp_path):
    root = tmp_path / "r"
    ResultStore(root).append(fabricated("idn", STANDARD, "set5", 4, 30.0, 5, sha="b" * 64))
    base = {"model": "idn", "scale": 4, "precision": "fp32", "device_type": "cpu",
            "trainable_params": 552769, "env": {"cpu_model": "Test CPU"}, "threads": 2}  # fmt: skip
    profiles = [
        {**base, "size": "720p", "total_macs": 32.08e9, "literature_macs": 48.1e9,
         "latency": {"status": "measured", "median_ms": 812.0, "iqr_ms": 9.5, "repeats": 10},
         "latency_median_ms": 812.0, "as_run": True},
        {**base, "size": "256", "total_macs": 36.4e9, "literature_macs": 52.0e9,
         "latency": {"status": "not measured"}},
    ]  # fmt: skip
    html = build_report(root, tmp_path / "o", profiles=profiles, visual_images=0).read_text()
    section = html[html.index('<section id="efficiency">') : html.index('<section id="verdict">')
                   if '<section id="verdict">' in html else None]  # fmt: skip
    assert "552,769" in section and "32.1 G" in section and "48.1 G" in section
    assert "36.4 G" in section and "812 (IQR 9.50, 10 runs, 2 threads)" in section
    assert "Test CPU" in section and section.count("not measured") >= 2  # GPU columns
    # An NCHW timing from before profiles measured what `run` runs is not the latency column.
    profiles[0].pop("as_run")
    html = build_report(root, tmp_path / "o2", profiles=profiles, visual_images=0).read_text()
    assert "812 (IQR" not in html and "32.1 G" in html


def test_visual_comparison_shows_one_image_per_benchmark_first():
    """Each benchmark's first named (hardest) image before any benchmark's second, so the
    default count shows every benchmark with crops (Urban100 img_092, Set14 barbara, ...) before
    Urban100's second; images no spec names (Manga109's: it may not be redistributed) last."""
    stored = [("urban100", "img_004"), ("manga109", "YumeiroCooking"), ("urban100", "img_092"),
              ("set14", "barbara"), ("set5", "butterfly"), ("b100", "253027"), ("set5", "bird")]  # fmt: skip
    order = visual_order(stored)
    assert VISUAL_IMAGES == 5
    assert order == [
        ("set5", "butterfly"), ("set14", "barbara"), ("b100", "253027"), ("urban100", "img_092"),
        ("urban100", "img_004"), ("set5", "bird"), ("manga109", "YumeiroCooking"),
    ]  # fmt: skip


def test_the_verdict_over_budgets_comes_from_the_store(tmp_path):
    """The ladder's checkpoints (budget-tagged names) give the report a verdict per rung -- each
    row saying what its interval covers (images, and training seeds where a rung has several) --
    its figure against the budget, and the ladder's learning curves from training/ladder."""
    import json

    root = tmp_path / "r"
    store = ResultStore(root)
    for name, psnr in (
        ("drn_s.zoo1k", 36.0),
        ("drn_s.zoo1k_s1", 36.2),
        ("idn.zoo1k", 35.5),
        ("idn.zoo1k_s1", 35.5),
        ("drn_s.zoo4k", 37.0),
        ("idn.zoo4k", 36.75),
    ):
        store.append(fabricated(name, STANDARD, "set5", 2, psnr, 5, sha=name[0] * 64))
    (root / "training" / "ladder").mkdir(parents=True)
    for rung, ys in ((1000, [35.0, 36.0]), (4000, [36.5, 37.0])):
        (root / "training" / "ladder" / f"drn_s-{rung}.json").write_text(json.dumps({
            "ladder_run": f"drn_s-x2-it{rung}", "model": "drn_s", "scales": [2], "seed": 0,
            "rung": rung, "decay_start": rung * 4 // 5,
            "curve": [{"iteration": rung // 2, "scale": 2, "ema": False, "set5": {"psnr_db": ys[0]}},
                      {"iteration": rung, "scale": 2, "ema": False, "set5": {"psnr_db": ys[1]}}],
        }))  # fmt: skip
    out = tmp_path / "o"
    html = build_report(root, out, visual_images=0).read_text()
    budget = html[html.index('<section id="budget">') :]
    budget = budget[: budget.index("</section>")]
    assert "drn_s - idn, mean PSNR difference in dB by training budget" in budget
    assert "1k +0.60 [" in budget and "(2 seeds), 4k +0.25 [+0.25, +0.25] (1 seed)" in budget
    assert "5 images x 2 training seeds" in budget
    assert "5 images; one training seed (training noise not covered)" in budget
    build = _build_dir(out)
    for figure in ("verdict_budget_x2.png", "ladder_curves_x2.png"):
        assert f"{build}/{figure}" in budget and (out / build / figure).is_file()
