"""Stream events: what a streaming request publishes, one JSON object each, numbered from 1.

Every stream ends with exactly one terminal event: `done`, `error` or `cancelled`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from schemas.response import LLMResponse, Usage

__all__ = ["TERMINAL", "CancelledEvent", "DeltaEvent", "DoneEvent", "ErrorEvent", "StreamEvent", "decode_event"]


class DeltaEvent(BaseModel):
    type: Literal["delta"] = "delta"
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

StreamEvent = Annotated[DeltaEvent | DoneEvent | ErrorEvent | CancelledEvent, Field(discriminator="type")]
_EVENT: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)


def decode_event(raw: str | bytes) -> StreamEvent:
    return _EVENT.validate_json(raw)
