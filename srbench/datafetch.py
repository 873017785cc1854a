"""``srbench data fetch`` and ``srbench data import``: benchmarks installed only when they verify.

The trust anchor is srbench's pixel fingerprints (:mod:`srbench.data`), not the archive: the
sources in each benchmark spec (``"download"``) are the commonly used public archives, pinned by
URL; where no sha256 of an archive could be checked when it was pinned, the spec says so
(``"sha256": null``) and the archive is trusted for nothing: every HR image in it is decoded and
matched to the spec by its pixels, under its standard name. An image that carries a standard name
but other pixels is named; a missing image is named; then nothing is installed.

Safety. Archives are read in memory, never extracted as given: a member with an absolute path or
``..``, a link, a device, more than :data:`MAX_MEMBER_BYTES` or, in all, more than
:data:`MAX_TOTAL_BYTES` refuses the whole archive. The images are written into a staging folder
beside the destination and moved into place with one rename, so a failure leaves no partial
benchmark folder. Downloads go to ``<data root>/.srbench-downloads/NAME.part``; an interrupted one
resumes with an HTTP Range request (or restarts when the server ignores it), and a corrupt or
truncated archive is deleted so that the next try starts afresh.

``$SRBENCH_DATA_MIRROR`` (a base URL) fetches the same file names from a mirror instead (an
offline cluster's file server; the tests serve archives they build on 127.0.0.1 this way).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from srbench.data import (
    IMAGE_SUFFIXES,
    BenchmarkSpec,
    decode_image,
    get_benchmark,
    hr_folder,
    pixels_sha256,
    verify_benchmark,
)
from srbench.errors import DataError

ENV_MIRROR = "SRBENCH_DATA_MIRROR"
MAX_MEMBER_BYTES = 256 << 20  # the largest standard HR image is a few MB
MAX_TOTAL_BYTES = 4 << 30
Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total or None)


@dataclass(frozen=True)
class Source:
    url: str
    folder: str  # the folder inside the archive holding the HR images ("" = anywhere)
    sha256: str | None  # of the archive; None: not pinned (the pixels are checked instead)


def sources(key: str) -> list[Source]:
    """The archives pinned in a benchmark's spec (none for Manga109: import it)."""
    get_benchmark(key)  # unknown keys: the usual one-line error
    raw = json.loads(resources.files("srbench.benchmarks").joinpath(f"{key}.json").read_text())
    return [Source(d["url"], d.get("folder", ""), d.get("sha256")) for d in raw.get("download", [])]


def download_url(url: str) -> str:
    mirror = os.environ.get(ENV_MIRROR)
    return f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[-1]}" if mirror else url


# -- download -------------------------------------------------------------------------------------


def download(url: str, target: Path, sha256: str | None, progress: Progress | None = None) -> Path:
    """``url`` -> ``target``, resuming ``target.part``; the sha256 is checked when pinned."""
    import hashlib

    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "srbench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if response.status != 206:
                have = 0  # the server ignored the range: start again
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            done = have
            with open(part, "ab" if have else "wb") as out:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(target.name, done, total)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # the part file is already whole (or longer): start again
            part.unlink(missing_ok=True)
        raise DataError(
            f"{url}: HTTP {exc.code} {exc.reason}; try again or check the URL"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise DataError(
            f"{url}: cannot download ({getattr(exc, 'reason', exc)}); check the network, or "
            "download the archive yourself and run `srbench data import KEY FOLDER`"
        ) from None
    except OSError as exc:  # the connection broke: the part file is kept for a resume
        raise DataError(
            f"{url}: the download broke off ({exc}); run the command again to resume"
        ) from None
    if total is not None and done != total:
        raise DataError(f"{url}: download stopped at {done} of {total} bytes; run again to resume")
    if sha256:
        digest = hashlib.sha256()
        with open(part, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != sha256:
            part.unlink()
            raise DataError(
                f"{url}: sha256 {digest.hexdigest()} is not the pinned {sha256}; deleted"
            )
    os.replace(part, target)
    return target


# -- safe archive reading -------------------------------------------------------------------------


def _safe_name(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")) or "\\" in name:
        raise DataError(
            f"{archive}: member {name!r} would escape the folder; refused, nothing installed"
        )
    return path


def _members(archive: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """(path, bytes) of every regular file; any unsafe member refuses the whole archive."""
    total = 0

    def take(name: str, size: int) -> PurePosixPath:
        nonlocal total
        path = _safe_name(name, archive)
        total += size
        if size > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
            raise DataError(f"{archive}: member {name!r} exceeds the size limits; refused")
        return path

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise DataError(f"{archive}: member {info.filename!r} is a link; refused")
                    if not info.is_dir():
                        path = take(info.filename, info.file_size)
                        with zf.open(info) as fh:  # bounded: a zip may lie about sizes
                            yield path, fh.read(MAX_MEMBER_BYTES + 1)
            return
        with tarfile.open(archive, mode="r:*") as tf:
            for member in tf:
                if member.isdir():
                    _safe_name(member.name, archive)
                    continue
                if not member.isfile():  # links, devices, fifos
                    raise DataError(
                        f"{archive}: member {member.name!r} is not a regular file; refused"
                    )
                path = take(member.name, member.size)
                data = tf.extractfile(member)
                yield path, data.read() if data else b""
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"{archive}: corrupt or truncated archive ({exc}); deleted, run again"
        ) from None


# -- matching and installing ----------------------------------------------------------------------


def _variants(pixels: np.ndarray) -> Iterator[np.ndarray]:
    """The pixels, and the same pixels with grey stored the other way (L vs equal-channel RGB)."""
    yield pixels
    if pixels.ndim == 2:
        yield np.repeat(pixels[..., None], 3, axis=2)
    elif pixels.shape[2] == 3 and (pixels == pixels[..., :1]).all():
        yield np.ascontiguousarray(pixels[..., 0])


def _match(spec: BenchmarkSpec, candidates: Iterable[tuple[str, Path]], staging: Path) -> None:
    """Write every spec image found among ``candidates`` (label, decoded file) into ``staging``
    as ``NAME.png``; a standard name with other pixels, or a missing image, is an error."""
    by_sha = {image.pixels_sha256: image for image in spec.images}
    names = {image.name for image in spec.images}
    found: set[str] = set()
    wrong: list[str] = []
    for label, path in candidates:
        try:
            pixels = decode_image(path)
        except DataError:
            continue  # not an image srbench can read: cannot be a standard one
        hit = next((v for v in _variants(pixels) if pixels_sha256(v) in by_sha), None)
        if hit is None:
            if path.stem in names:
                wrong.append(f"{path.stem} ({label})")
            continue
        image = by_sha[pixels_sha256(hit)]
        Image.fromarray(hit).save(staging / f"{image.name}.png")
        found.add(image.name)
    missing = sorted(names - found)
    if wrong:
        raise DataError(
            f"{spec.name}: {len(wrong)} image(s) differ from the standard pixels: "
            f"{', '.join(wrong[:5])}; nothing installed"
        )
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"{spec.name}: {len(missing)} of {spec.count} images not found: "
            f"{', '.join(missing[:5])}{more}; nothing installed"
        )


def _install(spec: BenchmarkSpec, root: Path, fill: Callable[[Path, Path], None]) -> Path:
    """Stage the benchmark with ``fill(staging, scratch)``, verify it, move it into place."""
    dest = hr_folder(spec, root)
    if dest.exists():
        raise DataError(f"{dest}: exists and does not verify; move it away, then run again")
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".srbench-{spec.key}-", dir=root))
    try:
        staging, scratch = work / spec.folder / "HR", work / "scratch"
        staging.mkdir(parents=True)
        scratch.mkdir()
        fill(staging, scratch)
        bad = [s for s in verify_benchmark(spec, work) if s.status != "ok"]
        if bad:  # cannot happen after matching; checked as `srbench run` will check it
            raise DataError(f"{spec.name}: {bad[0].name}: {bad[0].detail}; nothing installed")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if dest.parent.is_dir() and not any(dest.parent.iterdir()):
            dest.parent.rmdir()  # nothing installed: no empty <Benchmark>/ folder either
    return dest


