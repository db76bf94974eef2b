"""A lean command path over redis-py's own connections, for the few commands on a request's hot path.

`Redis.execute_command` spends most of its time per command outside the socket: the connection pool's
lock and its probe of the socket, the retry wrapper and the reply callbacks (a PING costs 78 µs of CPU that
way on the benchmark machine, 43 µs on a connection of our own). A `Lane` keeps its own free list of the
pool's connections (the same URL, password, TLS and hiredis parser) and sends each command on one of them,
packed by hiredis in C (redis-py's asyncio connections pack in Python, several times slower), or several
commands in one write (`pipeline`, `run_after`: a script that runs the moment a blocking command is served).

The lane's connections belong to the client's pool, counted as in use there, so closing the client (or
its pool) closes them too. A connection that fails disconnects itself (redis-py does that on any error,
cancellation included) and reconnects on its next command, and so does one that finds its server turned
into a read-only replica (a failover: the URL may point to the new primary by now); the callers ride out
`AWAY` as a Redis restart (`jobstore.outage`), since every step they send is safe to repeat. Both the callers
and the workers use it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from jobstore.scripts import Script

__all__ = ["AWAY", "REFUSED", "Lane", "connect"]

T = TypeVar("T")

AWAY: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError, ReadOnlyError)
"""What a Redis restart or failover looks like to a client, to be waited out: a dropped or refused
connection, a timeout, a server still loading its data (redis-py's `BusyLoadingError` is a
`ConnectionError`), or a primary that has become a read-only replica (READONLY: its writes are refused whole,
a script's at its first write, so a step refused that way did nothing). Not `REFUSED`, which redis-py words
as a `ConnectionError` too: check for it first."""

REFUSED: tuple[type[Exception], ...] = (AuthenticationError, AuthorizationError)
"""Redis refused our credentials (NOAUTH, WRONGPASS: a missing or wrong password, an unknown ACL user): final,
never waited out."""


class _Retry(Retry):
    """redis-py's retry of a command on a new connection, except after a refusal of our credentials."""

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]) -> T:
        async def failed(error: RedisError) -> None:
            await fail(error)
            if isinstance(error, REFUSED):
                raise error

        return await super().call_with_retry(do, failed)


def connect(url: str, *, retries: int = 20) -> Redis:
    """The Redis client both sides build from REDIS_URL: no health-check PING before commands, and a command
    whose connection failed is sent again on a new one, `retries` times with backoff (capped at 1 s: about
    15 s of a restart), except after a refusal of our credentials. No I/O until the first command."""
    client: Redis = Redis.from_url(
        url,
        health_check_interval=0,
        retry=_Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        retry_on_error=list(AWAY),  # redis-py disconnects, then retries
    )
    return client


class Lane:
    """`answer_s`: how long a command may go unanswered (beyond the time it blocks for) before `drop_silent`
    takes its server for gone."""

    def __init__(self, redis: Redis, *, answer_s: float = 5.0) -> None:
        self._pool = redis.connection_pool
        self._free: list[AbstractConnection] = []
        self._busy: dict[AbstractConnection, float] = {}  # in use: the time by which Redis must have answered
        self.answer_s = answer_s

    async def execute(self, *args: EncodableT, blocking_s: float = 0.0) -> Any:
        """One command, its reply as redis-py parses it (no response callbacks: bytes, ints, lists).
        `blocking_s`: how long the command itself may block (BLMOVE's timeout)."""
        [reply] = await self._exchange(hiredis.pack_command(args), 1, blocking_s)  # type: ignore[arg-type]  # its stub types the tuple as one item
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def pipeline(self, *commands: tuple[EncodableT, ...], blocking_s: float = 0.0) -> list[Any]:
        """Several commands in one write on one connection, their replies in order; an error reply takes its
        command's place as a `ResponseError` (returned, not raised: every reply is read). Redis runs a command
        that follows a blocking one as soon as that one is served, so both answer in one round trip."""
        packed = b"".join(hiredis.pack_command(c) for c in commands)  # type: ignore[arg-type]
        return await self._exchange(packed, len(commands), blocking_s)

    async def _exchange(self, packed: bytes, count: int, blocking_s: float) -> list[Any]:
        connection = self._free.pop() if self._free else self._connection()
        self._busy[connection] = time.monotonic() + blocking_s + self.answer_s
        try:
            await connection.send_packed_command(packed, check_health=False)
            replies: list[Any] = []
            for _ in range(count):
                try:
                    replies.append(await connection.read_response())
                except ReadOnlyError:  # refused whole, the writes after it too: the next command connects
                    await connection.disconnect()  # again, to wherever the URL points now
                    raise
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        finally:
            del self._busy[connection]
            self._free.append(connection)

    async def drop_silent(self) -> int:
        """When a command is overdue, disconnect every connection of the pool (the lane's and the client's,
        pub/sub included): a server gone without a word (a failover that moved its address, a proxy whose
        backend vanished) leaves no error on a connection, only silence, and on all of them at once. The
        commands waiting fail with `ConnectionError`, to be retried on new connections. Returns how many
        commands were overdue."""
        now = time.monotonic()
        overdue = sum(answer_by < now for answer_by in self._busy.values())
        if overdue:
            await self._pool.disconnect()
        return overdue

    async def run(self, script: Script, keys: list[str], args: list[EncodableT]) -> Any:
        """A script by its SHA1 (loaded on the first NOSCRIPT, e.g. after a restart emptied Redis's cache)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", script.source)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def run_after(
        self,
        command: tuple[EncodableT, ...],
        script: Script,
        keys: list[str],
        args: list[EncodableT],
        *,
        blocking_s: float,
    ) -> tuple[Any, Any]:
        """`command` (which may block for `blocking_s`), then `script`, in one round trip: Redis runs the
        script the moment the command is done. A script Redis does not know yet (NOSCRIPT: it restarted) is
        loaded and run again on its own, after the command rather than with it."""
        first, second = await self.pipeline(
            command, ("EVALSHA", script.sha, len(keys), *keys, *args), blocking_s=blocking_s
        )
        if isinstance(second, NoScriptError):
            second = await self.run(script, keys, args)
        for reply in (first, second):
            if isinstance(reply, ResponseError):
                raise reply
        return first, second

    def _connection(self) -> AbstractConnection:
        connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        self._pool._in_use_connections.add(connection)  # so that the pool's disconnect closes it (redis-py 5.x)
        return connection
