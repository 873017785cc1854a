"""EDSR-baseline (Lim et al., CVPRW 2017): 16 residual blocks, 64 channels, pixel-shuffle upsampler.

Module names follow the authors' EDSR-PyTorch code (``head.0``, ``body.{i}.body.{0,2}``,
``body.16``, ``tail.0.{0,2}``, ``tail.1``), so an official checkpoint converts with only the
mean-shift layers checked and dropped: ``srbench weights convert edsr_baseline_x2-1bc95232.pt``
(:func:`recognise_release`, this card's ``recognise_weights``, knows the release's keys and reads
the scale from the upsampler).

Value range: srbench feeds RGB in [0, 1]; like the original (``rgb_range`` = 255), the model
multiplies by 255 internally, subtracts the DIV2K RGB mean x 255, runs the network, adds the mean
back and divides by 255. The mean is a frozen, non-persistent buffer (a constant of the
architecture, not a learned value), so it is neither trained nor stored in weights files; the
official ``MeanShift`` is a frozen 1x1 convolution with the same effect (std = 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from srbench.convert import ForeignFile, Recognised
from srbench.errors import WeightsError
from srbench.pretrained import zoo_weights
from srbench.registry import ModelCard, PublishedResult, WeightsRef, register_model

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
_RGB_RANGE = 255.0  # the release's rgb_range, and srbench's

_SRC = "Lim et al., CVPRW 2017, as reprinted by IMDN (Hui et al., ACM MM 2019), benchmark table"

_PUBLISHED = (
    ("set5", 2, 37.99, 0.9604),
    ("set14", 2, 33.57, 0.9175),
    ("b100", 2, 32.16, 0.8994),
    ("urban100", 2, 31.98, 0.9272),
    ("manga109", 2, 38.54, 0.9769),
    ("set5", 3, 34.37, 0.9270),
    ("set14", 3, 30.28, 0.8417),
    ("b100", 3, 29.09, 0.8052),
    ("urban100", 3, 28.15, 0.8527),
    ("manga109", 3, 33.45, 0.9439),
    ("set5", 4, 32.09, 0.8938),
    ("set14", 4, 28.58, 0.7813),
    ("b100", 4, 27.57, 0.7357),
    ("urban100", 4, 26.04, 0.7849),
    ("manga109", 4, 30.35, 0.9067),
)


class MeanShift(nn.Module):
    """Subtract (sign = -1) or add (sign = +1) ``rgb_range * mean``; a frozen buffer, no parameters."""

    def __init__(
        self, rgb_range: float, mean: tuple[float, ...] = DIV2K_RGB_MEAN, sign: int = -1
    ) -> None:
        super().__init__()
        shift = sign * rgb_range * torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.shift.to(x.dtype)  # type: ignore[operator]  # code_sha256 covers this code: no annotation edits


class ResBlock(nn.Module):
    """``x + res_scale * conv(act(conv(x)))`` (``body.0``, ``body.1`` = act, ``body.2``)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0, act: nn.Module | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            act if act is not None else nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x)
        if self.res_scale != 1:
            res = res * self.res_scale
        return x + res


