"""`LLMClient`: what a service imports to call any model through the fleet."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import structlog
from pydantic_core import PydanticSerializationError
from redis.asyncio import Redis

from jobstore import Field, Intake, Keys, State, connect, riding_out
from jobstore.budgets import Budgets
from jobstore.policy import PolicyStore
from producer.channels import ChannelHub
from producer.governance import Governance
from producer.streams import DEADLINE_GRACE_S, read_events
from schemas.codec import decode_outcome, encode_error
from schemas.errors import (
    BudgetExceededError,
    FleetUnavailableError,
    InvalidRequestError,
    LLMError,
    QueueFullError,
    RequestCancelledError,
    RequestConflictError,
    RequestNotFoundError,
    ResultTimeoutError,
    error_from_dict,
)
from schemas.events import TERMINAL, DoneEvent, ErrorEvent, StreamEvent
from schemas.request import LLMRequest, deprecation, digest_of, validate_for_model, with_replacements
from schemas.response import LLMResponse
from schemas.settings import FleetSettings

__all__ = ["LLMClient"]

log = structlog.get_logger("llm_fleet.producer")

Outcome = LLMResponse | LLMError
_WARNED: set[str] = set()  # the deprecated models this process has warned of


class LLMClient:
    """Submit requests to the fleet, wait for their results, follow their streams.

    async with LLMClient() as client:
        resp = await client.complete(LLMRequest(model="gpt-4.1-mini", messages=[...]))
    """

    def __init__(self, redis_url: str | None = None, *, settings: FleetSettings | None = None) -> None:
        self.settings = settings or FleetSettings()
        if redis_url is not None:
            self.settings = self.settings.model_copy(update={"redis_url": redis_url})
        self.keys = Keys(self.settings.key_prefix)
        self.client_id = uuid.uuid4().hex
        self.reply_channel = self.keys.reply(self.client_id)
        self._redis: Redis | None = None
        self._scripts: Intake | None = None
        self._hub: ChannelHub | None = None
        self._waiters: dict[str, set[asyncio.Future[Outcome]]] = {}
        self._governance: Governance | None = None
        self._submitting: collections.Counter[str] = collections.Counter()  # submits under way, by request_id

    @property
    def policy(self) -> PolicyStore | None:
        """The allowed-models policy this client follows (`policy.current`), and changes (`policy.change`)."""
        return None if self._governance is None else self._governance.store

    @property
    def budgets(self) -> Budgets | None:
        """The daily budgets per source_agent (`budgets.set`, `budgets.show`)."""
        return None if self._governance is None else self._governance.budgets

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def connect(self) -> None:
        redis = connect(self.settings.redis_url)
        # the channels' connection has no silent retry: a drop must reach the hub, which resubscribes and
        # has us re-read what was published meanwhile
        hub = ChannelHub(connect(self.settings.redis_url, retries=0))
        hub.on_reconnect.append(self._recheck_waiters)
        governance = Governance(redis, self.keys, self.settings)
        try:
            await riding_out(redis.ping)  # credentials Redis refuses fail here, typed, at once
            await hub.subscribe(self.reply_channel, self._deliver)
            await governance.follow(hub)
        except BaseException:  # Redis away for longer than we ride out, or the caller gave up: close what we made
            await hub.close()
            await redis.aclose()
            raise
        self._redis, self._scripts, self._hub, self._governance = redis, Intake(redis, self.keys), hub, governance

    async def aclose(self) -> None:
        if self._hub is not None:
            await self._hub.close()
        if self._redis is not None:
            await self._redis.aclose()
        self._redis = self._scripts = self._hub = self._governance = None

    # -- requests and results -------------------------------------------------------------------

    async def complete(self, request: LLMRequest, *, timeout: float | None = None) -> LLMResponse:
        """Submit `request` and wait for its response (at most `timeout`, default LLM_REQUEST_TIMEOUT)."""
        future = self._expect(request.request_id)
        self._submitting[request.request_id] += 1
        try:
            try:
                early = await self._submit(request, timeout)
            finally:
                self._submitting[request.request_id] -= 1
                if not self._submitting[request.request_id]:
                    del self._submitting[request.request_id]
            if early is not None:
                return _unwrap(early)
            budget = self.settings.request_timeout_s if timeout is None else timeout
            # the worker enforces the deadline and reports it typed; wait a little longer to hear it
            return _unwrap(await self._await(request.request_id, future, budget + DEADLINE_GRACE_S))
        finally:
            self._forget(request.request_id, future)

    async def submit(self, request: LLMRequest) -> str:
        """Validate and enqueue `request`; return its request_id at once."""
        await self._submit(request)
        return request.request_id

    async def result(self, request_id: str, *, timeout: float | None = None) -> LLMResponse:
        """Wait for the response of a submitted request (raises its typed error if it failed)."""
        future = self._expect(request_id)
        try:
            early, _ = await self._attach(request_id)
            return _unwrap(early if early is not None else await self._await(request_id, future, timeout))
        finally:
            self._forget(request_id, future)

    # -- streams --------------------------------------------------------------------------------

    async def stream(self, request: LLMRequest, *, timeout: float | None = None) -> AsyncGenerator[str]:
        """Submit a streaming request and yield its text as it arrives; raises the typed error if it fails."""
        async with contextlib.aclosing(self.events(request, timeout=timeout)) as events:
            async for event in events:
                if event.type == "delta":
                    yield event.text
                elif event.type == "error":
                    raise error_from_dict(event.error)
                elif event.type == "cancelled":
                    raise RequestCancelledError(f"request {request.request_id!r} was cancelled")

    def events(self, request: LLMRequest, *, timeout: float | None = None) -> AsyncGenerator[StreamEvent]:
        """Submit a streaming request and yield its typed events, ending with done, error or cancelled."""
        request = request if request.stream else request.model_copy(update={"stream": True})
        return self._follow(request.request_id, timeout, submit=request)

    def subscribe(self, request_id: str, *, timeout: float | None = None) -> AsyncGenerator[StreamEvent]:
        """Attach to an existing streaming request: every event from the first, in order, once."""
        return self._follow(request_id, timeout, submit=None)

    async def _follow(
        self, request_id: str, timeout: float | None, *, submit: LLMRequest | None
    ) -> AsyncGenerator[StreamEvent]:
        redis, _, hub = self._connected()
        wait_s = self.settings.request_timeout_s if timeout is None else timeout

        ours = submit is not None  # queued (or joined) by this call: stopped if the caller stops reading
        deadline_at = time.time() + wait_s if submit is not None else 0.0

        async def start() -> StreamEvent | None:
            """Submit (or check the request exists); a finished request's outcome as a terminal event."""
            nonlocal ours, deadline_at
            if submit is None:
                outcome, deadline_at = await self._attach(request_id)
            else:
                try:
                    outcome = await self._submit(submit, timeout)
                except LLMError as exc:  # refused, nothing queued: the request (if any) is another caller's
                    ours = isinstance(exc, FleetUnavailableError)  # Redis away: the submit may have landed
                    raise
            if outcome is None:
                return None
            if isinstance(outcome, LLMError):
                return ErrorEvent(seq=1, error=outcome.to_dict())
            return DoneEvent(seq=1, response=outcome)

        events = read_events(
            redis,
            hub,
            channel=self.keys.tokens(request_id),
            events_key=self.keys.events(request_id),
            timeout_s=wait_s,
            start=start,
            deadline_at=lambda: deadline_at,
        )
        ended = False
        try:
            async for event in events:
                ended = event.type in TERMINAL
                yield event
        except TimeoutError:
            raise await self._timeout_error(request_id, wait_s) from None
        finally:
            await events.aclose()
            if not ended and ours:  # the caller stopped reading: stop the request
                await asyncio.shield(self.cancel(request_id))

    async def choose(self, request: LLMRequest) -> LLMRequest:
        """`request` as it would be queued: with the model the fleet chooses when it names none (its tier or
        complexity among the models the policy allows, on the providers that are ready), and why."""
        self._connected()
        assert self._governance is not None
        return await self._governance.choose(request) if not request.model else request

    async def cancel(self, request_id: str) -> bool:
        """Cancel a request: a queued one never reaches a provider; a running one's provider call is
        stopped within a second. False when it had already finished (or does not exist)."""
        redis, scripts, _ = self._connected()
        key = self.keys.request(request_id)
        provider: bytes | None = await riding_out(lambda: redis.hget(key, Field.PROVIDER))  # type: ignore[arg-type,return-value]
        if provider is None:
            return False
        error = RequestCancelledError(f"request {request_id!r} was cancelled", request_id=request_id)
        state = await riding_out(lambda: self._cancel(scripts, request_id, provider.decode(), error))
        return state in ("cancelled", "cancelling")

    # -- internals ------------------------------------------------------------------------------

    async def _cancel(self, scripts: Intake, request_id: str, provider: str, error: LLMError) -> str:
        return await scripts.cancel(
            request_id=request_id,
            provider=provider,
            now=time.time(),
            ttl_s=self.settings.result_ttl_s,
            outcome=encode_error(error),
            stream_ttl_s=self.settings.stream_ttl_s,
        )

    async def _submit(self, request: LLMRequest, timeout: float | None = None) -> Outcome | None:
        """Enqueue (or attach to an identical earlier submission); the finished outcome if there is one.
        The request's deadline is now + `timeout` (default LLM_REQUEST_TIMEOUT), across queueing, retries
        and fallbacks."""
        _, scripts, _ = self._connected()
        asked = request  # its digest tells a resubmission from a conflict, whatever was chosen for it
        if not request.model and self._governance is not None:
            request = await self._governance.choose(request)
        if self.settings.retired_models == "replace":
            request = with_replacements(request)
        info = validate_for_model(request)
        for model in (info, *(validate_for_model(request, fallback) for fallback in request.fallbacks)):
            if model.id not in _WARNED and (notice := deprecation(model)):  # once per process and model
                _WARNED.add(model.id)
                log.warning("model_deprecated", model=model.id, notice=notice)
            if self._governance is not None and not self._governance.store.permits(model):
                await self._governance.refuse(request, model)
        try:
            body = request.model_dump_json()
        except PydanticSerializationError:  # text that is not Unicode: a lone surrogate (undecodable input)
            raise InvalidRequestError(
                "the request holds text that is not valid Unicode (a lone surrogate, as undecodable bytes become)"
            ) from None
        now = time.time()
        budget = self.settings.request_timeout_s if timeout is None else timeout
        reply = await riding_out(
            lambda: scripts.submit(
                reply=self.reply_channel,
                request_id=request.request_id,
                body=body,
                digest=digest_of(body) if request is asked else asked.digest(),
                provider=info.queue,
                model=info.id,
                agent=request.source_agent,
                now=now,
                ttl_s=int(budget) + self.settings.result_ttl_s,
                deadline_at=now + budget,
                max_depth=self.settings.max_queue_depth,
            ),
            budget,
        )
        if reply[0] == b"conflict":
            raise RequestConflictError(request.request_id)
        if reply[0] == b"budget":
            spent, budget = float(reply[1]), float(reply[2])
            raise BudgetExceededError(str(request.source_agent), spent_usd=spent, budget_usd=budget)
        if reply[0] == b"full":
            raise QueueFullError(
                f"the {info.queue} queue is full ({int(reply[1])} requests waiting); retry later",
                provider=info.queue,
                depth=int(reply[1]),
                retry_after=1.0,
            )
        return decode_outcome(reply[1]) if reply[0] == b"done" else None

    async def _attach(self, request_id: str) -> tuple[Outcome | None, float]:
        """The request's outcome if it has one (else our reply channel is added to it), and its deadline."""
        _, scripts, _ = self._connected()
        reply = await riding_out(
            lambda: scripts.attach(request_id=request_id, reply=self.reply_channel),
            self.settings.request_timeout_s,
        )
        if reply[0] == b"missing":
            raise RequestNotFoundError(request_id)
        if reply[0] == b"done":
            return decode_outcome(reply[1]), 0.0
        return None, float(reply[2] or 0)

    def _expect(self, request_id: str) -> asyncio.Future[Outcome]:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, set()).add(future)
        return future

    def _forget(self, request_id: str, future: asyncio.Future[Outcome]) -> None:
        waiting = self._waiters.get(request_id)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._waiters[request_id]

    def _deliver(self, data: bytes) -> None:
        request_id, _, raw = data.partition(b"\n")
        self._resolve(request_id.decode(), decode_outcome(raw))

    def _resolve(self, request_id: str, outcome: Outcome) -> None:
        for future in self._waiters.pop(request_id, ()):
            if not future.done():
                future.set_result(outcome)

    async def _recheck_waiters(self) -> None:
        """After a reconnect: a result may have been published while we were away; read each one."""
        await asyncio.gather(*(self._recheck(request_id) for request_id in list(self._waiters)))

    async def _recheck(self, request_id: str) -> None:
        try:
            outcome, _ = await self._attach(request_id)  # rides out Redis still coming back
        except RequestNotFoundError as exc:
            if request_id in self._submitting:  # not there yet: its submit is still riding out the outage
                return
            outcome = exc
        except Exception as exc:  # noqa: BLE001 (one waiter's failure must not stop the others' re-reads)
            log.warning("recheck_failed", request_id=request_id, error=repr(exc))
            return
        if outcome is not None:
            self._resolve(request_id, outcome)

    async def _await(self, request_id: str, future: asyncio.Future[Outcome], timeout: float | None) -> Outcome:
        wait_s = self.settings.request_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(wait_s):
                return await future
        except TimeoutError:
            raise await self._timeout_error(request_id, wait_s) from None

    async def _timeout_error(self, request_id: str, waited_s: float) -> ResultTimeoutError:
        redis = self._connected()[0]
        key = self.keys.request(request_id)
        state, provider = await riding_out(lambda: redis.hmget(key, [Field.STATE, Field.PROVIDER]))  # type: ignore[arg-type,return-value]
        provider_name = provider.decode() if provider else "?"
        workers_key = self.keys.workers(provider_name)
        seconds, micros = await riding_out(redis.time)  # the heartbeats are on Redis's clock
        alive_since = seconds + micros / 1e6 - self.settings.dead_after_s
        workers = await riding_out(lambda: redis.zcount(workers_key, alive_since, "+inf"))
        queued = state == State.QUEUED.encode()
        where = "still queued" if queued else (state or b"gone").decode()
        # REDIS_URL's default may be somebody else's Redis: with no worker, say which one this was
        on = "" if workers else f" on {_address(self.settings.redis_url)}"
        return ResultTimeoutError(
            f"no result for {request_id!r} after {waited_s:g}s: the request is {where}; "
            f"{workers} live {provider_name} worker(s) serve its queue{on}",
            request_id=request_id,
            queued=queued,
            workers=workers,
        )

    def _connected(self) -> tuple[Redis, Intake, ChannelHub]:
        if self._redis is None or self._scripts is None or self._hub is None:
            raise RuntimeError("LLMClient is not connected: use `async with LLMClient() as client:`")
        return self._redis, self._scripts, self._hub


def _address(url: str) -> str:
    """A Redis URL without its user and password."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _unwrap(outcome: Outcome) -> LLMResponse:
    if isinstance(outcome, LLMError):
        raise outcome
    return outcome
