"""
Tests for the live mesh page (C{GET /} and C{/ui}, C{axl/bridge/mesh.html}): served
self-contained; and, in a real headless Chromium driven by Selenium (skipped where Debian's
C{chromium} and C{chromium-driver}, or the selenium package, are missing), it draws one element
per known node of an in-process mesh, updates when a peer joins, and a screenshot of the
five-node mesh is saved (in the test's temp dir, and at C{$AXL_SCREENSHOT} if set).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import urllib.request
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from axl.crypto.keys import Identity
from tests.inprocess import InProcessNodesTestCase
from tests.test_e2e_twistd import free_port

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)
PAGE_WAIT = 40.0


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if path:
            return path
    return None


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=15) as response:
        return response.status, dict(response.headers), response.read()


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def ident(name: str) -> Identity:
    return Identity(hashlib.sha256(b"axl-mesh-page-" + name.encode()).digest())


class PageServedTests(InProcessNodesTestCase):
    timeout = 60

    @inlineCallbacks
    def test_served(self):  # type: ignore[no-untyped-def]
        """/ and /ui serve the page: HTML, no external resource, a CSP that forbids any."""
        node = self.start_node("A", {})
        for path in ("/", "/ui"):
            status, headers, body = yield deferToThread(_get, f"http://127.0.0.1:{node.config.api_port}{path}")
            self.assertEqual(status, 200)
            self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
            self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
            self.assertIn("connect-src 'self'", headers["Content-Security-Policy"])
            text = body.decode()
            self.assertTrue(text.startswith("<!DOCTYPE html>"))
            self.assertIn('fetch("/topology")', text)
            self.assertIn('fetch("/metrics")', text)
            self.assertEqual(re.findall(r"(?:src|href)=\"(?:https?:)?//", text), [])
            self.assertNotIn("<link", text)


class BrowserTests(InProcessNodesTestCase):
    """The page in headless Chromium; Selenium runs in a thread so the nodes keep running."""

    timeout = 180

    def setUp(self) -> None:
        try:
            from selenium import webdriver  # noqa: F401
        except ImportError:
            self.skipTest("selenium is not installed (pip install '.[test]')")
        self.chromium = _find(CHROMIUM)
        self.driver_path = _find(DRIVER)
        if self.chromium is None or self.driver_path is None:
            self.skipTest("no headless browser: install Debian's chromium and chromium-driver")

    def browser(self) -> Any:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = self.chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(self.driver_path), options=options)
        self.addCleanup(driver.quit)
        return driver

    def wait_for(self, driver: Any, script: str, expected: Any) -> Any:
        """Poll C{script} in the page until it returns C{expected} (bounded)."""
        deadline = time.monotonic() + PAGE_WAIT
        value = None
        while time.monotonic() < deadline:
            value = driver.execute_script(script)
            if value == expected:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{script!r} is {value!r}, expected {expected!r}")

    @inlineCallbacks
    def test_five_node_mesh(self):  # type: ignore[no-untyped-def]
        listen = f"tcp://127.0.0.1:{free_port()}"
        hub = self.start_node("hub", {"Listen": [listen]}, ident("hub"))
        first = [self.start_node(n, {"Peers": [listen]}, ident(n)) for n in ("b", "c", "d")]
        url = f"http://127.0.0.1:{hub.config.api_port}/?interval=500"
        driver = yield deferToThread(self.browser)
        yield deferToThread(driver.get, url)
        count = "return document.querySelectorAll('#graph g.node').length"
        yield deferToThread(self.wait_for, driver, count, 4)
        keys = "return Array.from(document.querySelectorAll('#graph g.node')).map(g => g.dataset.key).sort()"
        expected = sorted(n.identity.public_key.hex() for n in [hub, *first])
        got = yield deferToThread(driver.execute_script, keys)
        self.assertEqual(got, expected)
        self_node = yield deferToThread(driver.execute_script,
                                        "return document.querySelector('#graph g.node.self').dataset.key")  # fmt: skip
        self.assertEqual(self_node, hub.identity.public_key.hex())

        # A peer joins: the page follows without a reload.
        late = self.start_node("e", {"Peers": [listen]}, ident("e"))
        yield deferToThread(self.wait_for, driver, count, 5)
        got = yield deferToThread(driver.execute_script, keys)
        self.assertEqual(got, sorted(expected + [late.identity.public_key.hex()]))
        peers = yield deferToThread(driver.execute_script,
                                    "return document.querySelectorAll('#graph g.node.peer').length")  # fmt: skip
        self.assertEqual(peers, 4)

        # Traffic shows up in the counters and as a session.
        status = yield deferToThread(_post, f"http://127.0.0.1:{hub.config.api_port}/send", b"hi",
                                     {"X-Destination-Peer-Id": late.identity.public_key.hex()})  # fmt: skip
        self.assertEqual(status, 200)
        sent = "return document.querySelector('dd[data-counter=\"messages sent\"]').textContent"
        yield deferToThread(self.wait_for, driver, sent, "1")
        sessions = "return document.querySelectorAll('#graph path.edge-session').length"
        yield deferToThread(self.wait_for, driver, sessions, 1)

        path = os.path.abspath("mesh-page.png")
        saved = yield deferToThread(driver.save_screenshot, path)
        self.assertTrue(saved)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        if os.environ.get("AXL_SCREENSHOT"):
            shutil.copyfile(path, os.environ["AXL_SCREENSHOT"])