class Upsampler(nn.Sequential):
    """Sub-pixel upsampler (ESPCN): x2 and x4 as one or two (conv 4n, shuffle 2) stages; x3 as
    (conv 9n, shuffle 3)."""

    def __init__(self, scale: int, n_feats: int) -> None:
        layers: list[nn.Module] = []
        if scale in (2, 4, 8):
            for _ in range({2: 1, 4: 2, 8: 3}[scale]):
                layers += [nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(n_feats, 9 * n_feats, 3, padding=1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"pixel-shuffle upsampler supports x2, x3, x4, x8, not x{scale}")
        super().__init__(*layers)


class EDSR(nn.Module):
    def __init__(
        self,
        scale: int,
        *,
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        n_colors: int = 3,
        rgb_range: float = _RGB_RANGE,
        rgb_mean: tuple[float, ...] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, rgb_mean, sign=-1)
        self.add_mean = MeanShift(rgb_range, rgb_mean, sign=+1)
        self.head = nn.Sequential(nn.Conv2d(n_colors, n_feats, 3, padding=1))
        self.body = nn.Sequential(
            *[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.tail = nn.Sequential(
            Upsampler(scale, n_feats), nn.Conv2d(n_feats, n_colors, 3, padding=1)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.sub_mean(x * self.rgb_range)
        x = self.head(x)
        x = x + self.body(x)
        x = self.tail(x)
        return self.add_mean(x) / self.rgb_range


# The EDSR-PyTorch release (sanghyun-son/EDSR-PyTorch, MIT). Only the 8-hex sha256 prefix in
# each file name is public (as torch.hub checks it); the converted file's sha256 cannot be
# pinned until someone converts the real file, so it is left empty (not checked on load).
_RELEASE = "https://cv.snu.ac.kr/research/EDSR/models"
_OFFICIAL = {
    s: WeightsRef(
        filename=f"edsr_baseline_x{s}.safetensors",
        sha256="",
        source=f"EDSR-PyTorch release edsr_baseline_x{s}-{prefix}.pt (the authors', DIV2K-trained)",
        url=f"{_RELEASE}/edsr_baseline_x{s}-{prefix}.pt",
        download_sha256=prefix,
    )
    for s, prefix in ((2, "1bc95232"), (3, "abf2a44e"), (4, "6b446fab"))
}

_RELEASE_KEYS = ("head.0.weight", "body.0.body.0.weight", "tail.0.0.weight")


def recognise_release(foreign: ForeignFile) -> Recognised | None:
    """An EDSR-PyTorch checkpoint, by its key names (srbench's): the scale from the upsampler
    (x4: two x2 pixel-shuffle stages, tail.0.0 and tail.0.2; x2/x3: one of 4/9 x n_feats
    channels); the frozen MeanShift 1x1 convolutions (``sub_mean``, ``add_mean``) are dropped
    after checking they hold the DIV2K mean this module builds in (a checkpoint made with another
    mean would silently shift every output) and the identity (rgb_std 1)."""
    tensors = foreign.tensors
    if not all(key in tensors for key in _RELEASE_KEYS):
        return None
    if "tail.0.2.weight" in tensors:
        scale: int | None = 4
    else:
        ratio = tensors["tail.0.0.weight"].shape[0] // tensors["head.0.weight"].shape[0]
        scale = {4: 2, 9: 3}.get(ratio)
    mean = _RGB_RANGE * torch.tensor(DIV2K_RGB_MEAN)
    for key, want in (("sub_mean.bias", -mean), ("add_mean.bias", mean)):
        got = tensors.get(key)
        if got is not None and not torch.allclose(got.float().reshape(-1), want, atol=1e-3):
            raise WeightsError(
                f"{foreign.path}: {key} is {got.reshape(-1).tolist()}, not the DIV2K mean shift "
                f"{want.tolist()} srbench's EDSR uses; these are not EDSR-PyTorch weights for "
                "rgb_range 255"
            )
    for key in ("sub_mean.weight", "add_mean.weight"):
        got = tensors.get(key)
        if got is not None and not torch.allclose(got.float().reshape(3, 3), torch.eye(3)):
            raise WeightsError(
                f"{foreign.path}: {key} is not the identity (rgb_std 1) srbench assumes"
            )
    kept = {k: v for k, v in tensors.items() if not k.startswith(("sub_mean.", "add_mean."))}
    return Recognised("edsr_baseline", scale, kept)


@register_model(
    ModelCard(
        name="edsr_baseline",
        family="edsr",
        paper=(
            "B. Lim, S. Son, H. Kim, S. Nah, K. M. Lee, 'Enhanced Deep Residual Networks for Single "
            "Image Super-Resolution', CVPR Workshops (NTIRE) 2017, pp. 136-144 (arXiv:1707.02921)"
        ),
        year=2017,
        scales=(2, 3, 4),
        input_channels="rgb",
        pre_upsampled=False,
        licence="MIT (official code sanghyun-son/EDSR-PyTorch)",
        published=tuple(
            PublishedResult(dataset=d, scale=s, psnr_db=p, ssim=q, protocol="standard", source=_SRC)
            for d, s, p, q in _PUBLISHED
        ),
        published_params={2: 1_369_859, 3: 1_554_499, 4: 1_517_571},
        aliases=("edsr",),
        options=("n_resblocks", "n_feats", "res_scale", "rgb_mean"),
        official_weights=_OFFICIAL,
        recognise_weights=recognise_release,
        weights=zoo_weights("edsr_baseline"),
        assumptions=(
            "Input/output RGB in [0, 1]; scaled to [0, 255] internally (the original's rgb_range "
            "255), so official weights apply unchanged.",
            "DIV2K RGB mean (0.4488, 0.4371, 0.4040) x 255 as a frozen non-persistent buffer "
            "(the original's frozen MeanShift convolution; excluded from parameter counts and "
            "weights files).",
        ),
        notes=(
            "16 residual blocks, 64 channels, res_scale 1, no batch norm, ReLU; x4 = two x2 "
            "pixel-shuffle stages. Trained on DIV2K (RGB) by the authors."
        ),
    )
)
def edsr_baseline(scale: int, **overrides: object) -> nn.Module:
    return EDSR(scale, **overrides)  # type: ignore[arg-type]
