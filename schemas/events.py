"""Stream events: what a streaming request publishes, one JSON object each, numbered from 1.

Every stream ends with exactly one terminal event: `done`, `error` or `cancelled`. Before it: `delta` (answer
text), `tool_call` (a piece of a tool call: its id and name on its first piece, then fragments of its arguments;
the done event's response holds each call whole) and `reasoning` (the model's reasoning text, where its
provider streams it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from schemas.agents import absent
from schemas.response import LLMResponse, Usage

__all__ = [
    "TERMINAL",
    "CancelledEvent",
    "DeltaEvent",
    "DoneEvent",
    "ErrorEvent",
    "ReasoningEvent",
    "StreamEvent",
    "ToolCallEvent",
    "decode_event",
]


class DeltaEvent(BaseModel):
    type: Literal["delta"] = "delta"
    seq: int
    text: str


class ToolCallEvent(BaseModel):
    """A piece of tool call `index` (0, 1, ... in the answer): `id` and `name` come on its first piece; the
    `arguments` fragments, joined in order, are the call's JSON arguments."""

    type: Literal["tool_call"] = "tool_call"
    seq: int
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    signature: str | None = Field(default=None, exclude_if=absent)
    """The provider's signature of the call (Gemini's `thoughtSignature`), on its first piece, when it signs it."""


class ReasoningEvent(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    seq: int
    text: str


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    seq: int
    response: LLMResponse


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    seq: int
    error: dict[str, Any]
    """`LLMError.to_dict()`: rebuild with `schemas.errors.error_from_dict`."""


class CancelledEvent(BaseModel):
    type: Literal["cancelled"] = "cancelled"
    seq: int
    usage: Usage | None = None
    cost_usd: float | None = None
    """What the tokens streamed before the cancel cost (the prompt's share is not known then)."""


TERMINAL = frozenset({"done", "error", "cancelled"})
"""The event types that end a stream: every stream ends with exactly one of them."""

StreamEvent = Annotated[
    DeltaEvent | ToolCallEvent | ReasoningEvent | DoneEvent | ErrorEvent | CancelledEvent, Field(discriminator="type")
]
_EVENT: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)


def decode_event(raw: str | bytes) -> StreamEvent:
    return _EVENT.validate_json(raw)
