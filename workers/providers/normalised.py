"""The normalised response every adapter builds from its provider's answer."""

from __future__ import annotations

import time

from schemas.catalog import Provider
from schemas.request import LLMRequest
from schemas.response import FinishReason, LLMResponse, Usage

__all__ = ["response"]


def response(
    request: LLMRequest,
    provider: Provider,
    model: str,
    content: str,
    usage: Usage,
    finish_reason: FinishReason,
    started: float,
) -> LLMResponse:
    """The normalised response; `started` is the `time.perf_counter()` taken just before the provider call."""
    return LLMResponse(
        content=content,
        usage=usage,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        provider=provider,
        model=model,
        finish_reason=finish_reason,
        request_id=request.request_id,
        trace_id=request.trace_id,
        source_agent=request.source_agent,
        session_id=request.session_id,
    )
