"""The protocols reproduce the published Bicubic rows (PUBLISHED.md, VDSR-paper lineage)."""

from __future__ import annotations

import numpy as np
import pytest

from srbench.protocols import LEGACY_Y, STANDARD, get_protocol
from srbench.results import summarise
from srbench.runner import RunConfig, run
from srbench.sources import benchmark_source

# Published Bicubic PSNR/SSIM (VDSR paper, CVPR 2016), measured with the legacy Y-only pipeline.
PUBLISHED_BICUBIC = {
    ("set5", 2): (33.66, 0.9299),
    ("set5", 3): (30.39, 0.8682),
    ("set5", 4): (28.42, 0.8104),
    ("set14", 2): (30.24, 0.8688),
    ("set14", 3): (27.55, 0.7742),
    ("set14", 4): (26.00, 0.7027),
    ("b100", 2): (29.56, 0.8431),
    ("b100", 3): (27.21, 0.7385),
    ("b100", 4): (25.96, 0.6675),
}
# Set14 gets a wider band: its single-channel `bridge` was handled by the original MATLAB code
# in a way no script documents (raw values vs replicated RGB move Set14 by ~0.1 dB), and with the
# raw handling the printed values are off by up to 0.007 dB / 0.0008 SSIM -- the last hundredth
# is not reachable with any one documented choice.
TOLERANCE = {"set14": (0.02, 0.001)}
DEFAULT_TOLERANCE = (0.01, 0.0005)


def _bicubic_summary(data_root, tmp_path_factory, protocol: str, datasets, scales):
    config = RunConfig(
        models=["bicubic"],
        datasets=datasets,
        scales=scales,
        protocol=protocol,
        results_dir=tmp_path_factory.mktemp(f"results-{protocol}"),
    )
    records = run(config, [benchmark_source(k, data_root) for k in datasets])
    import pandas as pd

    summary = summarise(pd.DataFrame(records))
    return {(r.dataset, r.scale): (r.psnr_db, r.ssim, r.images) for r in summary.itertuples()}


@pytest.fixture(scope="module")
def legacy_bicubic(data_root, tmp_path_factory):
    return _bicubic_summary(
        data_root, tmp_path_factory, "legacy-y", ["set5", "set14", "b100"], [2, 3, 4]
    )


@pytest.fixture(scope="module")
def standard_bicubic_set5(data_root, tmp_path_factory):
    return _bicubic_summary(data_root, tmp_path_factory, "standard", ["set5"], [2, 3, 4])


@pytest.mark.data
@pytest.mark.parametrize(("dataset", "scale"), sorted(PUBLISHED_BICUBIC))
def test_legacy_bicubic_reproduces_published_rows(legacy_bicubic, dataset, scale):
    psnr_db, ssim, images = legacy_bicubic[(dataset, scale)]
    want_psnr, want_ssim = PUBLISHED_BICUBIC[(dataset, scale)]
    tol_psnr, tol_ssim = TOLERANCE.get(dataset, DEFAULT_TOLERANCE)
    assert images == {"set5": 5, "set14": 14, "b100": 100}[dataset]
    assert psnr_db == pytest.approx(want_psnr, abs=tol_psnr)
    assert ssim == pytest.approx(want_ssim, abs=tol_ssim)


@pytest.mark.data
def test_standard_bicubic_set5_x2(standard_bicubic_set5, legacy_bicubic, capsys):
    standard = standard_bicubic_set5[("set5", 2)]
    legacy = legacy_bicubic[("set5", 2)]
    with capsys.disabled():
        print("\nBicubic Set5 (PSNR dB / SSIM)   standard        legacy-y")
        for scale in (2, 3, 4):
            s, lg = standard_bicubic_set5[("set5", scale)], legacy_bicubic[("set5", scale)]
            print(
                f"  x{scale}                          {s[0]:.3f}/{s[1]:.4f}  {lg[0]:.3f}/{lg[1]:.4f}"
            )
    assert standard[0] == pytest.approx(33.67, abs=0.01)
    assert standard[1] == pytest.approx(0.9303, abs=0.0005)  # PROTOCOL.md: "~33.67/0.9303"
    # The two pipelines differ measurably: they must never be mixed.
    assert abs(standard[0] - legacy[0]) > 0.005


def test_protocol_ids_and_hashes_are_stable():
    assert get_protocol("standard") is STANDARD
    assert get_protocol("legacy-y") is LEGACY_Y
    assert STANDARD.hash != LEGACY_Y.hash
    # The hash is a function of the definition: pinned so that an edit to a protocol is noticed
    # (bump the protocol's version when you change it, then update these).
    assert STANDARD.hash == "a95cb9a01078"
    assert LEGACY_Y.hash == "961c678e66d7"
    assert STANDARD.label == "standard@a95cb9a01078"


def test_unknown_protocol():
    from srbench.errors import SRBenchError

    with pytest.raises(SRBenchError, match="choose from standard, legacy-y"):
        get_protocol("y-only")


def test_standard_rgb_scoring_equals_rounding_the_transposed_output():
    from srbench.color import matlab_round_uint8, rgb_to_y
    from srbench.protocols import STANDARD

    rng = np.random.default_rng(0)
    for shape in [(3, 37, 53), (3, 2, 7), (3, 120, 90)]:
        out = rng.normal(0.5, 0.6, shape)  # overshoots both ends, as models do
        out.flat[:5] = [0.5 / 255, 1.5 / 255, -0.5 / 255, 254.5 / 255, 255.5 / 255]  # ties
        old = matlab_round_uint8(out.transpose(1, 2, 0) * 255.0)  # the former formulation
        sr_image, sr_y = STANDARD.score(out, None)  # type: ignore[arg-type]
        assert sr_image.dtype == np.uint8 and np.array_equal(sr_image, old)
        assert sr_image.strides == old.strides  # same memory layout: the Y below is bit-equal
        assert np.array_equal(sr_y, rgb_to_y(old))
