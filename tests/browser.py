"""Headless Chromium for the tests: finding it, running it once (screenshot, PDF, DOM), and a
DevTools-protocol session for pages that do work after loading (the verifier page).

Found on PATH as Debian's `chromium` (or named by EVLEDGER_CHROMIUM). Without it a test using
`needs_chromium` skips, except under CI=true: .ci/run installs it there, so a missing browser
is a broken set-up and fails.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from proof_api.pdf import find_chromium
from tests.ci import in_ci


CHROMIUM = find_chromium()  # the one the product prints PDFs with
_NO_CHROMIUM = "no headless Chromium binary found (install Debian's `chromium`, or set EVLEDGER_CHROMIUM); this check"
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio")


def needs_chromium(test):
    if CHROMIUM is not None:
        return test
    if in_ci():
        @functools.wraps(test)
        def missing(*args, **kwargs):
            pytest.fail(f"{_NO_CHROMIUM} cannot run under CI=true")
        return missing
    return pytest.mark.skip(reason=f"{_NO_CHROMIUM} is skipped")(test)


def run_chromium(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=120, env=None if env is None else {**os.environ, **env})


class DevTools:
    """`with DevTools(tmp_path, url) as page:` a page opened in headless Chromium, driven over
    the DevTools protocol: `page.call(method, **params)`, `page.evaluate(expression)` (a
    promise is awaited). --dump-dom would not wait for work a page does after loading."""

    def __init__(self, tmp_path: Path, url: str, timeout: float = 180):
        self.tmp_path, self.url, self.deadline = tmp_path, url, time.monotonic() + timeout
        self._id = 0

    def __enter__(self) -> "DevTools":
        from websockets.sync.client import connect

        # stderr to a file, read for the port: a pipe nobody reads later could fill and stall Chromium.
        self.log = self.tmp_path / "chromium-devtools.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([CHROMIUM, *_FLAGS, f"--user-data-dir={self.tmp_path / 'chromium-profile'}",
                                          "--remote-debugging-port=0", self.url], stdout=subprocess.DEVNULL, stderr=log)
        try:
            port = None
            while port is None:
                found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", self.log.read_text())
                port = found and int(found.group(1))
                assert port or self.proc.poll() is None, f"Chromium exited: {self.log.read_text()[-2000:]}"
                assert port or time.monotonic() < self.deadline, "Chromium did not listen for DevTools"
                if not port:
                    time.sleep(0.05)
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t["type"] == "page")
            self._stack = contextlib.ExitStack()
            self.ws = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
            while not self.evaluate("location.href !== 'about:blank' && document.readyState === 'complete'"):
                assert time.monotonic() < self.deadline, "the page did not load"
                time.sleep(0.1)
        except BaseException:
            self.__exit__()
            raise
        return self

    def call(self, method: str, **params) -> dict:
        self._id += 1
        ident = self._id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            answer = json.loads(self.ws.recv(timeout=max(1.0, self.deadline - time.monotonic())))
            if answer.get("id") == ident:
                assert "error" not in answer, answer["error"]
                return answer["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def set_files(self, selector: str, paths: list[Path]) -> None:
        """Choose files in an <input type=file>, as a user would."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])

    def __exit__(self, *exc) -> None:
        if getattr(self, "_stack", None) is not None:
            self._stack.close()
        self.proc.kill()
        self.proc.wait()
