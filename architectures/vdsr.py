"""VDSR (Kim et al., CVPR 2016): 20 3x3 convolutions predicting the residual of bicubic-upsampled Y.

Layer names ``conv1`` ... ``conv20`` match the official weights (``vdsr_official.npz``, converted from
the authors' ``VDSR_Official.mat``, which :func:`recognise_mat` knows), so they load without any
key mapping. One network serves
x2, x3 and x4 (the authors trained a single multi-scale model), so its weights file is declared
for all three scales.
"""

from __future__ import annotations

from torch import Tensor, nn

from srbench.convert import ForeignFile, Recognised
from srbench.imresize import imresize_torch
from srbench.pretrained import zoo_weights
from srbench.registry import ModelCard, PublishedResult, WeightsRef, register_model

_SRC_VDSR = "Kim et al., CVPR 2016 (VDSR paper), Table 3"
_SRC_LATER = "later (LapSRN-era) tables, as collected in docs/PUBLISHED.md"

_PUBLISHED = (
    ("set5", 2, 37.53, 0.9587, _SRC_VDSR),
    ("set14", 2, 33.03, 0.9124, _SRC_VDSR),
    ("b100", 2, 31.90, 0.8960, _SRC_VDSR),
    ("urban100", 2, 30.76, 0.9140, _SRC_VDSR),
    ("manga109", 2, 37.22, 0.9750, _SRC_LATER),
    ("set5", 3, 33.66, 0.9213, _SRC_VDSR),
    ("set14", 3, 29.77, 0.8314, _SRC_VDSR),
    ("b100", 3, 28.82, 0.7976, _SRC_VDSR),
    ("urban100", 3, 27.14, 0.8279, _SRC_VDSR),
    ("manga109", 3, 32.01, 0.9340, _SRC_LATER),
    ("set5", 4, 31.35, 0.8838, _SRC_VDSR),
    ("set14", 4, 28.01, 0.7674, _SRC_VDSR),
    ("b100", 4, 27.29, 0.7251, _SRC_VDSR),
    ("urban100", 4, 25.18, 0.7524, _SRC_VDSR),
    ("manga109", 4, 28.83, 0.8870, _SRC_LATER),
)

# sha256 of the safetensors file `srbench weights convert` writes from the official npz
# (srbench.convert: from the .mat or its .npz copy; the output is byte-for-byte deterministic).
WEIGHTS_FILENAME = "vdsr.safetensors"
WEIGHTS_SHA256 = "5466c0383d122183b0aba7701e1605b1852dc5016d723311d1b40dbfc5326887"
_WEIGHTS = WeightsRef(
    filename=WEIGHTS_FILENAME,
    sha256=WEIGHTS_SHA256,
    source=(
        "VDSR authors' official test model (Kim et al.), via huangzehao/caffe-vdsr (MIT) "
        "Test/VDSR_Official.mat; one model for x2/x3/x4"
    ),
    url="https://github.com/huangzehao/caffe-vdsr/raw/master/Test/VDSR_Official.mat",
    download_sha256="f613166660840af1a2ca47e31b0337b951e7c4e094364f6135a16d81a55c323c",
)


_MAT_KEYS = {f"conv{i}.{kind}" for i in range(1, 21) for kind in ("weight", "bias")}


def recognise_mat(foreign: ForeignFile) -> Recognised | None:
    """The authors' ``VDSR_Official.mat``: twenty convolutions in MatConvNet's ``model`` struct,
    read as ``conv1`` ... ``conv20`` (srbench's module names); one file for every scale, so the
    file declares none."""
    if foreign.format != "mat" or set(foreign.tensors) != _MAT_KEYS:
        return None
    return Recognised("vdsr", None, dict(foreign.tensors))


class VDSR(nn.Module):
    """``conv1`` (1->64) + 18 x (64->64) + ``conv20`` (64->1), ReLU after conv1..conv19;
    output = bicubic(x) + net(bicubic(x))."""

    def __init__(
        self, scale: int, *, depth: int = 20, n_feats: int = 64, in_channels: int = 1
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"VDSR depth must be at least 2, got {depth}")
        self.scale = scale
        self.depth = depth
        for i in range(1, depth + 1):
            cin = in_channels if i == 1 else n_feats
            cout = in_channels if i == depth else n_feats
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            # He et al. (2015) initialisation, as in the paper; zero biases.
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # always has a bias
            self.add_module(f"conv{i}", conv)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        up = imresize_torch(x, float(self.scale))
        h = up
        for i in range(1, self.depth):
            h = self.relu(getattr(self, f"conv{i}")(h))
        return up + getattr(self, f"conv{self.depth}")(h)


@register_model(
    ModelCard(
        name="vdsr",
        family="vdsr",
        paper=(
            "J. Kim, J. K. Lee, K. M. Lee, 'Accurate Image Super-Resolution Using Very Deep "
            "Convolutional Networks', CVPR 2016, pp. 1646-1654"
        ),
        year=2016,
        scales=(2, 3, 4),
        input_channels="y",
        pre_upsampled=True,
        licence=(
            "unknown for the authors' MATLAB code (no licence stated); the weights come through "
            "huangzehao/caffe-vdsr, which is MIT-licensed"
        ),
        published=tuple(
            PublishedResult(dataset=d, scale=s, psnr_db=p, ssim=q, protocol="legacy-y", source=src)
            for d, s, p, q, src in _PUBLISHED
        ),
        published_params={2: 665_921, 3: 665_921, 4: 665_921},
        official_weights={2: _WEIGHTS, 3: _WEIGHTS, 4: _WEIGHTS},
        recognise_weights=recognise_mat,
        options=("depth", "n_feats"),
        weights=zoo_weights("vdsr"),
        notes=(
            "Single multi-scale model; the official weights reproduce the published Set5 values "
            "within 0.01 dB under the legacy-y protocol."
        ),
    )
)
def vdsr(scale: int, **overrides: object) -> nn.Module:
    return VDSR(scale, **overrides)  # type: ignore[arg-type]
