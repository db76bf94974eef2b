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
from collections.abc import AsyncGenerator, Awaitable, Callable

from redis.asyncio import Redis

from producer.channels import ChannelHub
from producer.outage import riding_out
from schemas.events import StreamEvent, decode_event

__all__ = ["read_events"]

_TERMINAL = frozenset({"done", "error", "cancelled"})


async def read_events(
    redis: Redis,
    hub: ChannelHub,
    *,
    channel: str,
    events_key: str,
    timeout_s: float,
    start: Callable[[], Awaitable[StreamEvent | None]],
) -> AsyncGenerator[StreamEvent]:
    """Yield a request's events from the first to its terminal one.

    `start` runs while the live channel is being subscribed (it submits the request, or checks it
    exists); the terminal event it may return is used when nothing was kept (the stream's copy expired).
    `timeout_s` bounds the wait for each next event (`TimeoutError`).
    """
    live: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def refill() -> None:  # after a reconnect, what was published meanwhile is in the kept copy
        live.put_nowait(None)

    hub.on_reconnect.append(refill)
    try:
        _, fallback = await asyncio.gather(hub.subscribe(channel, live.put_nowait), start())
        pending, last_id = await _kept(redis, events_key, "-")
        if not pending and fallback is not None:
            pending = [fallback]
        next_seq = 1
        while True:
            for event in pending:
                if event.seq == next_seq:
                    yield event
                    next_seq += 1
                    if event.type in _TERMINAL:
                        return
            async with asyncio.timeout(timeout_s):
                raw = await live.get()
            live_event = None if raw is None else decode_event(raw)
            if live_event is not None and live_event.seq <= next_seq:
                pending = [live_event]
            else:  # a gap, or a reconnect: take what was kept since
                pending, last_id = await _kept(redis, events_key, last_id)
    finally:
        hub.on_reconnect.remove(refill)
        await hub.unsubscribe(channel)


async def _kept(redis: Redis, key: str, after: str) -> tuple[list[StreamEvent], str]:
    entries = await riding_out(lambda: redis.xrange(key, min="-" if after == "-" else f"({after}"))
    if not entries:
        return [], after
    return [decode_event(fields[b"e"]) for _, fields in entries], entries[-1][0].decode()
