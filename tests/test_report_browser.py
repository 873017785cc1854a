"""The report in a real browser: headless Chromium loads it offline, every image decodes, and the
console stays clean.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (file
descriptors 3 and 4, NUL-separated JSON), so no Python package beyond the standard library is
needed. Without Chromium the test is skipped locally and fails in CI (``CI=true``); install it
with ``apt-get install -y chromium`` (Debian) or point ``$CHROMIUM`` at a binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from srbench.report import build_report

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
)


def chromium_binary() -> str:
    if os.environ.get("CHROMIUM"):
        found = shutil.which(os.environ["CHROMIUM"])
        if not found:
            pytest.fail(f"$CHROMIUM={os.environ['CHROMIUM']} is not an executable")
        return found
    found = next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return found


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, binary: str, profile: Path):
        self._log = open(profile / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        # Chromium reads commands from fd 3 and writes replies to fd 4; bash puts them there.
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{cmd_r} 4>&{res_w}', "bash", binary, *CHROMIUM_FLAGS,
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._log,
        )  # fmt: skip
        os.close(cmd_r)
        os.close(res_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._res_r], [], [], left)
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the debugging pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:  # fmt: skip
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._cmd_w)
        os.close(self._res_r)
        self._log.close()


_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(img => ({
    src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth})))"""


def open_in_chromium(index: Path, tmp: Path) -> dict:
    """Load ``index`` and return its images, console errors, exceptions and requested URLs."""
    profile = tmp / "chromium-profile"
    profile.mkdir()
    browser = DevTools(chromium_binary(), profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": index.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired", timeout=60)
        evaluate = {"expression": _IMAGES_JS, "returnByValue": True}
        images = json.loads(
            browser.send("Runtime.evaluate", evaluate, session=session)["result"]["value"]
        )
        evaluate = {"expression": "document.title", "returnByValue": True}
        title = browser.send("Runtime.evaluate", evaluate, session=session)["result"]["value"]
    finally:
        browser.close()
    events = browser.events
    console_errors = [
        e["params"]["entry"]
        for e in events
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
    ] + [
        e["params"]
        for e in events
        if e.get("method") == "Runtime.consoleAPICalled"
        and e["params"]["type"] in ("error", "assert")
    ]
    return {
        "title": title,
        "images": images,
        "console_errors": console_errors,
        "exceptions": [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"],
        "requests": [
            e["params"]["request"]["url"]
            for e in events
            if e.get("method") == "Network.requestWillBeSent"
        ],
        "failed": [e["params"] for e in events if e.get("method") == "Network.loadingFailed"],
    }


def test_report_opens_offline_with_every_image_and_no_console_errors(tmp_path):
    from test_report import fake_costs, make_store

    chromium_binary()  # skip (or fail in CI) before doing any work
    root = make_store(tmp_path / "results")
    index = build_report(root, tmp_path / "report", cost_fn=fake_costs, visual_images=2)
    page = open_in_chromium(index, tmp_path)

    assert page["title"] == "srbench report"
    assert len(page["images"]) >= 6  # Pareto plots and crops
    broken = [img["src"] for img in page["images"] if not (img["complete"] and img["width"] > 0)]
    assert broken == [], f"images that did not load: {broken}"
    assert page["console_errors"] == [], page["console_errors"]
    assert page["exceptions"] == []
    assert page["failed"] == []
    outside = [u for u in page["requests"] if not u.startswith(("file://", "data:"))]
    assert outside == [], f"the page asked the network for {outside}"


def test_a_broken_image_is_caught(tmp_path):
    """The check itself works: a missing image file is reported as broken and logged."""
    chromium_binary()
    index = tmp_path / "index.html"
    index.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head>'
                     '<body><img src="img/missing.png" alt="x"></body></html>')  # fmt: skip
    page = open_in_chromium(index, tmp_path)
    assert [img["width"] for img in page["images"]] == [0]
    assert page["console_errors"] or page["failed"]
