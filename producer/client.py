"""`LLMClient`: what a service imports to call any model through the fleet."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import TracebackType
from typing import Self

from redis.asyncio import Redis

from producer.jobs import JobScripts
from producer.replies import ReplyHub
from schemas.codec import decode_outcome
from schemas.errors import LLMError, RequestConflictError, RequestNotFoundError, ResultTimeoutError
from schemas.keys import Field, State
from schemas.request import LLMRequest, validate_for_model
from schemas.response import LLMResponse
from schemas.settings import FleetSettings

__all__ = ["LLMClient"]

_WORKER_ALIVE_S = 10.0  # a worker whose heartbeat is older than this is not counted as serving


class LLMClient:
    """Submit requests to the fleet and wait for their results.

    async with LLMClient() as client:
        resp = await client.complete(LLMRequest(model="gpt-4.1-mini", messages=[...]))
    """

    def __init__(self, redis_url: str | None = None, *, settings: FleetSettings | None = None) -> None:
        self.settings = settings or FleetSettings()
        if redis_url is not None:
            self.settings = self.settings.model_copy(update={"redis_url": redis_url})
        self.keys = self.settings.keys
        self.client_id = uuid.uuid4().hex
        self._redis: Redis | None = None
        self._scripts: JobScripts | None = None
        self._replies: ReplyHub | None = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def connect(self) -> None:
        redis = Redis.from_url(self.settings.redis_url, health_check_interval=0)
        self._scripts = JobScripts(redis)
        self._replies = ReplyHub(redis, self.keys.reply(self.client_id))
        await self._replies.start()
        self._redis = redis

    async def aclose(self) -> None:
        if self._replies is not None:
            await self._replies.close()
        if self._redis is not None:
            await self._redis.aclose()
        self._redis = self._replies = self._scripts = None

    async def complete(self, request: LLMRequest, *, timeout: float | None = None) -> LLMResponse:
        """Submit `request` and wait for its response (at most `timeout`, default LLM_REQUEST_TIMEOUT)."""
        replies = self._connected()[2]
        future = replies.expect(request.request_id)
        try:
            early = await self._submit(request)
            if early is not None:
                return _unwrap(early)
            return await self._await(request.request_id, future, timeout)
        finally:
            replies.forget(request.request_id, future)

    async def submit(self, request: LLMRequest) -> str:
        """Validate and enqueue `request`; return its request_id at once."""
        await self._submit(request)
        return request.request_id

    async def result(self, request_id: str, *, timeout: float | None = None) -> LLMResponse:
        """Wait for the response of a submitted request (raises its typed error if it failed)."""
        _, scripts, replies = self._connected()
        future = replies.expect(request_id)
        try:
            reply = await scripts.wait(request_key=self.keys.request(request_id), reply=replies.channel)
            if reply[0] == b"missing":
                raise RequestNotFoundError(request_id)
            if reply[0] == b"done":
                return _unwrap(decode_outcome(reply[1]))
            return await self._await(request_id, future, timeout)
        finally:
            replies.forget(request_id, future)

    async def _submit(self, request: LLMRequest) -> LLMResponse | LLMError | None:
        """Enqueue (or attach to an identical earlier submission); a finished outcome if there is one."""
        _, scripts, replies = self._connected()
        info = validate_for_model(request)
        reply = await scripts.submit(
            request_key=self.keys.request(request.request_id),
            queue_key=self.keys.queue(info.provider),
            reply=replies.channel,
            request_id=request.request_id,
            body=request.model_dump_json(),
            digest=request.digest(),
            provider=info.provider.value,
            now=time.time(),
            ttl_s=int(self.settings.request_timeout_s) + self.settings.result_ttl_s,
        )
        if reply[0] == b"conflict":
            raise RequestConflictError(request.request_id)
        if reply[0] == b"done":
            return decode_outcome(reply[1])
        return None

    async def _await(
        self, request_id: str, future: asyncio.Future[LLMResponse | LLMError], timeout: float | None
    ) -> LLMResponse:
        wait_s = self.settings.request_timeout_s if timeout is None else timeout
        try:
            outcome = await asyncio.wait_for(asyncio.shield(future), wait_s)
        except TimeoutError:
            raise await self._timeout_error(request_id, wait_s) from None
        return _unwrap(outcome)

    async def _timeout_error(self, request_id: str, waited_s: float) -> ResultTimeoutError:
        redis = self._connected()[0]
        state, provider = await redis.hmget(  # type: ignore[misc]
            self.keys.request(request_id), [Field.STATE, Field.PROVIDER]
        )
        provider_name = provider.decode() if provider else "?"
        workers = await redis.zcount(self.keys.workers(provider_name), time.time() - _WORKER_ALIVE_S, "+inf")
        queued = state == State.QUEUED.encode()
        where = "still queued" if queued else f"{(state or b'gone').decode()}"
        return ResultTimeoutError(
            f"no result for {request_id!r} after {waited_s:g}s: the request is {where}; "
            f"{workers} live {provider_name} worker(s) serve its queue",
            request_id=request_id,
            queued=queued,
            workers=workers,
        )

    def _connected(self) -> tuple[Redis, JobScripts, ReplyHub]:
        if self._redis is None or self._scripts is None or self._replies is None:
            raise RuntimeError("LLMClient is not connected: use `async with LLMClient() as client:`")
        return self._redis, self._scripts, self._replies


def _unwrap(outcome: LLMResponse | LLMError) -> LLMResponse:
    if isinstance(outcome, LLMError):
        raise outcome
    return outcome
