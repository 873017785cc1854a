"""Training data: HR images decoded once, LR made once, random aligned patches cut on the device.

* HR images are read from folders (``T91`` and ``BSD200`` under the data root by default, or any
  folder of lossless images), greyscale files replicated to RGB, and cropped to a multiple of the
  scale (``modcrop``).
* LR images are made once per image by the protocol's degradation (:meth:`Protocol.degrade`;
  :data:`TRAINING_PROTOCOL`, the ``standard`` protocol's: MATLAB-exact ``imresize`` of the uint8
  RGB HR, uint8 out, rounded after each pass), optionally kept in the srbench LR cache (the same
  cache and key the evaluation uses).
* Y-channel models train on float BT.601 Y of both: ``rgb_to_y(lr_uint8) / 255`` as input and
  ``rgb_to_y(hr_uint8) / 255`` as target -- what the ``standard`` protocol feeds them and scores.
* All images of a set are packed into one flat buffer per resolution (``(C, sum of H*W)``), held
  on the training device (uint8 for RGB, float32 for Y). A batch is cut with ONE gather per
  resolution: the patch grid of every sample (its random image, position, flips and transpose)
  is turned into flat indices, so cropping and augmentation happen in the same indexing op.
* Randomness comes from one seeded ``torch.Generator`` on the device. Every step draws the whole
  *global* batch; a DDP rank then cuts only its own contiguous slice, so any number of processes
  sees the same global batches (and a resumed run the same batches as an uninterrupted one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srbench.color import rgb_to_y
from srbench.data import IMAGE_SUFFIXES, HRImage, decode_image, pixels_sha256, resolve_data_root
from srbench.errors import DataError
from srbench.imresize import modcrop
from srbench.protocols import STANDARD, LRCache, Protocol

# The degradation training learns to invert, whatever protocol a recipe validates under.
TRAINING_PROTOCOL = STANDARD


def resolve_train_folders(train: Sequence[str], data_root: str | Path | None = None) -> list[Path]:
    """Folders named in a recipe: a path, or a set name under the data root (its ``HR/`` inside)."""
    root = resolve_data_root(data_root)
    folders = []
    for entry in train:
        path = Path(entry).expanduser()
        candidates = [path] if path.is_absolute() else [path, root / entry]
        if not path.is_absolute() and root.is_dir():  # case-insensitive set names: t91 -> T91
            candidates += [c for c in sorted(root.iterdir()) if c.name.lower() == entry.lower()]
        found = None
        for candidate in candidates:
            if (candidate / "HR").is_dir():
                found = candidate / "HR"
                break
            if candidate.is_dir():
                found = candidate
                break
        if found is None:
            looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
            raise DataError(
                f"training data {entry!r} not found (looked in: {looked}); put the images there, "
                "set --data-root / $SRBENCH_DATA, or give a folder path in the recipe's data.train"
            )
        folders.append(found)
    return folders


def load_folder(folder: Path) -> list[HRImage]:
    """Every lossless image in ``folder`` (sorted by name), decoded and fingerprinted."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    images = []
    for path in files:
        pixels = decode_image(path)
        images.append(HRImage(folder.name, path.stem, pixels, pixels_sha256(pixels), path))
    return images


def load_training_images(
    train: Sequence[str], data_root: str | Path | None = None
) -> list[HRImage]:
    images: list[HRImage] = []
    for folder in resolve_train_folders(train, data_root):
        images.extend(load_folder(folder))
    return images


def images_from_arrays(arrays: Sequence[np.ndarray], dataset: str = "arrays") -> list[HRImage]:
    """Wrap in-memory uint8 images (H x W x 3 or H x W) as training images."""
    out = []
    for i, pixels in enumerate(arrays):
        pixels = np.ascontiguousarray(pixels)
        if pixels.dtype != np.uint8:
            raise DataError(f"training image {i}: expected uint8, got {pixels.dtype}")
        out.append(HRImage(dataset, f"{i:04d}", pixels, pixels_sha256(pixels), None))
    return out


