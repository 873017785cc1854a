"""Input sizes: the declared size conventions (``720p``, ``256``, ``lr:WxH``, ``hr:WxH``) and the
LR input shape each gives a model, checked against the model's constraints."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from srbench.errors import ProfilingError
from srbench.registry import ModelCard

DEFAULT_SIZES = ("720p", "256")


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


@dataclass(frozen=True)
class SizeSpec:
    """A declared input size: either an HR output size or an LR input size (width x height).

    ``"720p"`` is the literature's 1280x720 HR output: LR = round(1280/s) x round(720/s), so x3
    uses LR 427x240 (HR 1281x720). ``"256"`` is a 256x256 LR input (NTIRE efficient-SR
    convention). ``"lr:WxH"`` / ``"WxH"`` give an LR size, ``"hr:WxH"`` an HR output size.
    """

    label: str
    kind: str  # "hr" (output size given) or "lr" (input size given)
    width: int
    height: int

    def lr_hw(self, scale: int) -> tuple[int, int]:
        """LR (height, width) for ``scale``."""
        if self.kind == "lr":
            return self.height, self.width
        return _round_half_up(self.height / scale), _round_half_up(self.width / scale)

    def describe(self, scale: int) -> str:
        h, w = self.lr_hw(scale)
        if self.kind == "lr":
            return f"LR {w}x{h} -> HR {w * scale}x{h * scale}"
        exact = w * scale == self.width and h * scale == self.height
        text = f"HR {self.width}x{self.height} -> LR {w}x{h}"
        if not exact:
            text += (
                f" (LR = round({self.width}/{scale}) x round({self.height}/{scale}); "
                f"the output is {w * scale}x{h * scale})"
            )
        return text


_WXH = re.compile(r"^\s*(-?\d+)\s*[x×*]\s*(-?\d+)\s*$", re.IGNORECASE)


def parse_size(text: str) -> SizeSpec:
    """Parse ``720p``, ``1080p``, ``256``, ``WxH`` (LR), ``lr:WxH`` or ``hr:WxH``."""
    raw = str(text).strip().lower()
    if not raw:
        raise ProfilingError("empty size; use e.g. 720p, 256, lr:320x180 or hr:1280x720")
    m = re.fullmatch(r"(-?\d+)p", raw)
    if m:
        height = int(m.group(1))
        if height <= 0:
            raise ProfilingError(f"size {text!r}: the height must be positive")
        return SizeSpec(raw, "hr", _round_half_up(height * 16 / 9), height)
    if re.fullmatch(r"-?\d+", raw):
        side = int(raw)
        if side <= 0:
            raise ProfilingError(f"size {text!r}: the side must be positive")
        return SizeSpec(raw, "lr", side, side)
    kind = "lr"
    body = raw
    if raw.startswith(("lr:", "hr:")):
        kind, body = raw[:2], raw[3:]
    m = _WXH.match(body)
    if not m:
        raise ProfilingError(
            f"cannot read size {text!r}; use 720p, 256 (LR 256x256), WxH or lr:WxH (LR input), "
            "hr:WxH (HR output)"
        )
    width, height = int(m.group(1)), int(m.group(2))
    if width <= 0 or height <= 0:
        raise ProfilingError(f"size {text!r}: width and height must be positive")
    return SizeSpec(raw, kind, width, height)


def input_channels(card: ModelCard) -> int:
    """Channels of the profiled input: 1 for Y models and for any-channel models, 3 for RGB."""
    return 3 if card.input_channels == "rgb" else 1


def lr_shape(card: ModelCard, scale: int, size: SizeSpec) -> tuple[int, int, int, int]:
    """The (N, C, h, w) LR input for ``size``, checked against the model's constraints."""
    h, w = size.lr_hw(scale)
    multiple = max(1, int(card.input_multiple))
    minimum = max(multiple, card.min_input_size)
    where = f"{card.name} x{scale}, size {size.label} ({size.describe(scale)})"
    if h < minimum or w < minimum:
        raise ProfilingError(
            f"{where}: the LR input must be at least {minimum}x{minimum} pixels for this model"
        )
    if h % multiple or w % multiple:
        raise ProfilingError(
            f"{where}: LR width and height must be multiples of {multiple} (the card's "
            "input_multiple); pick another size"
        )
    return 1, input_channels(card), h, w
