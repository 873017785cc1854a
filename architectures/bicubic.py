"""Bicubic interpolation baseline (MATLAB ``imresize``-exact), registered as model ``bicubic``."""

from __future__ import annotations

from torch import Tensor, nn

from srbench.imresize import imresize_torch
from srbench.registry import ModelCard, PublishedResult, register_model

_SRC_VDSR = "Kim et al., CVPR 2016 (VDSR paper), Table 3"
_SRC_LATER = "later (LapSRN-era) tables, as collected in docs/PUBLISHED.md"

_PUBLISHED = (
    # x2
    ("set5", 2, 33.66, 0.9299, _SRC_VDSR),
    ("set14", 2, 30.24, 0.8688, _SRC_VDSR),
    ("b100", 2, 29.56, 0.8431, _SRC_VDSR),
    ("urban100", 2, 26.88, 0.8403, _SRC_VDSR),
    ("manga109", 2, 30.80, 0.9339, _SRC_LATER),
    # x3
    ("set5", 3, 30.39, 0.8682, _SRC_VDSR),
    ("set14", 3, 27.55, 0.7742, _SRC_VDSR),
    ("b100", 3, 27.21, 0.7385, _SRC_VDSR),
    ("urban100", 3, 24.46, 0.7349, _SRC_VDSR),
    ("manga109", 3, 26.95, 0.8565, _SRC_LATER),
    # x4
    ("set5", 4, 28.42, 0.8104, _SRC_VDSR),
    ("set14", 4, 26.00, 0.7027, _SRC_VDSR),
    ("b100", 4, 25.96, 0.6675, _SRC_VDSR),
    ("urban100", 4, 23.14, 0.6577, _SRC_VDSR),
    ("manga109", 4, 24.89, 0.7866, _SRC_LATER),
)


class Bicubic(nn.Module):
    """Upsample every channel with MATLAB-exact bicubic interpolation (no parameters)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return imresize_torch(x, float(self.scale))

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


@register_model(
    ModelCard(
        name="bicubic",
        family="bicubic",
        paper=(
            "R. G. Keys, 'Cubic Convolution Interpolation for Digital Image Processing', "
            "IEEE Trans. Acoustics, Speech, and Signal Processing 29(6):1153-1160, 1981 "
            "(as implemented by MATLAB imresize: a = -0.5, antialiased when shrinking)"
        ),
        year=1981,
        scales=(2, 3, 4),
        input_channels="any",
        pre_upsampled=False,
        licence="not applicable (classical interpolation; srbench's own port of MATLAB imresize)",
        published=tuple(
            PublishedResult(dataset=d, scale=s, psnr_db=p, ssim=q, protocol="legacy-y", source=src)
            for d, s, p, q, src in _PUBLISHED
        ),
        published_params={2: 0, 3: 0, 4: 0},
        notes=(
            "Works on any number of channels. The published rows are the VDSR-paper lineage and "
            "are reproduced exactly by the legacy Y-only protocol (docs/PROTOCOL.md)."
        ),
        trainable=False,
    )
)
def bicubic(scale: int, **overrides: object) -> nn.Module:
    return Bicubic(scale)
