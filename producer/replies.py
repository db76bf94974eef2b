"""One multiplexed subscription per client: the reply channel where workers push finished results.

Messages are `"{request_id}\\n{outcome JSON}"`; each wakes every future waiting on that request_id.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.codec import decode_outcome
from schemas.errors import LLMError
from schemas.response import LLMResponse

__all__ = ["ReplyHub"]

log = structlog.get_logger("llm_fleet.producer")


class ReplyHub:
    def __init__(self, redis: Redis, channel: str) -> None:
        self.channel = channel
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._waiters: dict[str, set[asyncio.Future[LLMResponse | LLMError]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.reconnected = asyncio.Event()

    async def start(self) -> None:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        self._task = asyncio.create_task(self._listen(self._pubsub), name=f"replies:{self.channel}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def expect(self, request_id: str) -> asyncio.Future[LLMResponse | LLMError]:
        """A future the reply for `request_id` will resolve; call `forget` when done with it."""
        future: asyncio.Future[LLMResponse | LLMError] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, set()).add(future)
        return future

    def forget(self, request_id: str, future: asyncio.Future[LLMResponse | LLMError]) -> None:
        waiting = self._waiters.get(request_id)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._waiters[request_id]

    def _deliver(self, data: bytes) -> None:
        request_id, _, raw = data.partition(b"\n")
        waiting = self._waiters.pop(request_id.decode(), None)
        if not waiting:
            return
        outcome = decode_outcome(raw)
        for future in waiting:
            if not future.done():
                future.set_result(outcome)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("reply_channel_lost", channel=self.channel, error=str(exc))
                await self._resubscribe(pubsub)
                continue
            if message is not None and message["type"] == "message":
                self._deliver(message["data"])

    async def _resubscribe(self, pubsub: PubSub) -> None:
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            try:
                await pubsub.connection.disconnect() if pubsub.connection else None
                await pubsub.subscribe(self.channel)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                delay = min(delay * 2, 1.0)
                continue
            log.info("reply_channel_restored", channel=self.channel)
            self.reconnected.set()
            return
