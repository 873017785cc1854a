"""The verdict's arithmetic on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from srbench.errors import SRBenchError
from srbench.protocols import STANDARD
from srbench.schema import PSNR, SSIM
from srbench.verdict import (
    budget_sentence,
    budget_verdict,
    compare,
    paired_bootstrap,
    sentence,
    t_interval,
    unequal_training,
    verdict,
)


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
         "protocol_hash": STANDARD.hash, "hr_sha256": f"h-{k}", "psnr_db": v, "ssim": v / 100,
         **extra}
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


def test_one_name_with_results_of_two_weights_files_is_refused_not_mixed():
    """``srbench run --weights FILE`` without ``--tag`` stores a user's file under the plain
    name: a comparison that paired its images with the shipped file's would be no model's."""
    a = _records("srcnn", {"a": 30.0, "b": 31.0}, weights_sha256="1" * 64, time_utc="2026-12-01")
    a += _records("srcnn", {"a": 35.0}, weights_sha256="2" * 64, time_utc="2026-12-02")
    b = _records("bicubic", {"a": 29.0, "b": 30.0})
    with pytest.raises(SRBenchError, match=r"srcnn on set5 x2 \(standard\): results of 2 kinds"):
        compare(a + b, "srcnn", "bicubic", "set5", 2, "standard", PSNR)


def test_ablation_variants_and_older_code_are_left_out_of_a_comparison():
    """Records of ``srbench ablate`` (the registered name with an ``ablation`` tag) are no
    model's own number; of one model's results only the newest code's count."""
    from srbench.pretrained import shipped

    files = {m: shipped()[m][2]["sha256"] for m in ("drn_s", "idn")}  # trained alike
    drn_s = {"weights_sha256": files["drn_s"]}
    a = _records("drn_s", {"a": 30.0, "b": 31.0}, code_sha256="old", time_utc="2026-12-01", **drn_s)
    a += _records("drn_s", {"a": 31.0}, code_sha256="new", time_utc="2026-12-02", **drn_s)
    variant = {"ablation": "no-distill", "weights_sha256": "9" * 64}
    a += _records("drn_s", {"a": 20.0, "b": 20.0}, time_utc="2026-12-03", **variant)
    b = _records("idn", {"a": 29.0, "b": 30.0}, weights_sha256=files["idn"])
    got = compare(a + b, "drn_s", "idn", "set5", 2, "standard", PSNR)
    assert got is not None and got.per_image == {"a": 2.0}
    # the variant's file is not a second drn_s file: the pair is still compared at x2
    assert unequal_training(a + b, pairs=[("drn_s", "idn", "")]) == []


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


def _coverage(method, seeds: int, n: int, sd_image: float, sd_seed: float, sd_err: float):
    """Share of synthetic experiments (true mean difference 0.2 dB, normal image, seed and
    residual effects) whose 95% interval contains 0.2."""
    rng = np.random.default_rng(12345)
    hits, reps = 0, 2000
    for rep in range(reps):
        d = (
            0.2
            + rng.normal(0, sd_image, (1, n))
            + rng.normal(0, sd_seed, (seeds, 1))
            + rng.normal(0, sd_err, (seeds, n))
        )
        got = method(d, rep)
        hits += got.low <= 0.2 <= got.high
    return hits / reps


def test_t_interval_holds_its_coverage_at_set5_size_and_the_bootstrap_does_not():
    """Set5 has 5 images: the paired t interval covers the known mean ~95% of the time, the
    percentile bootstrap the verdict used before only ~84% (why the method changed)."""
    t = _coverage(lambda d, _: t_interval(d[0]), 1, 5, 0.3, 0.0, 0.05)
    boot = _coverage(
        lambda d, rep: paired_bootstrap(d[0], resamples=2000, seed=rep), 1, 5, 0.3, 0, 0.05
    )
    assert 0.935 <= t <= 0.965
    assert boot < 0.88


@pytest.mark.parametrize(
    ("seeds", "n", "sd_image", "sd_seed", "sd_err"),
    [
        (3, 5, 0.2, 0.1, 0.05),
        (3, 5, 0.2, 0.0, 0.05),
        (3, 14, 0.2, 0.3, 0.05),
        (5, 100, 0.2, 0.05, 0.05),
        (3, 100, 0.06, 0.04, 0.08),  # the lowest of a grid of 108 three-seed cases (0.924)
        (3, 100, 0.3, 0.16, 0.08),  # 0.914 with Satterthwaite's df uncapped, 0.926 capped
    ],
)
def test_seed_and_image_interval_covers_training_noise(seeds, n, sd_image, sd_seed, sd_err):
    """With seeds, the two-way random-effects t interval (Satterthwaite df, capped where the seed
    term is a large share) keeps its nominal coverage within a few points, also when training
    noise dominates, without intervals much wider than needed where it does not."""
    got = _coverage(lambda d, _: t_interval(d), seeds, n, sd_image, sd_seed, sd_err)
    assert 0.91 <= got <= 0.975  # 2000 experiments: a Monte Carlo SE of about 0.006


