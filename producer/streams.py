"""Reading one request's stream: the live channel merged with the kept copy, in order, exactly once.

The worker sends each event twice: XADD to `{prefix}:events:{id}` (kept for replay), then PUBLISH on
`{prefix}:tokens:{id}` (live). A reader subscribes (while it submits the request: the two go out
together), then reads the kept copy from the start, then follows the channel: whatever was published
before its subscription took effect had been kept before it was published. Events carry a sequence
number: the merge drops what it has already yielded, and refills from the kept copy whenever it sees a
gap (after a reconnect, say).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable

from redis.asyncio import Redis

from jobstore import riding_out
from producer.channels import ChannelHub
from schemas.events import TERMINAL, StreamEvent, decode_event

__all__ = ["DEADLINE_GRACE_S", "read_events"]

DEADLINE_GRACE_S = 0.5  # how long past a request's deadline a reader waits to hear the worker's verdict
_CLOCKS_S = 0.05  # how far apart the caller's and the worker's clocks may tell a deadline


async def read_events(
    redis: Redis,
    hub: ChannelHub,
    *,
    channel: str,
    events_key: str,
    timeout_s: float,
    start: Callable[[], Awaitable[StreamEvent | None]],
    deadline_at: Callable[[], float] = lambda: 0.0,
) -> AsyncGenerator[StreamEvent]:
    """Yield a request's events from the first to its terminal one.

    `start` runs while the live channel is being subscribed (it submits the request, or checks it
    exists); the terminal event it may return is used when nothing was kept (the stream's copy expired).
    `timeout_s` bounds the wait for each next event (`TimeoutError`), except just after the request's own
    deadline (`deadline_at`, unix seconds, 0: none): its worker is ending it then, typed, and the reader waits
    up to `DEADLINE_GRACE_S` longer for that outcome.
    """
    live = _Live(timeout_s, deadline_at)

    async def refill() -> None:  # after a reconnect, what was published meanwhile is in the kept copy
        live.put(None)

    hub.on_reconnect.append(refill)
    try:
        _, fallback = await asyncio.gather(hub.subscribe(channel, live.put), start())
        pending, last_id = await _kept(redis, events_key, "-")
        if not pending and fallback is not None:
            pending = [fallback]
        next_seq = 1
        while True:
            for event in pending:
                if event.seq == next_seq:
                    yield event
                    next_seq += 1
                    if event.type in TERMINAL:
                        return
            raw = await live.get()
            live_event = None if raw is None else decode_event(raw)
            if live_event is not None and live_event.seq <= next_seq:
                pending = [live_event]
            else:  # a gap, or a reconnect: take what was kept since
                pending, last_id = await _kept(redis, events_key, last_id)
    finally:
        live.close()
        hub.on_reconnect.remove(refill)
        await hub.unsubscribe(channel, live.put)


class _Live:
    """The live channel's messages for one reader, in arrival order (None: re-read the kept copy). `get`
    waits at most `timeout_s` for the next; one timer watches every wait of the stream, re-armed only when
    it fires early, so a message costs no timer of its own."""

    def __init__(self, timeout_s: float, deadline_at: Callable[[], float]) -> None:
        self._loop = asyncio.get_running_loop()
        self._deadline_at = deadline_at
        self._messages: deque[bytes | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_since = 0.0
        self._timeout_s = timeout_s
        self._timer: asyncio.TimerHandle | None = None

    def put(self, message: bytes | None) -> None:
        self._messages.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> bytes | None:
        """The next message; `TimeoutError` after `timeout_s` without one."""
        if not self._messages:
            self._waiting_since = self._loop.time()
            if self._timer is None:
                self._timer = self._loop.call_at(self._waiting_since + self._timeout_s, self._check)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._messages.popleft()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _check(self) -> None:
        """The timer fired: fail the wait that has lasted `timeout_s`, or watch again until the current
        wait's end (none waiting: from now)."""
        waiter, now = self._waiter, self._loop.time()
        if waiter is None or waiter.done():
            self._timer = self._loop.call_at(now + self._timeout_s, self._check)
        elif now - self._waiting_since >= self._timeout_s:
            deadline = self._deadline_at()
            past = time.time() - deadline  # how long ago the request's own deadline passed
            if deadline and -_CLOCKS_S <= past < DEADLINE_GRACE_S:  # its outcome is on its way: wait for it
                self._timer = self._loop.call_at(now + DEADLINE_GRACE_S - past, self._check)
                return
            waiter.set_exception(TimeoutError())
            self._timer = None
        else:
            self._timer = self._loop.call_at(self._waiting_since + self._timeout_s, self._check)


async def _kept(redis: Redis, key: str, after: str) -> tuple[list[StreamEvent], str]:
    entries = await riding_out(lambda: redis.xrange(key, min="-" if after == "-" else f"({after}"))
    if not entries:
        return [], after
    return [decode_event(fields[b"e"]) for _, fields in entries], entries[-1][0].decode()
