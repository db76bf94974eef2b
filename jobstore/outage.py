"""Riding out a Redis restart or failover, the one way both sides do it: a step is retried with backoff until
Redis answers, for up to a budget.

redis-py's own retry covers an error on an open connection, not a refused reconnect, so every step goes
through `ride_out`. Each step is safe to repeat (a reply lost with the connection means it may have run: a
submit attaches to its own job, a finish finds the job ended). A refusal of our credentials (`REFUSED`) is
final at once. Workers ride out a minute, and a full Redis too (memory frees as results expire); callers ride
out 15 s and hear it typed (`riding_out`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import OutOfMemoryError, RedisError

from jobstore.lane import AWAY, REFUSED
from schemas.errors import FleetAccessDeniedError, FleetUnavailableError

__all__ = ["OUTAGE_S", "access_denied", "ride_out", "riding_out"]

OUTAGE_S = 15.0  # the longest a caller rides out a Redis restart before it says so
T = TypeVar("T")


async def ride_out(
    step: Callable[[], Awaitable[T]],
    budget_s: float,
    *,
    waits_out: tuple[type[Exception], ...] = AWAY,
    bounded: bool = True,
    typed: bool = False,
) -> T:
    """Run `step`, again with backoff (50 ms doubling to 1 s) while it fails with `waits_out`, for up to
    `budget_s`; `bounded`: a step that does not answer within what is left of the budget is given up on too
    (`TimeoutError`; a worker's lane has its watchdog for that instead, and no timer per step). The last error
    is raised once the budget is spent, a refusal of our credentials at once; `typed`: as a caller hears it
    (`fleet_error`)."""
    loop = asyncio.get_running_loop()
    delay, give_up = 0.05, loop.time() + budget_s
    while True:
        try:
            if not bounded:
                return await step()
            async with asyncio.timeout_at(give_up):  # a Redis that stops answering is given up on too
                return await step()
        except waits_out as exc:
            if isinstance(exc, REFUSED) or loop.time() >= give_up:
                if typed:
                    raise fleet_error(exc) from None
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        except RedisError as exc:
            if typed:
                raise fleet_error(exc) from exc
            raise


def riding_out(step: Callable[[], Awaitable[T]], budget_s: float = OUTAGE_S) -> Awaitable[T]:
    """A caller's step: `ride_out` for up to `budget_s` (at most `OUTAGE_S`), then a typed error (a plain
    function: the caller awaits `ride_out` itself, no coroutine of its own in between)."""
    return ride_out(step, min(budget_s, OUTAGE_S), typed=True)


def fleet_error(exc: Exception) -> FleetUnavailableError:
    """What a caller hears of a Redis step that failed for good: Redis away, full, or refusing us."""
    if isinstance(exc, REFUSED):
        return access_denied(exc)
    if isinstance(exc, OutOfMemoryError):  # at its maxmemory: back pressure, typed, at once (try again later)
        return FleetUnavailableError(f"Redis is out of memory: {exc}", retryable=True)
    if isinstance(exc, AWAY):  # a step that did not answer in time is a TimeoutError, an OSError
        return FleetUnavailableError(f"cannot reach Redis: {str(exc) or 'no answer in time'}")
    # a refusal no wait mends (an ACL, a script Redis rejects): typed, at once
    return FleetUnavailableError(f"Redis refused: {exc}", retryable=False)


def access_denied(exc: Exception) -> FleetAccessDeniedError:
    return FleetAccessDeniedError(f"Redis refused the user and password in REDIS_URL: {exc}")