@pytest.mark.parametrize(("n", "sd_seed"), [(100, 0.08), (14, 0.16)])
def test_two_seeds_cover_training_noise_only_approximately_and_say_so(n, sd_seed):
    """Two seeds give the seed variance one degree of freedom: at worst (the lowest of a grid of
    108 cases) the interval covers about 88%, which is why a 2-seed cell is labelled approximate."""
    got = _coverage(lambda d, _: t_interval(d), 2, n, 0.06, sd_seed, 0.3)
    assert 0.85 <= got < 0.93
    assert "approximate" in t_interval(np.zeros((2, n)) + np.arange(n)).covers


def test_the_seed_term_caps_the_degrees_of_freedom_and_measures_the_seed_spread():
    """No residual noise: seed offsets -0.2, 0, +0.2 on top of image effects. The seed-to-seed
    SD of the difference is their SD (0.2). MS_image = 0.321, MS_seed = 0.24: Satterthwaite
    alone gives 6.37 df; the seed term's share of the variance, 0.24 / 0.561, caps them at
    2 / (0.24 / 0.561) = 4.675."""
    images = np.array([0.3, -0.2, 0.5, 0.0, 0.1, -0.4])
    d = 0.2 + images[None, :] + np.array([-0.2, 0.0, 0.2])[:, None]
    got = t_interval(d)
    assert got.seed_sd == pytest.approx(0.2)
    assert got.df == pytest.approx(2 * 0.561 / 0.24)
    assert got.covers == "6 images x 3 training seeds, t on 4.7 df"
    assert t_interval(d[:1]).seed_sd is None  # one seed: no spread to measure


