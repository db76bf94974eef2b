"""The control channel: what a provider's workers are told at once (`cancel ID`).

A worker follows its channel for as long as it runs. redis-py reconnects and resubscribes by itself after
an error; every renewed subscription is reported (`resubscribed`), as it may have missed messages. A
connection that a NAT or a proxy dropped without a word gives no error, only silence: after `quiet_s`
without a message the channel is PINGed, and after as long again without an answer it is dropped, so the
next read reconnects (and resubscribes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

__all__ = ["follow"]

log = structlog.get_logger("llm_fleet.worker")

_RETRY_S = 0.2


async def follow(
    control: PubSub,
    *,
    quiet_s: float,
    cancel: Callable[[str], None],
    resubscribed: Callable[[], Awaitable[None]],
) -> None:
    """Read `control` (subscribed, its first confirmation read) until cancelled."""
    pinged = False
    while True:
        try:
            message = await control.get_message(timeout=quiet_s)
            if message is None:
                if pinged:
                    log.warning("control_silent", quiet_s=quiet_s)
                    assert control.connection is not None
                    await control.connection.disconnect()
                else:
                    await control.ping()
                pinged = not pinged
                continue
            pinged = False
            if message["type"] == "subscribe":
                await resubscribed()
            elif message["type"] == "message":
                verb, _, arg = message["data"].decode().partition(" ")
                if verb == "cancel":
                    cancel(arg)
        except (RedisError, OSError):
            pinged = False
            await asyncio.sleep(_RETRY_S)
