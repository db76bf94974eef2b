"""What comes back: `LLMResponse` with normalised `Usage` and finish reason."""

from __future__ import annotations

import operator
from typing import Literal

from pydantic import BaseModel, Field

from schemas.agents import ToolCall, absent
from schemas.catalog import Provider
from schemas.request import Message
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
    tool_calls: list[ToolCall] = Field(default_factory=list, exclude_if=operator.not_)
    """The calls the model made (finish_reason "tool_calls"), in its order; left out of the JSON when none."""
    reasoning: str | None = Field(default=None, exclude_if=absent)
    """The model's reasoning text, where its provider returns it (kept apart from `content`)."""
    reasoning_signature: str | None = Field(default=None, exclude_if=absent)
    """Anthropic's signature of that reasoning: sent back with the next turn's assistant message."""

    def message(self) -> Message:
        """This answer as the assistant message of the conversation's next turn (tool calls and reasoning with it)."""
        return Message(
            role="assistant",
            content=self.content,
            tool_calls=self.tool_calls or None,
            reasoning=self.reasoning,
            reasoning_signature=self.reasoning_signature,
        )
