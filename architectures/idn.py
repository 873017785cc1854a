"""IDN (Hui et al., CVPR 2018): information distillation network on the Y channel.

Structure and layer names follow the official Caffe model exactly (see
shared/reference-weights/README.md), so the converted official weights load without key mapping
(:func:`recognise_caffemodel`, this card's ``recognise_weights``, knows the authors' file):

* ``conv1`` (1->64), ``conv2`` (64->64): feature extraction, LeakyReLU(0.05) after each.
* Four distillation blocks, k = 3..6, every convolution 3x3 with padding 1 and LeakyReLU(0.05):
  upper path ``conv{k}_1`` (64->48) -> ``conv{k}_2`` (48->32, groups 4) -> ``conv{k}_3`` (32->64);
  the 64 channels are split into the first 16 and the last 48; lower path on the last 48:
  ``conv{k}_4`` (48->64) -> ``conv{k}_5`` (64->48, groups 4) -> ``conv{k}_6`` (48->80);
  ``down{k-2}`` (1x1, 80->64) on ``cat(block_input, first16) + lower``, then LeakyReLU(0.05).
* ``upsample``: ConvTranspose2d(64, 1, 17, stride=scale), no activation, added to the
  bicubic-upsampled LR. The Caffe model uses padding 8 and crops the bicubic image by ``scale - 1``
  pixels top-left; the identical full-size result comes from padding ``9 - scale`` and keeping the
  first ``h*scale x w*scale`` pixels, which is what is done here.

552,769 parameters at every scale (only the transposed convolution's stride and padding change).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srbench.convert import ForeignFile, Recognised
from srbench.imresize import imresize_torch
from srbench.pretrained import zoo_weights
from srbench.registry import ModelCard, PublishedResult, WeightsRef, register_model

_SRC_IDN = "Hui et al., CVPR 2018 (IDN paper), benchmark table"
_SRC_IMDN = "Hui et al., ACM MM 2019 (IMDN paper), benchmark table, IDN row"

_PUBLISHED = (
    ("set5", 2, 37.83, 0.9600, _SRC_IDN),
    ("set14", 2, 33.30, 0.9148, _SRC_IDN),
    ("b100", 2, 32.08, 0.8985, _SRC_IDN),
    ("urban100", 2, 31.27, 0.9196, _SRC_IDN),
    ("manga109", 2, 38.01, 0.9749, _SRC_IMDN),
    ("set5", 3, 34.11, 0.9253, _SRC_IDN),
    ("set14", 3, 29.99, 0.8354, _SRC_IDN),
    ("b100", 3, 28.95, 0.8013, _SRC_IDN),
    ("urban100", 3, 27.42, 0.8359, _SRC_IDN),
    ("manga109", 3, 32.71, 0.9381, _SRC_IMDN),
    ("set5", 4, 31.82, 0.8903, _SRC_IDN),
    ("set14", 4, 28.25, 0.7730, _SRC_IDN),
    ("b100", 4, 27.41, 0.7297, _SRC_IDN),
    ("urban100", 4, 25.41, 0.7632, _SRC_IDN),
    ("manga109", 4, 29.41, 0.8942, _SRC_IMDN),
)

# sha256 of the safetensors files `srbench weights convert` writes from the official npz files
# (srbench.convert: from the .caffemodel or its .npz copy; the output is byte-for-byte
# deterministic).
WEIGHTS_SHA256 = {
    2: "d8d81531ad4cde9b59302b9a64ef6167253248d7ee9c9f287da7c9f277663da4",
    3: "0c4b9a9a18616b19abdb6cffed8afe567321c406a9d4255258da1c226aef26ac",
    4: "88152a3496c01bb9ad19f744fa21d4286df0f4fc5ebba8662f80bc418fee8860",
}
# sha256 of the authors' original files as published (what `srbench weights fetch` checks).
DOWNLOAD_SHA256 = {
    2: "eed047c60c2af108140e14a1ebcd78701c5645837c35c740419ab3533db26b99",
    3: "ef94a2760f3975876021b6be884f27c491e445937934be0339d5711cf1afa1af",
    4: "1be49ba811d6d3f2fd61bbaa345e4a5a70746bb24f723b734dc8af9c817b96c2",
}
_WEIGHTS = {
    s: WeightsRef(
        filename=f"idn_x{s}.safetensors",
        sha256=sha,
        source=(
            f"Zheng222/IDN-Caffe test/caffemodel/IDN_x{s}.caffemodel (the authors' model, trained "
            "on the 291 images; repository without a licence file, so not redistributed)"
        ),
        url=f"https://github.com/Zheng222/IDN-Caffe/raw/master/test/caffemodel/IDN_x{s}.caffemodel",
        download_sha256=DOWNLOAD_SHA256[s],
    )
    for s, sha in WEIGHTS_SHA256.items()
}

# The Caffe layers that make a .caffemodel IDN's (layer names are this module's module names).
_CAFFE_LAYERS = {"conv1", "conv3_1", "down1", "upsample"}


def recognise_caffemodel(foreign: ForeignFile) -> Recognised | None:
    """The authors' ``IDN_x{s}.caffemodel``: IDN's Caffe layer names (srbench's module names,
    so no key mapping); the scale is the ``upsample`` deconvolution's stride."""
    names = {key.split(".")[0] for key in foreign.tensors}
    if foreign.format != "caffemodel" or not names >= _CAFFE_LAYERS:
        return None
    stride = foreign.strides.get("upsample", ())
    return Recognised("idn", int(stride[0]) if stride else None, dict(foreign.tensors))


