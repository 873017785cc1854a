"""``srbench weights fetch``: the authors' original files, downloaded, checked and converted.

Each official file is pinned in its model card (``WeightsRef.url`` and ``download_sha256``: the
full sha256, or the 8-hex prefix where only that is public, as for EDSR-PyTorch). A download goes
to a temporary file in the weights cache, is checked (size against ``Content-Length``, then the
sha256), converted by :func:`srbench.convert.convert` into the cache under the card's file name
(where ``NAME.official`` looks for it), and the download is deleted. Any failure -- refused
connection, HTTP error, truncated body, wrong hash -- is one line and leaves no file behind.

``$SRBENCH_WEIGHTS_MIRROR`` (a base URL) fetches the same file names from a mirror instead
(an offline cluster's file server; the tests serve ``shared/`` on 127.0.0.1 this way).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from srbench.errors import WeightsError
from srbench.files import atomic_path
from srbench.registry import ModelRef, resolve

ENV_MIRROR = "SRBENCH_WEIGHTS_MIRROR"
Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total or None)


@dataclass
class Fetched:
    key: str  # idn.official
    scales: tuple[int, ...]
    path: Path
    sha256: str
    url: str


def download_url(url: str) -> str:
    mirror = os.environ.get(ENV_MIRROR)
    if mirror:
        if urllib.parse.urlsplit(mirror).scheme not in ("http", "https", "file", "ftp"):
            raise WeightsError(
                f"${ENV_MIRROR}={mirror!r} is not a URL; set it to a base URL such as "
                "http://host/weights or file:///path/to/folder, or unset it"
            )
        return f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[-1]}"
    return url


def _download(url: str, target: Path, expected: str, progress: Progress | None) -> None:
    """``url`` -> ``target``, checked; on any failure nothing is left at ``target``."""
    name = url.rsplit("/", 1)[-1]
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                done = 0
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(name, done, total)
        except urllib.error.HTTPError as exc:
            raise WeightsError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WeightsError(
                f"{url}: cannot download ({reason}); check the network, or download the file "
                f"yourself and run `srbench weights convert FILE`"
            ) from None
        except OSError as exc:  # IncompleteRead and friends: the connection broke
            raise WeightsError(f"{url}: the download broke off ({exc}); try again") from None
        except ValueError as exc:  # urllib: "unknown url type" and the like
            raise WeightsError(
                f"{url}: not a URL srbench can download ({exc}); check ${ENV_MIRROR}"
            ) from None
        if total is not None and done != total:
            raise WeightsError(f"{url}: truncated download ({done} of {total} bytes); try again")
        got = digest.hexdigest()
        if not got.startswith(expected.lower()):
            raise WeightsError(
                f"{url}: sha256 {got} does not match the model card ({expected}); the file is "
                "damaged or not the authors' release: nothing was kept"
            )


def fetch(
    name: str, *, progress: Progress | None = None, cache_dir: Path | None = None
) -> list[Fetched]:
    """Download and convert the authors' weights for every scale of ``name`` (``idn``,
    ``idn.official``, ``edsr``...). Files shared by several scales are fetched once."""
    from srbench.convert import convert
    from srbench.weights import CACHE_DIR

    base = resolve(name)
    ref = ModelRef(base.card, "official")
    if not base.card.official_weights:
        raise WeightsError(
            f"{base.card.name}: srbench knows no published weights of its authors (nothing to "
            "fetch); its shipped weights are srbench's own training"
        )
    folder = (cache_dir or CACHE_DIR).expanduser()
    out: list[Fetched] = []
    by_file: dict[str, list[int]] = {}
    for scale, wref in sorted(ref.weights.items()):
        by_file.setdefault(wref.filename, []).append(scale)
    for filename, scales in by_file.items():
        wref = ref.weights[scales[0]]
        if not wref.url or not wref.download_sha256:
            raise WeightsError(f"{ref.key} x{scales[0]}: the card pins no download for {filename}")
        url = download_url(wref.url)
        download = folder / f".download-{wref.url.rsplit('/', 1)[-1]}"
        _download(url, download, wref.download_sha256, progress)
        try:
            result = convert(download, folder / filename, model=base.card.name, scale=scales[0])
        finally:
            download.unlink(missing_ok=True)
        if wref.sha256 and result.sha256 != wref.sha256:
            result.path.unlink(missing_ok=True)
            raise WeightsError(
                f"{url}: converted to sha256 {result.sha256}, not the card's {wref.sha256}; "
                "srbench's converter and the card disagree: report it"
            )
        out.append(Fetched(ref.key, tuple(scales), result.path, result.sha256, url))
    return out
