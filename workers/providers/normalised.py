"""The normalised response every adapter builds from its provider's answer, and the stream items beside text."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from schemas.agents import ToolCall
from schemas.catalog import Provider
from schemas.request import LLMRequest, Message
from schemas.response import FinishReason, LLMResponse, Usage

__all__ = ["ReasoningDelta", "ToolCallDelta", "ToolCalls", "response", "turns"]


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: its `id` and `name` come with its first piece, its arguments in
    fragments (the JSON text, cut anywhere)."""

    index: int
    id: str | None
    name: str | None
    arguments: str
    signature: str | None = None
    """The provider's signature of the call, on its first piece when it signs calls (Gemini)."""


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning text, streamed apart from its answer."""

    text: str


class ToolCalls:
    """The tool calls of one answer, assembled from their pieces in the order the model made them."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments fragments...]
        self._signatures: dict[int, str] = {}

    def add(self, delta: ToolCallDelta) -> ToolCallDelta:
        call = self._calls.setdefault(delta.index, ["", ""])
        call[0] = delta.id or call[0]
        call[1] = delta.name or call[1]
        call.append(delta.arguments)
        if delta.signature is not None:
            self._signatures[delta.index] = delta.signature
        return delta

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(id=call[0], name=call[1], arguments="".join(call[2:]), signature=self._signatures.get(index))
            for index, call in sorted(self._calls.items())
        ]

    def __len__(self) -> int:
        return len(self._calls)


def response(
    request: LLMRequest,
    provider: Provider,
    model: str,
    content: str,
    usage: Usage,
    finish_reason: FinishReason,
    started: float,
    *,
    tool_calls: list[ToolCall] | None = None,
    reasoning: str | None = None,
    reasoning_signature: str | None = None,
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
        tool_calls=tool_calls or [],
        reasoning=reasoning or None,
        reasoning_signature=reasoning_signature or None,
    )


def turns(messages: Sequence[Message]) -> Iterator[Message | list[Message]]:
    """The conversation as Anthropic and Gemini take it: system messages left out (they go apart), and each run
    of tool results as one list (one user turn, right after the assistant's calls)."""
    run: list[Message] = []
    for m in messages:
        if m.role == "tool":
            run.append(m)
            continue
        if run:
            yield run
            run = []
        if m.role != "system":
            yield m
    if run:
        yield run
