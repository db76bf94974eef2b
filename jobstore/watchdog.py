"""The one rule for a connection gone silent: a Redis that must answer and does not is dropped, so the next
step connects anew.

A server gone without a word (a failover that moved its address, a proxy whose backend vanished, a NAT that
forgot an idle connection) leaves no error on a connection, only silence. Two kinds of connection can be
silent:

- a pub/sub connection (a caller's channel hub, a worker's control channel) sends nothing of its own, so
  after `quiet_s` of hearing nothing it is PINGed, and when no answer comes within `quiet_s` more it is
  disconnected; its reader reconnects and resubscribes (`watch_subscription`);
- a command connection of the lane has a time by which Redis must have answered (the command's own blocking
  time plus `Lane.answer_s`); once one is overdue, the pool's connections are dropped (`watch_commands`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from jobstore.lane import Lane

__all__ = ["watch_commands", "watch_subscription"]

log = structlog.get_logger("llm_fleet.redis")

_ALIVE = b"llm-fleet:alive"  # the PING a quiet subscription is sent, to learn that its connection answers


async def watch_subscription(
    pubsub: PubSub,
    *,
    quiet_s: float,
    heard_at: Callable[[], float],
    paused: Callable[[], bool] = lambda: False,
    event: str,
) -> None:
    """Until cancelled: after `quiet_s` without a reply (`heard_at`: the loop's time of the last one the reader
    took), PING; no reply within `quiet_s` more, and the connection is dropped (logged as `event`). Nothing
    happens while `paused()` (the reader is reconnecting: a PING would connect too)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(quiet_s)
        if paused() or loop.time() - heard_at() < quiet_s:
            continue
        asked = loop.time()
        with contextlib.suppress(RedisError, OSError):
            await pubsub.ping(_ALIVE)
        await asyncio.sleep(quiet_s)
        if heard_at() < asked and not paused() and pubsub.connection is not None:
            log.warning(event, silent_s=round(loop.time() - heard_at(), 1))
            await pubsub.connection.disconnect()


async def watch_commands(lane: Lane, *, every_s: float, worker_id: str) -> None:
    """Until cancelled: every `every_s`, drop the lane's connections when a command is overdue."""
    while True:
        await asyncio.sleep(every_s)
        try:
            overdue = await lane.drop_silent()
        except Exception:
            log.warning("redis_watch_failed", worker_id=worker_id, exc_info=True)
            continue
        if overdue:
            log.warning("redis_silent", worker_id=worker_id, overdue=overdue, answer_s=lane.answer_s)
