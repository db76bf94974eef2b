"""The control channel: what a provider's workers are told at once (`cancel ID`).

A worker follows its channel for as long as it runs. redis-py reconnects and resubscribes by itself after
an error; every renewed subscription is reported (`resubscribed`), as it may have missed messages. A
connection that a NAT or a proxy dropped without a word gives no error, only silence: the one watchdog
(`jobstore.watchdog`) PINGs it after `quiet_s` of quiet and drops it after as long again without an answer,
so the next read reconnects (and resubscribes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from jobstore.watchdog import watch_subscription

__all__ = ["follow"]

log = structlog.get_logger("llm_fleet.worker")

_RETRY_S = 0.2


async def follow(
    control: PubSub,
    *,
    quiet_s: float,
    cancel: Callable[[str], None],
    resubscribed: Callable[[], Awaitable[None]],
    policy_changed: Callable[[], Awaitable[None]],
) -> None:
    """Read `control` (subscribed, its first confirmation read) until cancelled; `watch_subscription` drops
    it when it goes silent."""
    loop = asyncio.get_running_loop()
    heard = loop.time()
    watching = asyncio.create_task(
        watch_subscription(control, quiet_s=quiet_s, heard_at=lambda: heard, event="control_silent")
    )
    try:
        while True:
            try:
                message = await control.get_message(timeout=quiet_s)
            except (RedisError, OSError):
                await asyncio.sleep(_RETRY_S)  # redis-py reconnects and resubscribes at the next read
                continue
            if message is None:
                continue
            heard = loop.time()
            if message["type"] == "subscribe":
                await resubscribed()
            elif message["type"] == "message":
                verb, _, arg = message["data"].decode().partition(" ")
                if verb == "cancel":
                    cancel(arg)
                elif verb == "policy":  # on its own channel: an operator changed the allowed-models policy
                    await policy_changed()
    finally:
        watching.cancel()