def test_one_seed_t_interval_is_the_textbook_paired_t():
    diffs = [0.5, 0.1, 0.3, 0.9, 0.2]
    got = t_interval(diffs)
    half = 2.7764451051977987 * np.std(diffs, ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert (got.mean, got.low, got.high, got.df) == pytest.approx((0.4, 0.4 - half, 0.4 + half, 4))
    assert got.covers == "5 images; one training seed (training noise not covered)"
    two = t_interval(np.array([diffs, diffs]))
    assert two.covers == "5 images x 2 training seeds, t on 4.0 df (too few seeds: approximate)"


def test_budget_verdict_pairs_seeds_and_rungs():
    def rec(model: str, values: dict[str, float]) -> list[dict]:
        return _records(model, values)

    records = (
        rec("drn_s.zoo1k", {"a": 30.0, "b": 31.0, "c": 32.0})
        + rec("drn_s.zoo1k_s1", {"a": 30.2, "b": 31.2, "c": 32.2})
        + rec("idn.zoo1k", {"a": 29.0, "b": 30.0, "c": 31.0})
        + rec("idn.zoo1k_s1", {"a": 29.0, "b": 30.0, "c": 31.0})
        + rec("drn_s.zoo4k", {"a": 31.0, "b": 32.0, "c": 33.0})
        + rec("idn.zoo4k", {"a": 31.5, "b": 32.5, "c": 33.5})
        + rec("drn_s.zoo16k", {"a": 31.0})  # no IDN partner at 16k: no row
        + rec("drn_s", {"a": 99.0})  # the plain name is not a rung
    )
    rows = [
        r for r in budget_verdict(records, pairs=[("drn_s", "idn", "")]) if r.metric == "psnr_db"
    ]
    assert [(r.budget, r.diff.seeds, r.images) for r in rows] == [(1000, 2, 3), (4000, 1, 3)]
    assert rows[0].diff.mean == pytest.approx(1.1) and rows[1].diff.mean == pytest.approx(-0.5)
    assert (rows[0].a, rows[0].b) == ("drn_s", "idn")
    text = budget_sentence(rows, "drn_s", "idn")
    assert text.startswith("drn_s - idn, mean PSNR difference in dB by training budget")
    assert "set5 x2: 1k +1.10 [" in text and "(2 seeds), 4k -0.50 [-0.50, -0.50] (1 seed)" in text
    # seeds 0 and 1 differ by 0.2 dB on every image: a seed-to-seed SD of 0.2 / sqrt(2)
    assert text.endswith(
        "Training noise where several seeds were trained (seed-to-seed SD of the difference in "
        "dB): set5 x2 1k 0.14; the one-seed intervals leave it out."
    )


def test_a_budget_cell_uses_the_seeds_both_models_have_at_its_scale():
    """Three seeds at x2 and only seed 0 at x4 (trained later, from scratch): the x4 cell is a
    1-seed comparison, not dropped for lack of seeds 1 and 2 there."""
    records = []
    for seed in ("", "_s1", "_s2"):
        records += _records(f"drn_s.zoo1k{seed}", {"a": 31.0, "b": 32.0})
        records += _records(f"idn.zoo1k{seed}", {"a": 30.0, "b": 31.5})
    records += _records("drn_s.zoo1k", {"a": 28.0, "b": 29.0}, scale=4)
    records += _records("idn.zoo1k", {"a": 28.5, "b": 29.2}, scale=4)
    rows = [
        r for r in budget_verdict(records, pairs=[("drn_s", "idn", "")]) if r.metric == "psnr_db"
    ]
    assert [(r.scale, r.diff.seeds) for r in rows] == [(2, 3), (4, 1)]
    assert rows[1].diff.mean == pytest.approx(-0.35)


def test_budget_sentence_says_which_compared_checkpoints_trained_at_a_lowered_rate(monkeypatch):
    """A rung that backed off after a divergence (training.divergence) is named in the sentence
    of every pair it is compared in, with its rate and where it went back to; a backed-off rung
    that is not compared (no partner at 16k) is not."""
    import srbench.pretrained as pretrained

    backoff = {"diverged_at": 1047, "loss": 1.3, "restored": 1000, "lr_scale": 0.5}
    table = {"idn": {("zoo4k", 2): [backoff]}, "drn_s": {("zoo16k", 2): [backoff]}}
    monkeypatch.setattr(pretrained, "recorded_backoffs", lambda model: table.get(model, {}))
    records = (
        _records("drn_s.zoo1k", {"a": 30.0, "b": 31.0})
        + _records("idn.zoo1k", {"a": 29.0, "b": 30.0})
        + _records("drn_s.zoo4k", {"a": 31.0, "b": 32.0})
        + _records("idn.zoo4k", {"a": 31.5, "b": 32.5})
        + _records("drn_s.zoo16k", {"a": 31.0, "b": 32.0})
    )
    rows = budget_verdict(records, pairs=[("drn_s", "idn", "")])
    text = budget_sentence(rows, "drn_s", "idn")
    assert text.endswith(
        "(1 seed). idn.zoo4k x2 trained at a lowered rate: x0.5 from iteration 1,000 (diverged "
        "at 1,047)."
    )
    assert "drn_s.zoo16k" not in text


def test_budget_sentence_says_where_the_compared_checkpoints_trained_in_other_precisions(
    monkeypatch,
):
    """``precision: auto`` trains in bf16 on a CPU with bf16 arithmetic and in fp32 on one
    without: a rung whose two checkpoints (any of their seeds) trained in different precisions
    says so; rungs trained alike, and checkpoints that are not compared, add nothing."""
    import srbench.pretrained as pretrained

    table = {
        "drn_s": {("zoo1k", 4): "bf16", ("zoo1k_s1", 4): "fp32", ("zoo4k", 4): "fp32"},
        "idn": {("zoo1k", 4): "bf16", ("zoo1k_s1", 4): "bf16", ("zoo4k", 4): "fp32"},
    }
    table["drn_s"][("zoo16k", 4)] = "fp32"  # no idn.zoo16k: not compared
    monkeypatch.setattr(pretrained, "recorded_precisions", lambda model: table.get(model, {}))
    # the committed manifest's backoffs (DRN-S x4 4k's) are another sentence, not this test's
    monkeypatch.setattr(pretrained, "recorded_backoffs", lambda model: {})
    records = []
    for model, shift in (("drn_s", 1.0), ("idn", 0.0)):
        for tag in ("zoo1k", "zoo1k_s1", "zoo4k"):
            records += _records(f"{model}.{tag}", {"a": 30 + shift, "b": 31 + shift}, scale=4)
    records += _records("drn_s.zoo16k", {"a": 31.0, "b": 32.0}, scale=4)
    text = budget_sentence(budget_verdict(records, pairs=[("drn_s", "idn", "")]), "drn_s", "idn")
    assert text.endswith(
        "intervals leave it out. At 1k x4 drn_s trained in bf16/fp32 and idn in bf16: that "
        "difference includes the precision."
    )


def test_the_plain_name_verdict_compares_only_files_trained_alike(monkeypatch):
    """Once DRN-S ships its 16k ladder file at x2 and IDN still ships the zoo's 1k one, "drn_s
    vs idn at equal training" would be false at x2: that scale is left out and the sentence
    says why; x4, where both ship the zoo's 1k files, is compared and names the training."""
    import srbench.pretrained as pretrained

    def row(tag: str, sha: str, precision: str = "bf16") -> dict:
        return {"tag": tag, "sha256": sha, "precision": precision}

    table = {
        "drn_s": {2: row("zoo16k", "d16"), 4: row("zoo1k_cosine", "d1")},
        "idn": {2: row("zoo1k_cosine", "i1"), 4: row("zoo1k_cosine", "i4")},
    }
    monkeypatch.setattr(pretrained, "shipped", lambda: table)
    monkeypatch.setattr(pretrained, "_ladder_manifest", lambda: {})
    values = {"a": 30.0, "b": 31.0, "c": 32.5}
    records = (
        _records("drn_s", values, weights_sha256="d16")
        + _records("idn", {k: v - 1 for k, v in values.items()}, weights_sha256="i1")
        + _records("drn_s", values, weights_sha256="d1", scale=4)
        + _records("idn", {k: v - 0.5 for k, v in values.items()}, weights_sha256="i4", scale=4)
    )
    pairs = [("drn_s", "idn", "")]
    rows = verdict(records, pairs=pairs)
    assert {(r.scale, r.training) for r in rows} == {(4, "zoo1k_cosine bf16")}
    (unequal,) = unequal_training(records, pairs=pairs)
    assert (unequal.scale, unequal.training_a, unequal.training_b) == (
        2,
        ("zoo16k bf16",),
        ("zoo1k_cosine bf16",),
    )
    assert sentence(rows, "drn_s", "idn", [unequal]) == (
        "drn_s vs idn at equal training, mean PSNR difference: x4 (zoo1k_cosine bf16) +0.50 dB "
        "(better in 1, worse in 0, unclear in 0 of 1 datasets); over all 1 dataset/scale cells "
        "drn_s is better with 95% confidence in 1, worse in 0, and the interval includes zero "
        "in 0. x2 not compared (drn_s zoo16k bf16, idn zoo1k_cosine bf16: unequal training)."
    )
    # The same recipe and length in another precision (a CPU without bf16 trains in fp32) is
    # not equal training either.
    table["idn"][4] = row("zoo1k_cosine", "i4", "fp32")
    assert {r.scale for r in verdict(records, pairs=pairs)} == set()
    assert [u.describe() for u in unequal_training(records, pairs=pairs) if u.scale == 4] == [
        "x4 not compared (drn_s zoo1k_cosine bf16, idn zoo1k_cosine fp32: unequal training)"
    ]
    table["idn"][4] = row("zoo1k_cosine", "i4")
    # `srbench compare` of two named models is not the verdict: it compares every scale.
    assert {r.scale for r in verdict(records, pairs=pairs, equal_training=False)} == {2, 4}
    # Two differently trained files under one name at one scale are never paired as one model.
    extra = _records("idn", {"a": 1.0}, weights_sha256="someone-elses", scale=4)
    (mixed,) = [u for u in unequal_training(records + extra, pairs=pairs) if u.scale == 4]
    assert mixed.training_b == ("zoo1k_cosine bf16", None)
    assert "idn zoo1k_cosine bf16 and weights srbench did not train" in mixed.describe()
    assert {r.scale for r in verdict(records + extra, pairs=pairs)} == set()


def test_two_files_under_one_name_leave_the_verdict_standing():
    """The shipped drn_s file and a user's own (``--weights`` without ``--tag``) under one name:
    the verdict leaves drn_s out where it would pair them (saying so), and the pairs whose
    other member has no results there are simply not measured -- nothing raises."""
    from srbench.pretrained import shipped

    files = {m: shipped()[m][2]["sha256"] for m in ("drn_s", "idn")}
    records = _records("drn_s", {"a": 30.0}, weights_sha256=files["drn_s"], time_utc="1")
    records += _records("drn_s", {"b": 31.0}, weights_sha256="u" * 64, time_utc="2")
    records += _records("idn", {"a": 29.0, "b": 30.0}, weights_sha256=files["idn"])
    assert verdict(records) == []
    (skipped,) = unequal_training(records)
    assert (skipped.a, skipped.b, skipped.scale) == ("drn_s", "idn", 2)
    assert len(skipped.training_a) == 2
