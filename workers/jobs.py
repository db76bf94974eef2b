"""Running one request: read the job, call the provider (or stream from it), store the outcome, log a line."""

from __future__ import annotations

import asyncio
import time

import structlog

from schemas.catalog import ModelInfo, Provider
from schemas.codec import decode_request, encode_error, encode_response
from schemas.errors import InvalidRequestError, LLMError, ProviderUnavailableError, RequestCancelledError
from schemas.events import CancelledEvent, DoneEvent, ErrorEvent
from schemas.request import LLMRequest, validate_for_model
from schemas.response import LLMResponse, Usage
from workers.providers.base import Adapter
from workers.queue import WorkerQueue
from workers.streams import EventPublisher

__all__ = ["Executor"]

log = structlog.get_logger("llm_fleet.worker")


class Executor:
    """Runs the requests one worker claims, against one provider adapter."""

    def __init__(self, queue: WorkerQueue, adapter: Adapter) -> None:
        self.queue = queue
        self.adapter = adapter
        self.provider = Provider(queue.provider)
        self._running: dict[str, asyncio.Task[object]] = {}
        self._cancelled: set[str] = set()

    def cancel(self, request_id: str) -> bool:
        """Stop a request this worker is running (its provider call is closed); False if it runs elsewhere."""
        task = self._running.get(request_id)
        if task is None:
            return False
        self._cancelled.add(request_id)
        task.cancel()
        return True

    async def run(self, request_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running[request_id] = task
        try:
            await self._run(request_id)
        finally:
            self._running.pop(request_id, None)
            self._cancelled.discard(request_id)

    async def _run(self, request_id: str) -> None:
        started = await self.queue.start(request_id)
        if started is None:
            log.info("request_skipped", request_id=request_id, reason="done, cancelled or expired")
            return
        t0 = time.perf_counter()
        request: LLMRequest | None = None
        publisher: EventPublisher | None = None
        try:
            request = decode_request(started.body)
            model = self._model(request)
            if request.stream:
                publisher = EventPublisher(self.queue, request_id)
                response = await self._stream(request, model, publisher)
            else:
                response = await self.adapter.complete(request, model)
        except asyncio.CancelledError:
            if request_id not in self._cancelled:
                raise  # the worker is stopping: the job goes back to the queue
            usage = Usage(completion_tokens=publisher.tokens) if publisher else None
            error = RequestCancelledError(f"request {request_id!r} was cancelled", request_id=request_id)
            await self._finish(request_id, request, error, t0, publisher, CancelledEvent, usage=usage)
        except LLMError as exc:
            await self._finish(request_id, request, exc, t0, publisher, ErrorEvent, error=exc.to_dict())
        except Exception as exc:  # an adapter bug must still end the request, typed
            log.exception("adapter_failed", request_id=request_id)
            err = ProviderUnavailableError(f"{self.provider} call failed: {type(exc).__name__}", provider=self.provider)
            await self._finish(request_id, request, err, t0, publisher, ErrorEvent, error=err.to_dict())
        else:
            await self._finish(request_id, request, response, t0, publisher, DoneEvent, response=response)

    async def _stream(self, request: LLMRequest, model: ModelInfo, publisher: EventPublisher) -> LLMResponse:
        final: LLMResponse | None = None
        chunks = self.adapter.stream(request, model)
        try:
            async for item in chunks:
                if isinstance(item, str):
                    publisher.delta(item)
                else:
                    final = item
        finally:
            await chunks.aclose()
        if final is None:
            raise ProviderUnavailableError(
                f"{self.provider} stream ended without a final response", provider=self.provider
            )
        await publisher.drain()
        return final

    def _model(self, request: LLMRequest) -> ModelInfo:
        info = validate_for_model(request)
        if info.provider is not self.provider:
            raise InvalidRequestError(f"model {request.model!r} is served by {info.provider}, not {self.provider}")
        return info

    async def _finish(
        self,
        request_id: str,
        request: LLMRequest | None,
        outcome: LLMResponse | LLMError,
        t0: float,
        publisher: EventPublisher | None,
        event: type[DoneEvent | ErrorEvent | CancelledEvent],
        **event_fields: object,
    ) -> None:
        encoded = encode_error(outcome) if isinstance(outcome, LLMError) else encode_response(outcome)
        terminal = None
        if publisher is not None:
            await publisher.close()
            terminal = publisher.terminal(event, **event_fields)
        stored = await self.queue.finish(request_id, encoded, terminal)
        self._log(request_id, request, outcome, t0, stored)

    def _log(
        self, request_id: str, request: LLMRequest | None, outcome: LLMResponse | LLMError, t0: float, stored: bool
    ) -> None:
        fields: dict[str, object] = {
            "request_id": request_id,
            "provider": self.provider.value,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
            "stored": stored,
        }
        if request is not None:
            fields.update(
                trace_id=request.trace_id,
                model=request.model,
                stream=request.stream,
                source_agent=request.source_agent,
                session_id=request.session_id,
            )
        if isinstance(outcome, LLMError):
            fields.update(outcome=type(outcome).__name__, error=outcome.message)
        else:
            fields.update(
                outcome="ok",
                prompt_tokens=outcome.usage.prompt_tokens,
                completion_tokens=outcome.usage.completion_tokens,
            )
        log.info("request_done", **fields)
