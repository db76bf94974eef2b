"""How a request's end is written: the outcome as stored with a stream's terminal event, and its log line."""

from __future__ import annotations

import time

import structlog

from schemas.catalog import ModelInfo, Provider, resolve_model
from schemas.codec import encode_error, encode_response
from schemas.errors import LLMError, RequestCancelledError
from schemas.events import CancelledEvent, DoneEvent, ErrorEvent
from schemas.request import LLMRequest
from schemas.response import LLMResponse, Usage
from workers.streams import EventPublisher

__all__ = ["log_outcome", "route_model", "stored_forms"]

log = structlog.get_logger("llm_fleet.worker")


def stored_forms(
    outcome: LLMResponse | LLMError, publisher: EventPublisher | None, model: ModelInfo | None = None
) -> tuple[str, str | None]:
    """The outcome as stored, and a stream's terminal event (a cancelled one priced by `model`)."""
    encoded = encode_error(outcome) if isinstance(outcome, LLMError) else encode_response(outcome)
    if publisher is None:
        return encoded, None
    if isinstance(outcome, RequestCancelledError):
        cost = model.cost(0, publisher.tokens) if model is not None else None
        usage = Usage(completion_tokens=publisher.tokens)
        return encoded, publisher.terminal(CancelledEvent, usage=usage, cost_usd=cost)
    if isinstance(outcome, LLMError):
        return encoded, publisher.terminal(ErrorEvent, error=outcome.to_dict())
    return encoded, publisher.terminal(DoneEvent, response=outcome)


def log_outcome(
    provider: Provider,
    request_id: str,
    request: LLMRequest | None,
    outcome: LLMResponse | LLMError,
    t0: float,
    stored: bool,
) -> None:
    """The one `request_done` line a request ends with (`t0`: `time.perf_counter()` when its run began)."""
    fields: dict[str, object] = {
        "request_id": request_id,
        "provider": provider.value,
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
            served_by=outcome.model,
            cost_usd=outcome.cost_usd,
            model_requested=outcome.model_requested,
            prompt_tokens=outcome.usage.prompt_tokens,
            completion_tokens=outcome.usage.completion_tokens,
        )
    log.info("request_done", **fields)


def route_model(request: LLMRequest | None, route: int) -> ModelInfo | None:
    """The catalog entry of the model a request's route names, to price what it used (None: none to price)."""
    if request is None or not 0 <= route < len(request.routes):
        return None
    try:
        return resolve_model(request.routes[route])
    except LLMError:
        return None
