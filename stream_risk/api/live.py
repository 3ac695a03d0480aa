"""Live warnings for the dashboard: one Redis subscription per worker, fanned out to clients.

The hub subscribes to the sink's live channel once and hands every message to
each connected client's queue; ``GET /events`` writes them as server-sent
events. A client that does not keep up (its queue is full) is disconnected
rather than allowed to hold memory; its browser reconnects and reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from stream_risk.backoff import Backoff, LogGate

log = logging.getLogger(__name__)

#: Messages a client may have pending before it is dropped.
CLIENT_QUEUE = 1000
#: Pushed into a client's queue to end its stream (shutdown or overflow).
_CLOSE = b""


def sse_frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One server-sent event; ``data`` must be a single line (compact JSON is).

    >>> sse_frame("warning", b'{"a":1}', "w-1:firing")
    b'event: warning\\nid: w-1:firing\\ndata: {"a":1}\\n\\n'
    """
    head = f"event: {event}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return head.encode() + b"data: " + data + b"\n\n"


class LiveHub:
    """Fans the live warnings channel out to server-sent-event clients.

    Parameters
    ----------
    url, channel : str
        Redis URL and the sink's live channel.
    on_warning : callable
        Called with every warning (e.g. to remember which customer it belongs to).
    """

    def __init__(
        self, url: str, channel: str, on_warning: Callable[[dict[str, Any]], None]
    ) -> None:
        self.url = url
        self.channel = channel
        self.on_warning = on_warning
        self.clients: set[asyncio.Queue[bytes]] = set()
        self.delivered = 0
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-warnings")

    async def wait_subscribed(self, timeout: float) -> bool:
        """Whether the subscription is up within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for queue in list(self.clients):
            self._close(queue)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[asyncio.Queue[bytes]]:
        """A queue of SSE frames for one connected client, for as long as it is connected."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(CLIENT_QUEUE + 1)
        self.clients.add(queue)
        try:
            yield queue
        finally:
            self.clients.discard(queue)

    def _close(self, queue: asyncio.Queue[bytes]) -> None:
        self.clients.discard(queue)
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(_CLOSE)

    def publish(self, raw: bytes) -> None:
        """Hand one message of the channel to every client."""
        try:
            warning = orjson.loads(raw)
            self.on_warning(warning)
            frame = sse_frame("warning", raw, f"{warning['warning_id']}:{warning['status']}")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring a malformed message on %s", self.channel)
            return
        for queue in list(self.clients):
            if queue.qsize() >= CLIENT_QUEUE:
                log.warning("a live client fell %d warnings behind; disconnecting it", CLIENT_QUEUE)
                self._close(queue)
            else:
                queue.put_nowait(frame)
        self.delivered += 1

    async def _run(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        backoff, gate = Backoff(base=0.5, cap=30.0), LogGate(interval=30.0)
        while True:
            client = aioredis.from_url(self.url, socket_connect_timeout=3, health_check_interval=30)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                backoff.reset()
                gate.reset()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.publish(message["data"])
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                delay = backoff.next()
                if gate.allow(time.monotonic()):
                    log.warning("live warnings: Redis unavailable (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()

    @staticmethod
    def is_close(frame: bytes) -> bool:
        return frame == _CLOSE