def _verified(spec: BenchmarkSpec, root: Path) -> bool:
    return hr_folder(spec, root).is_dir() and all(
        s.status == "ok" for s in verify_benchmark(spec, root)
    )


def _from_archive(spec: BenchmarkSpec, archive: Path, folder: str) -> Callable[[Path, Path], None]:
    def fill(staging: Path, scratch: Path) -> None:
        candidates = []
        for i, (path, data) in enumerate(_members(archive)):
            inside = not folder or (path.parts and path.parts[0] == folder)
            if inside and path.suffix.lower() in IMAGE_SUFFIXES:
                out = scratch / f"{i:05d}" / path.name  # unique: names may repeat in subfolders
                out.parent.mkdir()
                out.write_bytes(data)
                candidates.append((str(path), out))
        _match(spec, candidates, staging)

    return fill


def fetch_benchmark(key: str, root: Path, *, progress: Progress | None = None) -> str:
    """Download, check and install one benchmark under ``root``; returns what was done."""
    spec = get_benchmark(key)
    if _verified(spec, root):
        return f"{spec.name}: already installed and verified in {hr_folder(spec, root)}"
    pinned = sources(key)
    if not pinned:
        raise DataError(
            f"{spec.name} cannot be downloaded (its licence forbids redistribution); import your "
            f"own copy: srbench data import {key} FOLDER"
        )
    errors = []
    for source in pinned:
        url = download_url(source.url)
        archive = root / ".srbench-downloads" / url.rsplit("/", 1)[-1]
        try:
            download(url, archive, source.sha256, progress)
            dest = _install(spec, root, _from_archive(spec, archive, source.folder))
        except DataError as exc:
            if "corrupt or truncated" in str(exc) or "differ from" in str(exc):
                archive.unlink(missing_ok=True)  # a bad archive is never reused
            errors.append(str(exc))
            continue
        archive.unlink(missing_ok=True)
        return f"{spec.name}: {spec.count} images verified and installed in {dest}"
    raise DataError("; ".join(errors))


def import_benchmark(key: str, folder: Path, root: Path) -> str:
    """Install a benchmark from the user's own copy: every lossless image under ``folder``
    (any depth) is matched by its pixels; e.g. Manga109 from the user's PNG pages."""
    spec = get_benchmark(key)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; give the folder holding your {spec.name} images")
    if _verified(spec, root):
        return f"{spec.name}: already installed and verified in {hr_folder(spec, root)}"

    def fill(staging: Path, scratch: Path) -> None:
        files = sorted(
            p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        _match(spec, ((str(p), p) for p in files), staging)

    dest = _install(spec, root, fill)
    return f"{spec.name}: {spec.count} images verified and installed in {dest}"