@dataclass
class TrainingSet:
    """LR/HR pairs packed into flat buffers (see the module docstring)."""

    names: list[str]
    scale: int
    channels: int  # 1 (Y) or 3 (RGB)
    lr: torch.Tensor  # (C, sum h*w): uint8 RGB or float32 Y in [0, 1]
    hr: torch.Tensor  # (C, sum H*W)
    lr_offsets: torch.Tensor  # (n,) int64: start of each image in ``lr``
    hr_offsets: torch.Tensor
    lr_heights: torch.Tensor  # (n,) int64
    lr_widths: torch.Tensor
    fingerprint: str  # sha256 over the HR fingerprints, in order

    def __len__(self) -> int:
        return len(self.names)

    @property
    def device(self) -> torch.device:
        return self.lr.device

    def to(self, device: torch.device | str) -> TrainingSet:
        move = {
            k: getattr(self, k).to(device)
            for k in ("lr", "hr", "lr_offsets", "hr_offsets", "lr_heights", "lr_widths")
        }
        return TrainingSet(
            self.names, self.scale, self.channels, fingerprint=self.fingerprint, **move
        )

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def build_training_set(
    images: Sequence[HRImage],
    scale: int,
    input_channels: str,
    *,
    cache: LRCache | None = None,
    device: torch.device | str = "cpu",
    protocol: Protocol = TRAINING_PROTOCOL,
) -> TrainingSet:
    """Make every LR image once (MATLAB-exact) and pack LR and HR into flat device buffers."""
    if not images:
        raise DataError("no training images")
    cache = cache or LRCache(enabled=False)
    y_mode = input_channels == "y"
    lr_parts, hr_parts, heights, widths, names = [], [], [], [], []
    digest = hashlib.sha256()
    for image in images:
        pixels = image.pixels
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=2)
        hr = modcrop(pixels, scale)
        if hr.shape[0] < scale or hr.shape[1] < scale:
            continue
        lr = protocol.degrade(image, hr, scale, cache)
        if y_mode:
            lr_c = (rgb_to_y(lr) / 255.0).astype(np.float32)[None]
            hr_c = (rgb_to_y(hr) / 255.0).astype(np.float32)[None]
        else:
            lr_c = np.ascontiguousarray(lr.transpose(2, 0, 1))
            hr_c = np.ascontiguousarray(hr.transpose(2, 0, 1))
        lr_parts.append(lr_c.reshape(lr_c.shape[0], -1))
        hr_parts.append(hr_c.reshape(hr_c.shape[0], -1))
        heights.append(lr.shape[0])
        widths.append(lr.shape[1])
        names.append(f"{image.dataset}/{image.name}")
        digest.update(f"{image.dataset}/{image.name}:{image.pixels_sha256}\n".encode())
    lr_sizes = np.array([h * w for h, w in zip(heights, widths, strict=True)], dtype=np.int64)
    lr_offsets = np.concatenate([[0], np.cumsum(lr_sizes)[:-1]])
    hr_offsets = lr_offsets * scale * scale
    dev = torch.device(device)
    return TrainingSet(
        names=names,
        scale=scale,
        channels=1 if y_mode else 3,
        lr=torch.from_numpy(np.concatenate(lr_parts, axis=1)).to(dev),
        hr=torch.from_numpy(np.concatenate(hr_parts, axis=1)).to(dev),
        lr_offsets=torch.from_numpy(lr_offsets).to(dev),
        hr_offsets=torch.from_numpy(hr_offsets).to(dev),
        lr_heights=torch.tensor(heights, dtype=torch.int64, device=dev),
        lr_widths=torch.tensor(widths, dtype=torch.int64, device=dev),
        fingerprint=digest.hexdigest(),
    )


