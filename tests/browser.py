"""A real headless Chromium (the Debian `chromium` package) driven over the DevTools protocol.

Enough for the console's tests: open a page, wait for its load event, read the DOM, collect
every console message, uncaught exception and browser log entry of level error (failed
resource loads, Content-Security-Policy violations), and take a screenshot. The protocol is
spoken over aiohttp's WebSocket client, which the gateway already depends on.

    async with Browser.start(tmp_path) as browser:
        page = await browser.open("http://127.0.0.1:9464/")
        assert page.errors == [] and "edoc-gateway" in page.html
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    explicit = os.environ.get("EDOC_CHROMIUM")
    if explicit:
        return explicit
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


@dataclass
class Page:
    url: str
    html: str
    title: str
    errors: list[str] = field(default_factory=list)
    screenshot: bytes | None = None


class Browser:
    def __init__(self, process: subprocess.Popen[bytes], ws_url: str,
                 session: aiohttp.ClientSession, ws: Any) -> None:
        self._process = process
        self._ws_url = ws_url
        self._session = session
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, profile: Path) -> AsyncIterator[Browser]:
        binary = find_chromium()
        if binary is None:
            raise FileNotFoundError("chromium")
        process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            ws_url = await asyncio.to_thread(_devtools_url, process)
            session = aiohttp.ClientSession()
            http_base = ws_url.split("/devtools/")[0].replace("ws://", "http://")
            async with session.get(http_base + "/json/list") as resp:
                targets = await resp.json(content_type=None)
            page = next(t for t in targets if t.get("type") == "page")
            ws = await session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
            browser = cls(process, ws_url, session, ws)
            try:
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await browser.call(f"{domain}.enable")
                yield browser
            finally:
                await browser.close()
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr:
                process.stderr.close()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self._ws.close()
        await self._session.close()

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._pending:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(str(data["error"])))
                else:
                    future.set_result(data.get("result", {}))
            elif "method" in data:
                self._events.put_nowait(data)

    async def call(self, method: str, **params: Any) -> Any:
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        return await asyncio.wait_for(future, 60)

    async def open(self, url: str, *, screenshot: bool = False) -> Page:
        """Navigate, wait for the load event, and report what went wrong on the way."""
        while not self._events.empty():
            self._events.get_nowait()
        errors: list[str] = []
        await self.call("Page.navigate", url=url)
        while True:
            event = await asyncio.wait_for(self._events.get(), 60)
            _collect(event, errors)
            if event["method"] == "Page.loadEventFired":
                break
        # Anything reported right after the load (late subresources) is collected too.
        await self.call("Runtime.evaluate", expression="1")
        while not self._events.empty():
            _collect(self._events.get_nowait(), errors)
        html = (await self.call("Runtime.evaluate", expression="document.documentElement."
                                "outerHTML", returnByValue=True))["result"]["value"]
        title = (await self.call("Runtime.evaluate", expression="document.title",
                                 returnByValue=True))["result"]["value"]
        image = None
        if screenshot:
            shot = await self.call("Page.captureScreenshot", format="png",
                                   captureBeyondViewport=False)
            image = base64.b64decode(shot["data"])
        return Page(url, html, title, errors, image)


def _collect(event: dict[str, Any], errors: list[str]) -> None:
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert",
                                                                       "warning"):
        errors.append(f"console.{params['type']}: " + " ".join(
            str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
    elif method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        errors.append(f"exception: {details.get('text')} "
                      f"{details.get('exception', {}).get('description', '')}")
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error",
                                                                                 "warning"):
        entry = params["entry"]
        errors.append(f"log.{entry.get('level')}: {entry.get('text')} {entry.get('url', '')}")
    elif method == "Network.loadingFailed":
        errors.append(f"network: {params.get('errorText')} {params.get('blockedReason', '')}")
    elif method == "Network.responseReceived":
        status = params.get("response", {}).get("status", 200)
        if status >= 400:
            errors.append(f"http {status}: {params['response'].get('url')}")


def _devtools_url(process: subprocess.Popen[bytes]) -> str:
    assert process.stderr is not None
    seen = []
    for raw in process.stderr:
        line = raw.decode(errors="replace")
        seen.append(line)
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            # Keep draining stderr so Chromium never blocks on a full pipe.
            _drain(process)
            return found.group(1)
    raise RuntimeError("chromium exited before DevTools was listening:\n" + "".join(seen[-20:]))


def _drain(process: subprocess.Popen[bytes]) -> None:
    import threading

    def run() -> None:
        assert process.stderr is not None
        for _ in process.stderr:
            pass

    threading.Thread(target=run, daemon=True).start()
