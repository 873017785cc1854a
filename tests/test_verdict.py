"""The verdict's arithmetic on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from srbench.schema import PSNR, SSIM
from srbench.verdict import compare, paired_bootstrap, sentence, verdict


def test_bootstrap_of_a_constant_difference_is_that_constant():
    got = paired_bootstrap([0.25] * 12)
    assert (got.mean, got.low, got.high) == pytest.approx((0.25, 0.25, 0.25))


def test_bootstrap_matches_the_normal_approximation_and_is_seeded():
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.3, 1.0, 400)
    got = paired_bootstrap(diffs, seed=7)
    half = 1.96 * diffs.std(ddof=1) / np.sqrt(diffs.size)  # known answer for a large sample
    assert got.mean == pytest.approx(diffs.mean())
    assert got.low == pytest.approx(diffs.mean() - half, abs=0.015)
    assert got.high == pytest.approx(diffs.mean() + half, abs=0.015)
    assert paired_bootstrap(diffs, seed=7) == got  # same seed, same interval
    assert paired_bootstrap(diffs, seed=8) != got


def _records(model: str, values: dict[str, float], **extra) -> list[dict]:
    return [
        {"model": model, "dataset": "set5", "scale": 2, "protocol": "standard", "image": k,
         "hr_sha256": f"h-{k}", "psnr_db": v, "ssim": v / 100, **extra}
        for k, v in values.items()
    ]  # fmt: skip


def test_pairing_wins_ties_losses_and_the_sentence():
    a = _records("drn_s", {"a": 30.0, "b": 31.0, "c": 32.0, "d": 33.0, "e": 40.0})
    b = _records("idn", {"a": 29.0, "b": 31.005, "c": 32.5, "d": 32.0, "z": 10.0})
    result = compare(a + b, "drn_s", "idn", "set5", 2, "standard", PSNR)
    assert result is not None
    assert result.images == 4  # e and z have no partner
    assert result.per_image == pytest.approx({"a": 1.0, "b": -0.005, "c": -0.5, "d": 1.0})
    assert (result.wins, result.ties, result.losses) == (2, 1, 1)  # tie: within 0.01 dB
    assert result.diff.mean == pytest.approx(0.37375)
    ssim = compare(a + b, "drn_s", "idn", "set5", 2, "standard", SSIM)
    assert ssim.ties == 1 and ssim.wins == 2  # 0.005/100 is within 0.0002
    rows = verdict(a + b, pairs=[("drn_s", "idn", "")])
    assert [(r.metric, r.images) for r in rows] == [("psnr_db", 4), ("ssim", 4)]
    text = sentence(rows, "drn_s", "idn")
    assert text == (
        "drn_s vs idn at equal training, mean PSNR difference: x2 +0.37 dB (better in 0, worse "
        "in 0, unclear in 1 of 1 datasets); over all 1 dataset/scale cells drn_s is better with "
        "95% confidence in 0, worse in 0, and the interval includes zero in 1."
    )


def test_images_with_other_pixels_are_not_paired():
    a = _records("drn_s", {"a": 30.0})
    b = _records("idn", {"a": 29.0})
    b[0]["hr_sha256"] = "another copy"
    assert compare(a + b, "drn_s", "idn", "set5", 2, "standard", PSNR) is None


def test_the_sentence_breaks_the_verdict_down_by_scale():
    # Constant per-image differences: the bootstrap interval is the difference itself.
    def both(scale: int, diff: float) -> list[dict]:
        a = _records("drn_s", {"a": 30.0, "b": 31.0}, scale=scale)
        b = _records("idn", {"a": 30.0 - diff, "b": 31.0 - diff}, scale=scale)
        return a + b

    records = both(2, 1.0) + both(3, -0.5) + both(4, -0.25)
    rows = verdict(records, pairs=[("drn_s", "idn", "")])
    assert sentence(rows, "drn_s", "idn") == (
        "drn_s vs idn at equal training, mean PSNR difference: x2 +1.00 dB (better in 1, worse "
        "in 0, unclear in 0 of 1 datasets); x3 -0.50 dB (better in 0, worse in 1, unclear in 0 "
        "of 1 datasets); x4 -0.25 dB (better in 0, worse in 1, unclear in 0 of 1 datasets); over "
        "all 3 dataset/scale cells drn_s is better with 95% confidence in 1, worse in 2, and the "
        "interval includes zero in 0."
    )
    assert sentence(rows, "drn_m", "edsr_baseline") == "drn_m vs edsr_baseline: not measured yet."


def test_rows_come_in_the_benchmarks_table_order():
    """Set5, Set14, B100, Urban100, Manga109 (as in every SR paper's table), then any other
    dataset; scales within each (the forest and strip plots keep this order per scale)."""
    records = []
    for dataset in ("urban100", "b100", "mine", "manga109", "set14", "set5"):
        for scale in (4, 2):
            records += _records("drn_s", {"a": 30.0}, dataset=dataset, scale=scale)
            records += _records("idn", {"a": 29.0}, dataset=dataset, scale=scale)
    rows = verdict(records, pairs=[("drn_s", "idn", "")])
    order = [(r.dataset, r.scale) for r in rows if r.metric == "psnr_db"]
    assert order == [
        (d, s) for d in ("set5", "set14", "b100", "urban100", "manga109", "mine") for s in (2, 4)
    ]