_SLOPE = 0.05


def lr_grid_index(size: int, stride: int, padding: int) -> Tensor:
    """Where each tap of the LR-grid convolution equal to a transposed convolution comes from.

    Transposed: ``out[s*m + r] = sum_i x[i] W[s*m + r + p - s*i]``. With ``j = i - m`` this is a
    cross-correlation on the LR grid, ``out_r[m] = sum_j x[m + j] K_r[j]``, ``K_r[j] =
    W[r + p - s*j]`` where that index lies in the kernel (zero elsewhere). Returns, for the
    ``s*s`` output phases ``(r_y, r_x)`` in pixel-shuffle order and the ``(2J+1)^2`` taps, the
    flat index into ``W`` (``size*size`` for a zero tap).
    """
    taps = [[r + padding - stride * j for j in range(-size, size + 1)] for r in range(stride)]
    valid = [
        j
        for j in range(-size, size + 1)
        for r in range(stride)
        if 0 <= r + padding - stride * j < size
    ]
    half = max(abs(min(valid)), abs(max(valid)))
    index = torch.full((stride * stride, 2 * half + 1, 2 * half + 1), size * size)
    for ry in range(stride):
        for rx in range(stride):
            for a, j in enumerate(range(-half, half + 1)):
                ky = taps[ry][j + size]
                for b, i in enumerate(range(-half, half + 1)):
                    kx = taps[rx][i + size]
                    if 0 <= ky < size and 0 <= kx < size:
                        index[ry * stride + rx, a, b] = ky * size + kx
    return index


def _fused_cpu_inference() -> bool:
    """Whether oneDNN's fused convolution + activation may run: inference only (it has no
    backward), never under a trace (the MAC counters count ``aten`` convolutions)."""
    return (
        torch.is_inference_mode_enabled()
        and not torch.jit.is_tracing()
        and torch.backends.mkldnn.is_available()
    )


