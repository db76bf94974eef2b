"""Riding out a Redis restart or failover: a step is retried with backoff until Redis answers, then fails typed.

redis-py's own retry covers an error on an open connection, not a refused reconnect, so every step the
producer sends goes through `riding_out`. Each step is safe to repeat (submit attaches to its own job).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import OutOfMemoryError, RedisError

from redislane import AWAY, REFUSED
from schemas.errors import FleetAccessDeniedError, FleetUnavailableError

__all__ = ["OUTAGE_S", "access_denied", "riding_out"]

OUTAGE_S = 15.0  # the longest a client rides out a Redis restart before it says so
T = TypeVar("T")


async def riding_out(step: Callable[[], Awaitable[T]], budget_s: float = OUTAGE_S) -> T:
    """Run `step`, retrying it for up to `budget_s` (at most `OUTAGE_S`) while Redis cannot be reached, is a
    read-only replica (mid-failover) or does not answer; then a typed `FleetUnavailableError`, as at once
    for a refusal (`FleetAccessDeniedError` for our credentials)."""
    loop = asyncio.get_running_loop()
    delay, give_up = 0.05, loop.time() + min(budget_s, OUTAGE_S)
    while True:
        try:
            async with asyncio.timeout_at(give_up):  # a Redis that stops answering is given up on too
                return await step()
        except REFUSED as exc:  # our credentials: final
            raise access_denied(exc) from None
        except AWAY as exc:
            if loop.time() >= give_up:
                raise FleetUnavailableError(f"cannot reach Redis: {str(exc) or 'no answer in time'}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        except OutOfMemoryError as exc:  # at its maxmemory: back pressure, typed, at once (try again later)
            raise FleetUnavailableError(f"Redis is out of memory: {exc}", retryable=True) from exc
        except RedisError as exc:  # a refusal no wait mends (an ACL, a script Redis rejects): typed, at once
            raise FleetUnavailableError(f"Redis refused: {exc}", retryable=False) from exc


def access_denied(exc: Exception) -> FleetAccessDeniedError:
    return FleetAccessDeniedError(f"Redis refused the user and password in REDIS_URL: {exc}")
