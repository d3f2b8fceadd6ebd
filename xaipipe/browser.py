"""Headless Chromium driven over the DevTools protocol on a pipe (standard library only).

The static pages of the report stage (``results/index.html``, the comparison pages) are checked in a real
browser: :class:`Chromium` starts ``chromium --headless --remote-debugging-pipe`` with a fresh profile,
:meth:`Chromium.page` opens a tab that records every console error, uncaught exception and failed resource
load, and :class:`Page` navigates (``file://`` URLs work: this is how a person opens the pages), evaluates
JavaScript, waits for conditions and takes screenshots. Used by the tests, ``bench/compare_page.py`` and
``scripts/screenshots.py``.

Protocol: ``--remote-debugging-pipe`` makes Chromium read JSON commands from file descriptor 3 and write
replies and events to descriptor 4, each message ended by a NUL byte.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .errors import XaipipeError

#: the flags of a quiet, reproducible headless browser (no first-run UI, no background traffic)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-pipe"]


def find_chromium() -> str | None:
    """Path of a Chromium-like browser on PATH (``chromium``, ``chromium-browser``, ``google-chrome``)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser process; use as a context manager (the profile folder is removed on exit)."""

    def __init__(self, executable: str | None = None, timeout: float = 60.0):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise XaipipeError("no Chromium on this machine (Debian: apt-get install chromium)")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="xaipipe-chromium-")
        cmd_r, cmd_w = os.pipe()  # we write commands -> browser reads fd 3
        ev_r, ev_w = os.pipe()    # browser writes fd 4 -> we read
        # copies above the low numbers, so that moving them onto 3 and 4 in the child cannot clobber each other
        hi_r, hi_w = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 100), fcntl.fcntl(ev_w, fcntl.F_DUPFD, 100)
        os.close(cmd_r)
        os.close(ev_w)

        def child_fds():  # runs in the child before exec (and before the other descriptors are closed)
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        try:
            self.proc = subprocess.Popen([self.executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, pass_fds=(3, 4), preexec_fn=child_fds)
        finally:
            os.close(hi_r)
            os.close(hi_w)
        self._out = os.fdopen(cmd_w, "wb", buffering=0)
        self._in = os.fdopen(ev_r, "rb", buffering=0)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: "queue.Queue[dict]" = queue.Queue()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.pages: dict[str, Page] = {}
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(iter(self.proc.stderr.readline, b"")),
                         daemon=True).start()
        self.version = self.send("Browser.getVersion")["product"]

    # --- transport ---------------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(1 << 16)
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    page = self.pages.get(msg.get("sessionId", ""))
                    if page is not None:
                        page._event(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Send one command and wait for its reply; a protocol error raises :class:`XaipipeError`."""
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = b"".join(self._stderr[-20:]).decode(errors="replace")
                    raise XaipipeError(f"Chromium did not answer {method} (exit {self.proc.poll()}): {tail}")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise XaipipeError(f"Chromium: {method} failed: {reply['error'].get('message')}")
        return reply.get("result", {})

    # --- tabs ----------------------------------------------------------------------------------------------
    def page(self, width: int = 1280, height: int = 900) -> "Page":
        """A new tab (viewport ``width`` x ``height`` CSS pixels) recording console errors and failed loads."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        self.pages[session] = page
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=session)
        return page

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", timeout=5)
                except XaipipeError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fh in (self._out, self._in):
                try:
                    fh.close()
                except OSError:
                    pass
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab. ``problems`` lists console errors, uncaught exceptions and failed loads, as text."""

    def __init__(self, browser: Chromium, session: str, target: str):
        self.browser, self.session, self.target = browser, session, target
        self.problems: list[str] = []
        self.console: list[str] = []
        self.requests: dict[str, str] = {}  # requestId -> url
        self.loaded_urls: list[str] = []
        self._load = threading.Event()

    def _event(self, msg: dict) -> None:
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console.append(f"{p.get('type')}: {text}")
            if p.get("type") in ("error", "assert"):
                self.problems.append(f"console.{p.get('type')}: {text}")
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            desc = (d.get("exception") or {}).get("description") or d.get("text")
            self.problems.append(f"uncaught exception: {desc} ({d.get('url', '')}:{d.get('lineNumber')})")
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") == "error":
                self.problems.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
        elif m == "Network.requestWillBeSent":
            self.requests[p.get("requestId")] = p.get("request", {}).get("url", "")
        elif m == "Network.loadingFinished":
            self.loaded_urls.append(self.requests.get(p.get("requestId"), ""))
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            self.problems.append(f"failed load: {self.requests.get(p.get('requestId'), '?')} ({p.get('errorText')})")
        elif m == "Page.loadEventFired":
            self._load.set()

    def send(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def goto(self, url: str | os.PathLike, timeout: float = 60.0) -> float:
        """Navigate (a path becomes a ``file://`` URL) and wait for the load event; seconds it took."""
        if not str(url).startswith(("file:", "http:", "https:", "about:", "data:")):
            url = Path(url).resolve().as_uri()
        self._load.clear()
        t0 = time.perf_counter()
        reply = self.send("Page.navigate", {"url": str(url)})
        if reply.get("errorText"):
            raise XaipipeError(f"Chromium could not open {url}: {reply['errorText']}")
        if not self._load.wait(timeout):
            raise XaipipeError(f"{url} did not finish loading within {timeout:.0f} s")
        return time.perf_counter() - t0

    def eval(self, expression: str, timeout: float | None = None) -> Any:
        """Value of a JavaScript expression (promises are awaited); a thrown error raises."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise XaipipeError(f"JavaScript error: {(d.get('exception') or {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, poll: float = 0.02) -> Any:
        """Poll until ``expression`` is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise XaipipeError(f"timed out after {timeout:.0f} s waiting for: {expression}")
            time.sleep(poll)

    def screenshot(self, path: str | os.PathLike, full_page: bool = False, max_height: int = 4000) -> Path:
        """PNG of the viewport (or of the whole page, up to ``max_height`` pixels)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            w, h = self.eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": min(h, max_height),
                                                            "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path
