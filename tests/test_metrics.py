"""PSNR/SSIM known answers and a cross-check against scikit-image configured identically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from srbench.color import matlab_round_uint8, rgb_to_y, rgb_to_y_torch, rgb_to_y_uint8
from srbench.metrics import mean_psnr, psnr, ssim


def test_identical_images():
    img = torch.rand(2, 1, 32, 40, dtype=torch.float64) * 255
    assert torch.isinf(psnr(img, img)).all()
    assert torch.allclose(ssim(img, img), torch.ones(2, dtype=torch.float64))


def test_constant_offset():
    hr = torch.full((1, 1, 20, 20), 100.0)
    sr = hr + 5
    # MSE = 25 -> PSNR = 10 log10(255^2 / 25) = 20 log10(51)
    assert psnr(sr, hr).item() == pytest.approx(20 * math.log10(51), abs=1e-12)


def test_hand_computed_case_with_crop():
    hr = torch.zeros(8, 8, dtype=torch.float64)
    sr = hr.clone()
    sr[0, :] = 255  # only the top row is wrong: a 1-pixel crop removes it
    sr[4, 4] = 10  # one interior pixel off by 10 in the 6x6 cropped region
    assert psnr(sr, hr, crop=1).item() == pytest.approx(10 * math.log10(255**2 / (100 / 36)))
    assert psnr(sr, hr).item() == pytest.approx(10 * math.log10(255**2 / ((8 * 255**2 + 100) / 64)))


def test_ssim_constant_images_known_answer():
    # Two constant images a, b: sigma terms vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 100.0, 120.0
    c1 = (0.01 * 255) ** 2
    want = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(torch.full((16, 16), a), torch.full((16, 16), b)).item()
    assert got == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_scikit_image_gaussian(seed):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, size=(61, 47)).astype(np.float64)
    sr = np.clip(hr + rng.normal(0, 12, size=hr.shape), 0, 255).round()
    want = structural_similarity(
        sr, hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    got = ssim(torch.from_numpy(sr), torch.from_numpy(hr)).item()
    assert got == pytest.approx(want, abs=1e-6)


def test_batched_equals_per_image_and_dtype_independent():
    rng = np.random.default_rng(3)
    hr = torch.from_numpy(rng.uniform(0, 255, size=(3, 1, 30, 30)))
    sr = (hr + torch.from_numpy(rng.normal(0, 3, size=hr.shape))).clamp(0, 255)
    batched = ssim(sr, hr, crop=2)
    single = torch.stack([ssim(sr[i], hr[i], crop=2)[0] for i in range(3)])
    assert torch.allclose(batched, single, atol=0, rtol=0)
    # float32 input is computed in float64 after conversion
    assert ssim(sr.float(), hr.float(), crop=2).dtype == torch.float64


@pytest.mark.parametrize("shape", [(1, 1, 150, 97), (2, 3, 76, 40), (1, 1, 11, 11)])
def test_ssim_in_strips_is_bit_identical_to_whole_image(monkeypatch, shape):
    """The strip-wise filtering gives exactly the values of one pass over the whole image
    (strip boundaries, a last partial strip, several images and channels)."""
    import srbench.metrics as metrics

    rng = np.random.default_rng(7)
    hr = torch.from_numpy(rng.integers(0, 256, size=shape).astype(np.float64))
    sr = (hr + torch.from_numpy(rng.normal(0, 9, size=shape))).clamp(0, 255).round()
    strips = ssim(sr, hr, crop=0)
    monkeypatch.setattr(metrics, "SSIM_STRIP_ROWS", 10**6)  # one strip: the whole image
    whole = ssim(sr, hr, crop=0)
    monkeypatch.setattr(metrics, "SSIM_STRIP_ROWS", 7)
    assert torch.equal(strips, whole)
    assert torch.equal(ssim(sr, hr, crop=0), whole)


@pytest.mark.parametrize("shape", [(1, 1, 484, 338), (1, 1, 348, 362), (2, 3, 167, 305)])
def test_psnr_and_ssim_do_not_depend_on_the_thread_count(shape):
    """The adaptive thread policy sets torch's thread count from the machine's load; a plain
    torch mean split over threads changed SSIM's last bits with it (CI saw 0.8752613180246052
    and 0.875261318024605 for one image). The first two shapes did under the old mean at 1 vs 3 threads."""
    from srbench.threads import restored_threads

    rng = np.random.default_rng(11)
    hr = torch.from_numpy(rng.integers(0, 256, size=shape).astype(np.float64))
    sr = (hr + torch.from_numpy(rng.normal(0, 6, size=shape))).clamp(0, 255).round()
    values = []
    with restored_threads():
        for threads in (1, 2, 3, 4):
            torch.set_num_threads(threads)
            values.append((psnr(sr, hr, crop=2).tolist(), ssim(sr, hr, crop=2).tolist()))
    assert all(v == values[0] for v in values[1:])


def test_shape_mismatch_and_too_small():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(torch.zeros(4, 4), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="too small"):
        psnr(torch.zeros(4, 4), torch.zeros(4, 4), crop=2)
    with pytest.raises(ValueError, match="SSIM window"):
        ssim(torch.zeros(10, 30), torch.zeros(10, 30))


def test_mean_psnr_rejects_infinite():
    assert mean_psnr([30.0, 32.0]) == 31.0
    with pytest.raises(ValueError, match="infinite"):
        mean_psnr([30.0, float("inf")])


def test_bt601_y_known_values():
    white = np.full((1, 1, 3), 255, np.uint8)
    black = np.zeros((1, 1, 3), np.uint8)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    # pure red: 16 + 65.481 = 81.481 -> MATLAB rounds to 81
    red = np.array([[[255, 0, 0]]], np.uint8)
    assert rgb_to_y(red)[0, 0] == pytest.approx(81.481)
    assert rgb_to_y_uint8(red)[0, 0] == 81
    t = torch.tensor([255.0, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert rgb_to_y_torch(t).item() == pytest.approx(81.481)


def test_matlab_rounding_is_half_away_from_zero():
    assert matlab_round_uint8(np.array([0.5, 1.5, 2.5, 254.5, 255.7, -3.0])).tolist() == [
        1,
        2,
        3,
        255,
        255,
        0,
    ]
