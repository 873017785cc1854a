"""ITU-R BT.601 studio-range colour conversions, as MATLAB's ``rgb2ycbcr`` defines them.

Conventions: RGB values are in [0, 255] (uint8 or float), channel order R, G, B, channel axis last
for numpy arrays and at dim -3 for tensors (N, 3, H, W). Y lies in [16, 235], Cb/Cr in [16, 240].
"""

from __future__ import annotations

import numpy as np
import torch

# Rows: Y, Cb, Cr; columns: R, G, B (for RGB in [0, 1]; outputs in [0, 255] before the offset).
BT601_MATRIX = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
)
BT601_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
BT601_INVERSE = np.linalg.inv(BT601_MATRIX)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Float BT.601 Y of an H x W x 3 RGB image in [0, 255] (no rounding), float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return BT601_OFFSET[0] + rgb @ BT601_MATRIX[0] / 255.0


def rgb_to_y_uint8(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` on uint8 RGB, channel Y: rounded half away from zero to uint8."""
    return matlab_round_uint8(rgb_to_y(rgb))


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Float BT.601 Y, Cb, Cr of an H x W x 3 RGB image in [0, 255], float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb @ BT601_MATRIX.T / 255.0 + BT601_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`: float RGB in [0, 255] (not clipped), float64."""
    ycbcr = np.asarray(ycbcr, dtype=np.float64)
    return (ycbcr - BT601_OFFSET) @ BT601_INVERSE.T * 255.0


def matlab_round_uint8(values: np.ndarray) -> np.ndarray:
    """MATLAB's double-to-uint8 conversion: round half away from zero, saturate to [0, 255]."""
    # Negative values saturate to 0 whichever way they round, so round-half-away-from-zero then
    # saturate is floor(v + 0.5) then saturate: identical results, one temporary instead of four.
    rounded = np.add(values, 0.5, dtype=np.float64)
    np.floor(rounded, out=rounded)
    np.clip(rounded, 0, 255, out=rounded)
    return rounded.astype(np.uint8)


def rgb_to_y_torch(rgb: torch.Tensor) -> torch.Tensor:
    """Float BT.601 Y of (..., 3, H, W) RGB in [0, 255]; returns (..., 1, H, W)."""
    weights = torch.as_tensor(BT601_MATRIX[0] / 255.0, dtype=rgb.dtype, device=rgb.device)
    return BT601_OFFSET[0] + torch.einsum("...chw,c->...hw", rgb, weights).unsqueeze(-3)
