"""SRCNN (Dong et al.): three convolutions on the bicubic-upsampled Y channel.

Registered models: ``srcnn`` (9-5-5, 64/32 filters, 57,281 parameters; the TPAMI 2016 model whose
numbers the VDSR paper reprints) and ``srcnn_915`` (9-1-5, 8,129 parameters; the ECCV 2014 base
model).

Difference from the original: the authors' networks use *valid* convolutions, so their output is
smaller than the input -- by (9-1)+(5-1)+(5-1) = 16 pixels (8 per side) for 9-5-5 and by
(9-1)+(1-1)+(5-1) = 12 pixels (6 per side) for 9-1-5 -- and their evaluation compares only that
central region. Here every convolution is zero-padded (padding = kernel // 2) so the output has the same
size as the bicubic-upsampled input, as the srbench model contract requires; border pixels are
therefore produced from zero-padded context, which the original never scored.
"""

from __future__ import annotations

from torch import Tensor, nn

from srbench.imresize import imresize_torch
from srbench.pretrained import zoo_weights
from srbench.registry import ModelCard, PublishedResult, register_model

_SRC_VDSR = "Kim et al., CVPR 2016 (VDSR paper), Table 3"
_SRC_LATER = "later (LapSRN-era) tables, as collected in docs/PUBLISHED.md"

_PUBLISHED_955 = (
    ("set5", 2, 36.66, 0.9542, _SRC_VDSR),
    ("set14", 2, 32.42, 0.9063, _SRC_VDSR),
    ("b100", 2, 31.36, 0.8879, _SRC_VDSR),
    ("urban100", 2, 29.50, 0.8946, _SRC_VDSR),
    ("manga109", 2, 35.60, 0.9663, _SRC_LATER),
    ("set5", 3, 32.75, 0.9090, _SRC_VDSR),
    ("set14", 3, 29.28, 0.8209, _SRC_VDSR),
    ("b100", 3, 28.41, 0.7863, _SRC_VDSR),
    ("urban100", 3, 26.24, 0.7989, _SRC_VDSR),
    ("manga109", 3, 30.48, 0.9117, _SRC_LATER),
    ("set5", 4, 30.48, 0.8628, _SRC_VDSR),
    ("set14", 4, 27.49, 0.7503, _SRC_VDSR),
    ("b100", 4, 26.90, 0.7101, _SRC_VDSR),
    ("urban100", 4, 24.52, 0.7221, _SRC_VDSR),
    ("manga109", 4, 27.58, 0.8555, _SRC_LATER),
)

_PAPER_TPAMI = (
    "C. Dong, C. C. Loy, K. He, X. Tang, 'Image Super-Resolution Using Deep Convolutional "
    "Networks', IEEE Trans. Pattern Analysis and Machine Intelligence 38(2):295-307, 2016 "
    "(arXiv:1501.00092)"
)
_PAPER_ECCV = (
    "C. Dong, C. C. Loy, K. He, X. Tang, 'Learning a Deep Convolutional Network for Image "
    "Super-Resolution', ECCV 2014, LNCS 8692, pp. 184-199"
)
_LICENCE = (
    "unknown (the authors' MATLAB/Caffe code is distributed from their project page without a "
    "licence file)"
)
_PADDING_NOTE = (
    "The original uses valid (unpadded) convolutions and scores only the central region; srbench "
    "zero-pads every convolution (padding = k // 2) so the output size equals the input size."
)


class SRCNN(nn.Module):
    """``conv1`` (f1 x f1, n1) -> ReLU -> ``conv2`` (f2 x f2, n2) -> ReLU -> ``conv3`` (f3 x f3, 1).

    Input: LR Y (N, 1, h, w) in [0, 1]; it is bicubic-upsampled inside ``forward``.
    """

    def __init__(
        self,
        scale: int,
        *,
        kernel_sizes: tuple[int, int, int] = (9, 5, 5),
        filters: tuple[int, int] = (64, 32),
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        f1, f2, f3 = kernel_sizes
        n1, n2 = filters
        self.scale = scale
        self.conv1 = nn.Conv2d(in_channels, n1, f1, padding=f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.conv3 = nn.Conv2d(n2, in_channels, f3, padding=f3 // 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = imresize_torch(x, float(self.scale))
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.conv3(x)


@register_model(
    ModelCard(
        name="srcnn",
        family="srcnn",
        paper=_PAPER_TPAMI,
        year=2016,
        scales=(2, 3, 4),
        input_channels="y",
        pre_upsampled=True,
        licence=_LICENCE,
        published=tuple(
            PublishedResult(dataset=d, scale=s, psnr_db=p, ssim=q, protocol="legacy-y", source=src)
            for d, s, p, q, src in _PUBLISHED_955
        ),
        published_params={2: 57_281, 3: 57_281, 4: 57_281},
        weights=zoo_weights("srcnn"),
        options=("kernel_sizes", "filters"),
        assumptions=(_PADDING_NOTE,),
        notes=(
            "9-5-5 with 64/32 filters. Published numbers: the VDSR-paper lineage of SRCNN results "
            "(another lineage circulates, e.g. Set14 x2 32.45 in LapSRN-era tables)."
        ),
    )
)
def srcnn(scale: int, **overrides: object) -> nn.Module:
    return SRCNN(scale, **overrides)  # type: ignore[arg-type]


@register_model(
    ModelCard(
        name="srcnn_915",
        family="srcnn",
        paper=_PAPER_ECCV,
        year=2014,
        scales=(2, 3, 4),
        input_channels="y",
        pre_upsampled=True,
        licence=_LICENCE,
        published_params={2: 8_129, 3: 8_129, 4: 8_129},
        options=("filters",),
        assumptions=(_PADDING_NOTE,),
        notes=(
            "9-1-5 with 64/32 filters (the ECCV 2014 base network). No published rows are attached: "
            "the SRCNN rows in docs/PUBLISHED.md belong to the 9-5-5 model."
        ),
    )
)
def srcnn_915(scale: int, **overrides: object) -> nn.Module:
    return SRCNN(scale, kernel_sizes=(9, 1, 5), **overrides)  # type: ignore[arg-type]
