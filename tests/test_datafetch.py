"""`srbench data fetch` / `data import`, offline: a server on 127.0.0.1 serves archives the tests
build from the shared data in the real archives' layouts (no other host is ever addressed)."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import srbench.datafetch as datafetch
from srbench.cli import app
from srbench.data import get_benchmark, verify_benchmark
from srbench.datafetch import Source, fetch_benchmark
from srbench.errors import DataError

runner = CliRunner()


class _Server:
    """Serves ``files`` (name -> bytes); honours Range requests unless ``ranges`` is False."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                wanted = self.headers.get("Range")
                if wanted and server.ranges:
                    start = int(wanted.removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture()
def server(monkeypatch):
    srv = _Server()
    monkeypatch.setenv(datafetch.ENV_MIRROR, srv.url)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buf.getvalue()


def _hr(data_root: Path, folder: str) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((data_root / folder / "HR").iterdir())}


@pytest.fixture()
def set5_tar(data_root) -> bytes:
    """eugenesiow/Set5's layout: Set5_HR.tar.gz holding Set5_HR/<name>.png."""
    return _tar({f"Set5_HR/{n}.png": b for n, b in _hr(data_root, "Set5").items()})


def _nothing_installed(root: Path, folder: str = "Set5") -> None:
    assert not (root / folder).exists()
    assert not [p for p in root.iterdir() if p.name.startswith(f".srbench-{folder.lower()}")]


def test_fetch_installs_only_verified_images_and_says_so(server, set5_tar, tmp_path):
    server.files["Set5_HR.tar.gz"] = set5_tar
    root = tmp_path / "data"
    result = runner.invoke(app, ["data", "fetch", "set5", "--data-root", str(root)],
                           catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Set5: 5 images verified and installed in" in result.stdout
    statuses = verify_benchmark(get_benchmark("set5"), root)
    assert [s.status for s in statuses] == ["ok"] * 5
    assert sorted(p.name for p in (root / "Set5" / "HR").iterdir()) == [
        "baby.png", "bird.png", "butterfly.png", "head.png", "woman.png",
    ]  # fmt: skip
    assert not list((root / ".srbench-downloads").iterdir())  # the archive is not kept
    again = runner.invoke(app, ["data", "fetch", "set5", "--data-root", str(root)])
    assert "already installed and verified" in again.stdout
    assert server.requests == [("Set5_HR.tar.gz", None)]  # nothing downloaded the second time


def test_a_wrong_image_is_named_and_nothing_is_installed(server, data_root, tmp_path):
    members = _hr(data_root, "Set14")
    pixels = np.asarray(Image.open(io.BytesIO(members["baboon"]))).copy()
    pixels[10, 10, 0] ^= 0xFF
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    members["baboon"] = out.getvalue()
    server.files["Set14_HR.tar.gz"] = _tar({f"Set14_HR/{n}.png": b for n, b in members.items()})
    root = tmp_path / "data"
    with pytest.raises(
        DataError,
        match=r"Set14: 1 image\(s\) differ from the standard pixels: "
        r"baboon \(Set14_HR/baboon.png\); nothing installed",
    ):
        fetch_benchmark("set14", root)  # fmt: skip
    _nothing_installed(root, "Set14")


def test_a_truncated_archive_is_refused_and_deleted(server, set5_tar, tmp_path):
    server.files["Set5_HR.tar.gz"] = set5_tar[: len(set5_tar) // 2]
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"Set5_HR\.tar\.gz: corrupt or truncated archive"):
        fetch_benchmark("set5", root)
    _nothing_installed(root)
    assert not list((root / ".srbench-downloads").iterdir())  # the next try starts afresh


@pytest.mark.parametrize("kind", ["escape", "link"])
def test_unsafe_members_refuse_the_whole_archive(server, set5_tar, data_root, tmp_path, kind):
    members = {f"Set5_HR/{n}.png": b for n, b in _hr(data_root, "Set5").items()}
    if kind == "escape":
        members["Set5_HR/../../evil.png"] = members["Set5_HR/baby.png"]
        server.files["Set5_HR.tar.gz"] = _tar(members)
        message = r"member 'Set5_HR/../../evil.png' would escape the folder"
    else:
        server.files["Set5_HR.tar.gz"] = _tar(members, links={"Set5_HR/x.png": "/etc/passwd"})
        message = r"member 'Set5_HR/x.png' is not a regular file; refused"
    root = tmp_path / "data"
    with pytest.raises(DataError, match=message):
        fetch_benchmark("set5", root)
    _nothing_installed(root)
    assert not (tmp_path / "evil.png").exists() and not (root / "evil.png").exists()


def test_a_refused_connection_is_one_line(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(datafetch.ENV_MIRROR, f"http://127.0.0.1:{port}")
    result = runner.invoke(app, ["data", "fetch", "set5", "--data-root", str(tmp_path)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in result.output and len(lines) == 1
    assert f"http://127.0.0.1:{port}/Set5_HR.tar.gz: cannot download" in lines[0]
    _nothing_installed(tmp_path)


@pytest.mark.parametrize("ranges", [True, False])
def test_an_interrupted_download_resumes_or_restarts(server, set5_tar, tmp_path, ranges):
    server.files["Set5_HR.tar.gz"] = set5_tar
    server.ranges = ranges
    root = tmp_path / "data"
    part = root / ".srbench-downloads" / "Set5_HR.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(set5_tar[:1000])  # what an interrupted download left
    assert "5 images verified and installed" in fetch_benchmark("set5", root)
    assert server.requests == [("Set5_HR.tar.gz", "bytes=1000-")]
    assert not part.exists()


def test_any_layout_and_names_match_by_pixels(monkeypatch, server, data_root, tmp_path):
    """SelfExSR's zip layout (img_00N_SRF_2_HR.png in a subfolder): names do not matter."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, data in enumerate(_hr(data_root, "Set5").values(), 1):
            zf.writestr(f"Set5/image_SRF_2/img_{i:03d}_SRF_2_HR.png", data)
        zf.writestr("Set5/readme.txt", b"not an image")
    server.files["Set5.zip"] = buf.getvalue()
    monkeypatch.setattr(
        datafetch, "sources", lambda key: [Source("https://x/Set5.zip", "Set5", None)]
    )
    root = tmp_path / "data"
    assert "5 images verified and installed" in fetch_benchmark("set5", root)
    assert [s.status for s in verify_benchmark(get_benchmark("set5"), root)] == ["ok"] * 5


def test_import_from_the_users_copy(data_root, tmp_path):
    copy = tmp_path / "my copy" / "nested"
    copy.mkdir(parents=True)
    for name, data in _hr(data_root, "Set14").items():
        (copy / f"page-{name}.png").write_bytes(data)  # any names, any depth
    root = tmp_path / "data"
    result = runner.invoke(app, ["data", "import", "set14", str(tmp_path / "my copy"),
                                 "--data-root", str(root)], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Set14: 14 images verified and installed" in result.stdout
    assert {s.status for s in verify_benchmark(get_benchmark("set14"), root)} == {"ok"}
    # Manga109 from a folder that is not Manga109: named, nothing installed.
    result = runner.invoke(app, ["data", "import", "manga109", str(copy), "--data-root", str(root)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1
    assert "Manga109: 109 of 109 images not found: ARMS, AisazuNihaIrarenai, " in lines[0]
    assert lines[0].endswith("and 104 more; nothing installed")
    assert not (root / "Manga109").exists()


def test_manga109_is_never_downloaded(tmp_path):
    with pytest.raises(DataError, match=r"srbench data import manga109 FOLDER"):
        fetch_benchmark("manga109", tmp_path)
