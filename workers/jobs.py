"""Running one request: read the job, call the provider, store the outcome, log one line."""

from __future__ import annotations

import time

import structlog

from schemas.catalog import ModelInfo, Provider
from schemas.codec import decode_request, encode_error, encode_response
from schemas.errors import InvalidRequestError, LLMError, ProviderUnavailableError
from schemas.request import LLMRequest, validate_for_model
from schemas.response import LLMResponse
from workers.providers.base import Adapter
from workers.queue import WorkerQueue

__all__ = ["Executor"]

log = structlog.get_logger("llm_fleet.worker")


class Executor:
    """Runs the requests one worker claims, against one provider adapter."""

    def __init__(self, queue: WorkerQueue, adapter: Adapter) -> None:
        self.queue = queue
        self.adapter = adapter
        self.provider = Provider(queue.provider)

    async def run(self, request_id: str) -> None:
        started = await self.queue.start(request_id)
        if started is None:
            log.info("request_skipped", request_id=request_id, reason="not runnable (done or expired)")
            return
        t0 = time.perf_counter()
        request: LLMRequest | None = None
        try:
            request = decode_request(started.body)
            response = await self.adapter.complete(request, self._model(request))
        except LLMError as exc:
            await self._finish(request_id, request, encode_error(exc), t0, error=exc)
        except Exception as exc:  # an adapter bug must still end the request, typed
            log.exception("adapter_failed", request_id=request_id)
            err = ProviderUnavailableError(f"{self.provider} call failed: {type(exc).__name__}", provider=self.provider)
            await self._finish(request_id, request, encode_error(err), t0, error=err)
        else:
            await self._finish(request_id, request, encode_response(response), t0, response=response)

    def _model(self, request: LLMRequest) -> ModelInfo:
        info = validate_for_model(request)
        if info.provider is not self.provider:
            raise InvalidRequestError(f"model {request.model!r} is served by {info.provider}, not {self.provider}")
        return info

    async def _finish(
        self,
        request_id: str,
        request: LLMRequest | None,
        outcome: str,
        t0: float,
        *,
        response: LLMResponse | None = None,
        error: LLMError | None = None,
    ) -> None:
        stored = await self.queue.finish(request_id, outcome)
        fields: dict[str, object] = {
            "request_id": request_id,
            "provider": self.provider.value,
            "latency_ms": round((time.perf_counter() - t0) * 1000, 2),
            "outcome": "ok" if error is None else type(error).__name__,
            "stored": stored,
        }
        if request is not None:
            fields.update(
                trace_id=request.trace_id,
                model=request.model,
                source_agent=request.source_agent,
                session_id=request.session_id,
            )
        if response is not None:
            fields.update(
                prompt_tokens=response.usage.prompt_tokens, completion_tokens=response.usage.completion_tokens
            )
        if error is not None:
            fields["error"] = error.message
        log.info("request_done", **fields)