class IDN(nn.Module):
    _lr_grid_index: Tensor  # a registered buffer (typed for mypy)

    def __init__(self, scale: int) -> None:
        super().__init__()
        if not 1 <= scale <= 9:
            raise ValueError(
                f"IDN's 17x17 transposed convolution supports scales 1..9, not {scale}"
            )
        self.scale = scale
        self.conv1 = nn.Conv2d(1, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1)
        for k in range(3, 7):
            self.add_module(f"conv{k}_1", nn.Conv2d(64, 48, 3, padding=1))
            self.add_module(f"conv{k}_2", nn.Conv2d(48, 32, 3, padding=1, groups=4))
            self.add_module(f"conv{k}_3", nn.Conv2d(32, 64, 3, padding=1))
            self.add_module(f"conv{k}_4", nn.Conv2d(48, 64, 3, padding=1))
            self.add_module(f"conv{k}_5", nn.Conv2d(64, 48, 3, padding=1, groups=4))
            self.add_module(f"conv{k}_6", nn.Conv2d(48, 80, 3, padding=1))
            self.add_module(f"down{k - 2}", nn.Conv2d(80, 64, 1))
        self.upsample = nn.ConvTranspose2d(64, 1, 17, stride=scale, padding=9 - scale)
        # The transposed convolution computed as a convolution on the LR grid with scale**2
        # outputs and a pixel shuffle (the same sums, regrouped): a 17x17 transposed
        # convolution to one channel runs at a few GMAC/s on CPUs, the convolution near peak.
        # The index maps the transposed kernel into that convolution's; state_dict unchanged.
        self.register_buffer("_lr_grid_index", lr_grid_index(17, scale, 9 - scale), False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (MSRA) initialisation for the LReLU convolutions, as in the IDN paper, and a small
        Gaussian (std 1e-3) for the 17x17 transposed convolution, so that training starts from
        the bicubic image. With PyTorch's default initialisation the 26 layers shrink the signal
        and an equal-budget training stays at the bicubic PSNR for hundreds of iterations."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=_SLOPE, nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.upsample.weight, std=1e-3)
        if self.upsample.bias is not None:
            nn.init.zeros_(self.upsample.bias)

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, _SLOPE)

    def _conv_act(self, name: str, x: Tensor) -> Tensor:
        """``leaky_relu(conv(x))``; in CPU inference as one oneDNN convolution with the
        activation applied to its output in place (the same fp32 values, bit for bit: the
        activation of each stored output), saving a pass over every feature map."""
        conv = getattr(self, name)
        if x.device.type == "cpu" and x.dtype == torch.float32 and _fused_cpu_inference():
            return torch.ops.mkldnn._convolution_pointwise(
                x, conv.weight, conv.bias, list(conv.padding), list(conv.stride),
                list(conv.dilation), conv.groups, "leaky_relu", [_SLOPE], "",
            )  # fmt: skip
        return self._act(conv(x))

    def _block(self, k: int, x: Tensor) -> Tensor:
        a = self._conv_act(f"conv{k}_1", x)
        a = self._conv_act(f"conv{k}_2", a)
        a = self._conv_act(f"conv{k}_3", a)
        kept, rest = a[:, :16], a[:, 16:]
        b = self._conv_act(f"conv{k}_4", rest)
        b = self._conv_act(f"conv{k}_5", b)
        b = self._conv_act(f"conv{k}_6", b)
        if torch.is_grad_enabled() and b.requires_grad:  # autograd needs b unchanged
            b = torch.cat([x, kept], dim=1) + b
        else:  # the same sums, into b, without building the concatenation
            b[:, : x.shape[1]].add_(x)
            b[:, x.shape[1] :].add_(kept)
        return self._conv_act(f"down{k - 2}", b)

    def forward(self, x: Tensor) -> Tensor:
        up = imresize_torch(x, float(self.scale))
        f = self._conv_act("conv1", x)
        f = self._conv_act("conv2", f)
        for k in range(3, 7):
            f = self._block(k, f)
        # The cost counters (fvcore's trace; FlopCounterMode on the meta device) count the
        # architecture's transposed convolution: the LR-grid form is how it runs, not what it is.
        if torch.jit.is_tracing() or f.device.type == "meta":
            h, w = x.shape[-2:]
            return up + self.upsample(f)[..., : h * self.scale, : w * self.scale]
        return up + self._upsample(f)

    def _upsample(self, f: Tensor) -> Tensor:
        """``self.upsample(f)[..., :h*scale, :w*scale]``, as conv on the LR grid + pixel shuffle."""
        weight = self.upsample.weight  # (64, 1, 17, 17)
        flat = torch.cat([weight.flatten(1), weight.new_zeros(weight.shape[0], 1)], dim=1)
        index: Tensor = self._lr_grid_index  # type: ignore[assignment]  # a buffer
        kernel = flat[:, index].transpose(0, 1)  # (s*s, 64, K, K)
        bias = self.upsample.bias
        bias = bias.expand(self.scale**2) if bias is not None else None
        pad = kernel.shape[-1] // 2
        return F.pixel_shuffle(F.conv2d(f, kernel, bias, padding=pad), self.scale)


@register_model(
    ModelCard(
        name="idn",
        family="idn",
        paper=(
            "Z. Hui, X. Wang, X. Gao, 'Fast and Accurate Single Image Super-Resolution via "
            "Information Distillation Network', CVPR 2018, pp. 723-731 (arXiv:1803.09454)"
        ),
        year=2018,
        scales=(2, 3, 4),
        input_channels="y",
        pre_upsampled=False,
        licence="unknown (official code Zheng222/IDN-Caffe has no licence file)",
        published=tuple(
            PublishedResult(dataset=d, scale=s, psnr_db=p, ssim=q, protocol="legacy-y", source=src)
            for d, s, p, q, src in _PUBLISHED
        ),
        published_params={2: 552_769, 3: 552_769, 4: 552_769},
        official_weights=_WEIGHTS,
        recognise_weights=recognise_caffemodel,
        weights=zoo_weights("idn"),
        assumptions=(
            "Initialisation for srbench's own training: He (MSRA) for every convolution, as the "
            "paper states; N(0, 1e-3) for the 17x17 transposed convolution (assumed; it makes "
            "training start from the bicubic image).",
        ),
        notes=(
            "Works on LR features; only the skip is bicubic-upsampled. The official weights "
            "reproduce the published Set5 values within 0.01 dB under the legacy-y protocol "
            "(per-image x2: baby 38.88, bird 42.93, butterfly 35.02, head 35.97, woman 36.34)."
        ),
    )
)
def idn(scale: int, **overrides: object) -> nn.Module:
    return IDN(scale)
