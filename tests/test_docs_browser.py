"""/docs in a real headless Chromium against the real server: the page renders, lists every
route, and "Try it out" on GET /status shows a 200. Driven over the Chrome DevTools protocol with
the websockets package uvicorn[standard] already brings; skipped where Chromium is not installed."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from conftest import EMPTY_STATUS

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
)

# No network but loopback: no component updates, sync, QUIC probes or first-run pages.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1500",
    "--remote-debugging-port=0",
]


class Page:
    """One browser tab, spoken to over the DevTools protocol, one command at a time."""

    def __init__(self, socket, session: str):
        self.socket, self.session, self.ids = socket, session, itertools.count(1)

    def send(self, method: str, **params) -> dict:
        message_id = next(self.ids)
        message = {"id": message_id, "method": method, "params": params}
        self.socket.send(
            json.dumps(message | ({"sessionId": self.session} if self.session else {}))
        )
        while True:  # events arrive in between; only our answer matters
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == message_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)[
            "result"
        ].get("value")

    def wait_for(self, expression: str, seconds: float = 20):
        deadline = time.monotonic() + seconds
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
            time.sleep(0.1)
        return value


@contextlib.contextmanager
def chromium(tmp_path: Path):
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) == 2):
            assert process.poll() is None and time.monotonic() < deadline, "Chromium did not start"
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as socket:
            yield socket
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def open_page(socket, url: str) -> Page:
    browser = Page(socket, None)
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    page = Page(
        socket, browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    )
    page.send("Page.enable")
    page.send("Page.navigate", url=url)
    return page


def listed_operations(page: Page) -> set[tuple[str, str]]:
    return {
        (path, method.lower())
        for method, path in page.evaluate(
            "[...document.querySelectorAll('.opblock-summary')].map(s => ["
            "s.querySelector('.opblock-summary-method').textContent,"
            "s.querySelector('.opblock-summary-path').dataset.path])"
        )
    }


def test_docs_page_lists_routes_and_tries_get_status(server, tmp_path):  # noqa: F811
    document = httpx.get(f"{server}/openapi.json").json()
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    with chromium(tmp_path) as socket:
        page = open_page(socket, f"{server}/docs")
        page.wait_for("document.querySelectorAll('.opblock').length > 0")
        assert listed_operations(page) == documented
        shown_tags = page.evaluate(
            "[...document.querySelectorAll('.opblock-tag')].map(t => t.dataset.tag)"
        )
        assert shown_tags == [tag["name"] for tag in document["tags"]]
        # Swagger UI's id of an operation: its tag, then its operationId
        status = "document.querySelector('#operations-operations-get_status')"
        page.evaluate(f"{status}.querySelector('.opblock-summary-control').click()")
        page.wait_for(f"!!{status}.querySelector('.try-out__btn')")
        page.evaluate(f"{status}.querySelector('.try-out__btn').click()")
        page.wait_for(f"!!{status}.querySelector('.execute')")
        page.evaluate(f"{status}.querySelector('.execute').click()")
        shown = page.wait_for(
            f"{status}.querySelector('.live-responses-table tr.response .response-col_status')?.textContent"
        )
        body = page.evaluate(
            f"{status}.querySelector('.live-responses-table .microlight')?.textContent"
        )
        png = base64.b64decode(
            page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        )
    (tmp_path / "docs.png").write_bytes(png)
    assert shown.strip() == "200"
    assert json.loads(body) == EMPTY_STATUS
    assert png.startswith(b"\x89PNG")
