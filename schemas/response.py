"""What comes back: `LLMResponse` with normalised `Usage` and finish reason."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from schemas.catalog import Provider
from schemas.selection import Selection

__all__ = ["FinishReason", "LLMResponse", "Usage"]

FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "other"]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


class LLMResponse(BaseModel):
    content: str
    usage: Usage
    latency_ms: float
    provider: Provider
    model: str
    """The model id the provider reports."""
    finish_reason: FinishReason
    request_id: str
    trace_id: str
    source_agent: str | None = None
    session_id: str | None = None
    fallback_from: str | None = None
    """The model the request asked for, when a fallback model served it instead."""
    model_requested: str | None = None
    """The model the caller named, when it was retired and its replacement served the request."""
    cost_usd: float | None = None
    """What the call cost, from its usage and the catalog's prices (None: a price the catalog lacks)."""
    selection: Selection | None = None
    """How the fleet chose the model, when the request named none."""