class PatchSampler:
    """Random aligned LR/HR patches with flips and transposes, cut on the data's device.

    ``sample()`` returns this rank's slice ``(b, C, p, p)``, ``(b, C, p*s, p*s)`` (float, [0, 1])
    of a global batch of ``batch_size`` drawn from ``generator``; ``rank``/``world_size`` pick the
    slice. The generator state is the sampler's whole state (``state()`` / ``load_state()``).
    """

    def __init__(
        self,
        data: TrainingSet,
        patch_size: int,
        batch_size: int,
        *,
        seed: int = 0,
        hflip: bool = True,
        vflip: bool = True,
        rot90: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size % world_size:
            raise DataError(
                f"batch size {batch_size} is not divisible by the {world_size} processes; "
                "choose a global batch that is a multiple of the process count"
            )
        self.data = data
        self.patch = patch_size
        self.batch = batch_size
        self.flags = torch.tensor([vflip, hflip, rot90], device=data.device)
        per_rank = batch_size // world_size
        self.slice = slice(rank * per_rank, (rank + 1) * per_rank)
        fits = (data.lr_heights >= patch_size) & (data.lr_widths >= patch_size)
        self.eligible = torch.nonzero(fits).flatten()
        if len(self.eligible) == 0:
            raise DataError(
                f"no training image is large enough for LR patches of {patch_size} px at "
                f"x{data.scale}; use a smaller data.patch_size"
            )
        self.skipped = len(data) - len(self.eligible)
        self.generator = torch.Generator(device=data.device)
        self.generator.manual_seed(seed)
        ar = torch.arange(patch_size, device=data.device)
        ar_hr = torch.arange(patch_size * data.scale, device=data.device)
        self._grid = (ar.view(1, -1, 1), ar.view(1, 1, -1))
        self._grid_hr = (ar_hr.view(1, -1, 1), ar_hr.view(1, 1, -1))

    def state(self) -> list[int]:
        return self.generator.get_state().tolist()

    def load_state(self, state: list[int]) -> None:
        self.generator.set_state(torch.tensor(state, dtype=torch.uint8))

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image index, top, left and (vflip, hflip, transpose) flags of the global batch.

        A sample is the crop at (top, left), flipped vertically and/or horizontally, then
        transposed (with all three enabled: each of the 8 rotations/flips with equal chance).
        """
        g, dev, n = self.generator, self.data.device, self.batch
        pick = torch.randint(len(self.eligible), (n,), generator=g, device=dev)
        u = torch.rand((n, 2), generator=g, device=dev, dtype=torch.float64)
        flips = (torch.rand((n, 3), generator=g, device=dev) < 0.5) & self.flags
        image = self.eligible[pick]
        room_h = self.data.lr_heights[image] - self.patch + 1
        room_w = self.data.lr_widths[image] - self.patch + 1
        top = torch.minimum((u[:, 0] * room_h).long(), room_h - 1)
        left = torch.minimum((u[:, 1] * room_w).long(), room_w - 1)
        return image, top, left, flips

    def _indices(self, image, top, left, flips, offsets, widths, grid, size):
        dy, dx = grid
        flips = flips.view(-1, 3, 1, 1)
        dy, dx = dy.expand(len(image), size, size), dx.expand(len(image), size, size)
        transpose = flips[:, 2]
        dy, dx = torch.where(transpose, dx, dy), torch.where(transpose, dy, dx)
        dy = torch.where(flips[:, 0], size - 1 - dy, dy)
        dx = torch.where(flips[:, 1], size - 1 - dx, dx)
        rows = top.view(-1, 1, 1) + dy
        cols = left.view(-1, 1, 1) + dx
        return offsets[image].view(-1, 1, 1) + rows * widths.view(-1, 1, 1) + cols

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        image, top, left, flips = (t[self.slice] for t in self.draw())
        s, p = self.data.scale, self.patch
        lr_w = self.data.lr_widths[image]
        lr_idx = self._indices(image, top, left, flips, self.data.lr_offsets, lr_w, self._grid, p)
        hr_idx = self._indices(
            image, top * s, left * s, flips, self.data.hr_offsets, lr_w * s, self._grid_hr, p * s
        )
        lr = self.data.to_float(self.data.lr[:, lr_idx]).permute(1, 0, 2, 3)
        hr = self.data.to_float(self.data.hr[:, hr_idx]).permute(1, 0, 2, 3)
        return lr.contiguous(), hr.contiguous()


def synthetic_images(count: int = 8, size: int = 96, seed: int = 0) -> list[HRImage]:
    """Small structured uint8 RGB images (smooth gradients, edges, texture) for tests/benchmarks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    images = []
    for _ in range(count):
        channels = []
        for _c in range(3):
            a, b, f1, f2, ph = rng.uniform(0.2, 1.0, 5)
            wave = np.sin(2 * np.pi * (f1 * 4 * xx + f2 * 3 * yy) + 6 * ph)
            edge = (xx * a + yy * b > 0.5 + 0.2 * ph).astype(np.float64)
            noise = rng.normal(0, 0.03, (size, size))
            channels.append(0.35 * wave + 0.4 * edge + 0.2 + 0.3 * xx * yy + noise)
        img = np.clip(np.stack(channels, axis=2) * 200 + 20, 0, 255).round().astype(np.uint8)
        images.append(img)
    return images_from_arrays(images, dataset="synthetic")
