"""What every provider adapter offers the worker.

An adapter wraps one official async SDK client (one per process, SDK retries off, transport chosen
explicitly). It turns an `LLMRequest` into the SDK call, and the SDK's answer into an `LLMResponse`;
every failure leaves it as a `schemas.errors.ProviderError` subclass, never as an SDK exception.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from schemas.catalog import ModelInfo, Provider
from schemas.request import LLMRequest
from schemas.response import LLMResponse
from workers.providers.normalised import ReasoningDelta, ToolCallDelta

__all__ = ["Adapter", "StreamItem", "trace_headers"]

StreamItem = str | ToolCallDelta | ReasoningDelta | LLMResponse
"""What an adapter's stream yields: text (`str`), pieces of tool calls and of reasoning, then one response."""


class Adapter(Protocol):
    provider: Provider

    async def complete(self, request: LLMRequest, model: ModelInfo) -> LLMResponse:
        """One non-streaming call."""
        ...

    def stream(self, request: LLMRequest, model: ModelInfo) -> AsyncGenerator[StreamItem]:
        """A streaming call: yields each text delta as `str` (and each piece of a tool call or of reasoning as a
        `ToolCallDelta` or `ReasoningDelta`), then exactly one final `LLMResponse` (full content, tool calls,
        usage, finish reason). Closing the iterator closes the provider stream."""
        ...

    async def open(self) -> None:
        """Make the SDK client and its pool before the first request (the worker is ready after this)."""
        ...

    async def aclose(self) -> None: ...


def trace_headers(request: LLMRequest) -> dict[str, str]:
    """The A2A context sent to the provider as request headers (SPEC FR-4.3)."""
    headers = {"X-Trace-Id": request.trace_id}
    if request.source_agent:
        headers["X-Source-Agent"] = request.source_agent
    if request.session_id:
        headers["X-Session-Id"] = request.session_id
    return headers
