"""The demo report as a person sees it: opened in headless Chromium.

Chromium (Debian's ``chromium`` package) is driven through its DevTools protocol over a pipe
(``--remote-debugging-pipe``), so neither a driver binary nor a Python package beyond the
standard library is needed. The test builds a report, loads ``index.html`` from disk, waits for
the load event, then checks that every ``<img>`` loaded (``complete`` and ``naturalWidth > 0``),
that no console error, uncaught exception or failed resource load was logged, that every
in-page link points at an element of the page, and saves a full-page screenshot that must not
be blank. Skipped when Chromium is not installed (``make chromium`` installs it on Debian).
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from captum_latent.report import build_report, register_section, unregister_section

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

_PAGE_STATE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({
      src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth})),
  links: Array.from(document.querySelectorAll('a[href^="#"]')).map(a => ({
      href: a.getAttribute('href'),
      ok: document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1))) !== null
  })),
  sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
  figcaptions: Array.from(document.querySelectorAll('figure')).map(
      f => (f.querySelector('figcaption') || {textContent: ''}).textContent.trim()),
  height: document.documentElement.scrollHeight
})"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (Debian: `make chromium` or "
                "`apt-get install chromium`)")


class _DevTools:
    """Minimal Chrome DevTools protocol client over ``--remote-debugging-pipe``.

    Chromium reads NUL-terminated JSON commands from its fd 3 and writes replies and events to
    its fd 4.
    """

    def __init__(self, executable: str, profile: Path, width: int = 1200, height: int = 900):
        profile.mkdir(parents=True, exist_ok=True)
        self._log = profile / "chromium-stderr.log"  # a file: a full pipe would block Chromium
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # bash (dash takes one-digit fds only) maps our pipe ends onto the browser's fds 3 and 4,
        # then becomes the browser
        log = self._log.open("wb")
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}',
             executable, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL, stderr=log,
        )
        log.close()
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply from Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    err = self._log.read_text(errors="replace")
                    raise RuntimeError(f"Chromium closed the DevTools pipe:\n{err[-3000:]}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, session: str, timeout: float = 60.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            self.events.append(message)
            if message.get("method") == method and message.get("sessionId") == session:
                return message

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass


def _console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                  for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("exception: " + str(details.get("exception", {}).get(
                "description", details.get("text"))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


def inspect_page(html_path: Path, screenshot: Path) -> dict[str, Any]:
    """Open ``html_path`` in headless Chromium; return the page state, errors and screenshot."""
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    browser = _DevTools(_chromium(), Path(profile.name))
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": html_path.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired", session)
        state = json.loads(browser.send("Runtime.evaluate", {
            "expression": _PAGE_STATE, "returnByValue": True}, session=session)["result"]["value"])
        metrics = browser.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"],
                     "height": min(size["height"], 16000), "scale": 1}}, session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        state["errors"] = _console_errors(browser.events)
        return state
    finally:
        browser.close()
        profile.cleanup()


def _assert_not_blank(png: Path) -> None:
    from PIL import Image

    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG"
    image = Image.open(io.BytesIO(data)).convert("L")
    assert image.width >= 600 and image.height >= 600, image.size
    low, high = image.getextrema()
    colours = len(image.getcolors(maxcolors=1 << 16) or range(1 << 16))
    assert high - low > 100 and colours > 16, "the screenshot is blank"


def _assert_page_ok(state: dict[str, Any], sections: list[str]) -> None:
    assert state["sections"] == sections
    assert state["images"], "the report shows no images"
    broken = [i["src"] for i in state["images"] if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    dangling = [link["href"] for link in state["links"] if not link["ok"]]
    assert not dangling, f"in-page links to missing anchors: {dangling}"
    assert all(state["figcaptions"]), "a figure has no caption"
    assert not state["errors"], f"console errors: {state['errors']}"


def test_report_of_a_cheap_section_renders_in_chromium(tmp_path):
    """One quick section (seconds); its "see also" link to the zoo section, which is not
    built, must not dangle. The full report is the slow test below."""
    _chromium()
    names = ["leg_tv"]
    result = build_report(tmp_path / "report", sections=names, quick=True)
    assert result.ok, result.failed
    shot = tmp_path / "report.png"
    state = inspect_page(result.path, shot)
    _assert_page_ok(state, names)
    _assert_not_blank(shot)


@pytest.mark.slow
def test_full_quick_report_renders_in_chromium(tmp_path):
    """Every registered section (quick mode), as ``python -m captum_latent demo --quick``."""
    _chromium()
    from captum_latent.report import discover_sections, registered_sections

    assert not discover_sections()
    names = [s.name for s in registered_sections()]
    result = build_report(tmp_path / "report", quick=True)
    assert result.ok, result.failed
    shot = tmp_path / "report.png"
    state = inspect_page(result.path, shot)
    _assert_page_ok(state, names)
    _assert_not_blank(shot)


def test_the_check_catches_broken_images_and_console_errors(tmp_path):
    """The checks above are not vacuous: a missing figure and a console error are reported."""
    _chromium()
    import matplotlib.pyplot as plt

    def broken(writer):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        writer.figure(fig, "fine", caption="A figure that loads")
        writer.html('<figure><img src="figures/missing.png" alt="gone">'
                    "<figcaption>A figure whose file is missing</figcaption></figure>")
        writer.html("<script>console.error('boom from the page')</script>")

    register_section("t_browser_broken", "Broken", order=990)(broken)
    try:
        result = build_report(tmp_path / "report", sections=["t_browser_broken"])
    finally:
        unregister_section("t_browser_broken")
    state = inspect_page(result.path, tmp_path / "broken.png")
    loaded = {i["src"]: i["complete"] and i["width"] > 0 for i in state["images"]}
    assert loaded == {"figures/t_browser_broken_fine.png": True, "figures/missing.png": False}
    assert any("boom from the page" in e for e in state["errors"]), state["errors"]
    assert any("missing.png" in e for e in state["errors"]), state["errors"]
