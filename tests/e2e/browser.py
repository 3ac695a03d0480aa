"""Headless Chromium driven over the Chrome DevTools Protocol (no browser download).

Starts Debian's ``chromium`` with ``--remote-debugging-port=0``, reads the port
it chose from ``DevToolsActivePort`` in its profile directory, and talks to the
page target over a websocket (aiohttp). Enough for a test: open a page, run
JavaScript, wait for a condition, click an element like a mouse, take a
screenshot, and collect JavaScript errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_HINT = "install Debian's chromium: apt-get install -y chromium (docker/test.sh does)"


def chromium_path() -> str:
    """The system Chromium, or an ``AssertionError`` saying how to install it."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(f"chromium is not installed: {CHROMIUM_HINT}")


class Page:
    """One browser tab, driven over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                future = self.pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description", str(details)))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result."""
        n = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[n] = future
        await self.ws.send_json({"id": n, "method": method, "params": params})
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises are awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(0.25)

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", 30, f"{url} to load")

    async def _centre(self, selector: str) -> dict[str, float]:
        box = await self.evaluate(
            f"""(() => {{
                const e = document.querySelector({json.dumps(selector)});
                if (!e) return null;
                e.scrollIntoView({{block: "center"}});
                const r = e.getBoundingClientRect();
                return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
            }})()"""
        )
        if not box:
            raise AssertionError(f"nothing matches {selector}")
        return dict(box)

    async def _mouse(self, kind: str, at: dict[str, float]) -> None:
        await self.call(
            "Input.dispatchMouseEvent",
            type=kind,
            x=at["x"],
            y=at["y"],
            button="left" if kind != "mouseMoved" else "none",
            clickCount=1 if kind != "mouseMoved" else 0,
        )

    async def move(self, x: float, y: float) -> None:
        """Move the mouse pointer to ``x``, ``y`` (CSS pixels of the viewport)."""
        await self._mouse("mouseMoved", {"x": x, "y": y})

    async def click(self, selector: str) -> None:
        """Click the centre of the element matching ``selector`` as a mouse does.

        The pointer moves there first and the element is measured again, as a page
        may react to the pointer (hover) before the click.
        """
        await self._mouse("mouseMoved", await self._centre(selector))
        at = await self._centre(selector)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self._mouse(kind, at)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def chromium(profile: Path, width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """A headless Chromium with one blank page; stopped on exit."""
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            chromium_path(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.is_file() and active.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not start (exit code {proc.poll()})")
            await asyncio.sleep(0.1)
        port = int(active.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with session.ws_connect(page_url, max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Runtime.enable")
                try:
                    yield page
                finally:
                    page.reader.cancel()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
