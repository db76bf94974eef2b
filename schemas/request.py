"""What a caller asks for: `LLMRequest` and its `Message`s."""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.agents import (
    ContentPart,
    Reasoning,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolChoice,
    absent,
    check_agent_fields,
)
from schemas.catalog import ModelInfo, Provider, Tier, resolve_model
from schemas.errors import InvalidRequestError, ModelRetiredError
from schemas.selection import Complexity, Selection

__all__ = [
    "LLMRequest",
    "Message",
    "deprecation",
    "digest_of",
    "explain",
    "validate_for_model",
    "with_replacements",
]

_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"


class Message(BaseModel):
    """One chat message. `content` is text, or a list of typed parts (text, images). An assistant message may
    carry the `tool_calls` it made (and the `reasoning` that led to them, sent back as the provider needs it);
    a `tool` message is a tool's result, answering the call `tool_call_id`. Fields left unset are left out of
    the JSON, so a text message is written as it always was."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[ContentPart]
    tool_calls: list[ToolCall] | None = Field(default=None, exclude_if=absent)
    tool_call_id: str | None = Field(default=None, exclude_if=absent)
    reasoning: str | None = Field(default=None, exclude_if=absent)
    reasoning_signature: str | None = Field(default=None, exclude_if=absent)
    """Anthropic's signature of the thinking in `reasoning` (opaque): thinking is sent back with its tool calls."""

    @property
    def text(self) -> str:
        """The message's text: its content, or its text parts joined (images left out)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if part.type == "text")


class LLMRequest(BaseModel):
    """One call to a model. `request_id` is the job id, the result key and the idempotency key;
    `trace_id` is the A2A trace that spans many calls (it defaults to the request_id)."""

    model_config = ConfigDict(extra="forbid")

    model: str = ""
    """An id or alias of the catalog; "" to let the fleet choose (`tier`, `task_complexity`, or LLM_DEFAULT_MODEL)."""
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    stream: bool = False
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=_ID_PATTERN)
    trace_id: str = Field(default="", max_length=256)
    source_agent: str | None = Field(default=None, max_length=256)
    session_id: str | None = Field(default=None, max_length=256)
    fallbacks: list[str] = Field(default_factory=list, max_length=5)
    """Models to try, in order, when this one's provider fails for good, cools down or has its circuit open."""
    model_requested: str | None = None
    """The model the caller asked for, when it was retired and the request runs on its replacement."""
    tier: Tier | None = None
    task_complexity: Complexity | None = None
    """With no model: the fleet chooses one of this tier (low → fast, medium → balanced, high → premium)."""
    provider_preference: list[Provider] = Field(default_factory=list, max_length=3)
    selection: Selection | None = None
    """How the fleet chose the model (set by the producer when the request named none)."""
    tools: list[Tool] | None = Field(default=None, exclude_if=absent)
    """Functions the model may call (each left out of the JSON when unset, as the four fields below)."""
    tool_choice: ToolChoice | None = Field(default=None, exclude_if=absent)
    """auto (the provider's default), none, required, or a `NamedTool` the model must call."""
    parallel_tool_calls: bool | None = Field(default=None, exclude_if=absent)
    response_format: ResponseFormat | None = Field(default=None, exclude_if=absent)
    reasoning: Reasoning | None = Field(default=None, exclude_if=absent)

    @model_validator(mode="after")
    def _default_trace(self) -> LLMRequest:
        if not self.trace_id:
            self.trace_id = self.request_id
        if self.model and (self.tier or self.task_complexity) and self.selection is None:
            raise ValueError("give a model, or a tier or task_complexity for the fleet to choose one, not both")
        return self

    @property
    def routes(self) -> list[str]:
        """The model, then its fallbacks."""
        return [self.model, *self.fallbacks]

    def digest(self) -> str:
        """A stable hash of the body, used to tell a resubmission from a conflicting reuse of the id."""
        return digest_of(self.model_dump_json())


def digest_of(body: str) -> str:
    """The digest of a request's JSON body (`LLMRequest.digest` when the JSON is at hand already)."""
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def validate_for_model(request: LLMRequest, model: str | None = None) -> ModelInfo:
    """Check the request against the provider rules of `model` (default: its own); return the catalog entry.
    Every model a request may reach, fallbacks included, passes through here."""
    info = resolve_model(model or request.model)
    if info.lifecycle.status == "retired":
        raise ModelRetiredError(info.id, replacement=info.lifecycle.replacement)
    if request.temperature is not None and not info.takes_temperature:
        what = (
            "an Anthropic model (its API refuses a temperature)"
            if info.provider == "anthropic"
            else "a reasoning model"
            if info.reasoning
            else "a model that takes no temperature"
        )
        raise InvalidRequestError(f"model {info.id!r} is {what} and takes no temperature", model=info.id)
    limit = info.max_output_tokens
    if request.max_tokens is not None and limit is not None and request.max_tokens > limit:
        raise InvalidRequestError(
            f"max_tokens {request.max_tokens} is more than model {info.id!r} writes ({limit})", model=info.id
        )
    if not any(m.role != "system" for m in request.messages):
        raise InvalidRequestError("messages need at least one user or assistant message")
    check_agent_fields(request, info)
    return info


def deprecation(info: ModelInfo) -> str | None:
    """What to tell of a deprecated model (it still works, until its shutdown date); None for any other."""
    if info.lifecycle.status != "deprecated":
        return None
    shutdown, replacement = info.lifecycle.shutdown, info.lifecycle.replacement
    return (
        f"model {info.id!r} is deprecated by its provider"
        + (f" and shuts down on {shutdown}" if shutdown else "")
        + (f"; its replacement is {replacement!r}" if replacement else "")
    )


def with_replacements(request: LLMRequest) -> LLMRequest:
    """`request` with each retired model it names (its own, its fallbacks) replaced by the model the catalog
    names in its place (LLM_RETIRED_MODELS=replace); `model_requested` keeps what the caller asked for."""
    routes = [_replaced(name) for name in request.routes]
    if routes == request.routes:
        return request
    asked = request.model if routes[0] != request.model else request.model_requested
    return request.model_copy(update={"model": routes[0], "fallbacks": routes[1:], "model_requested": asked})


def _replaced(name: str) -> str:
    info = resolve_model(name)
    seen = {info.id}
    while info.lifecycle.status == "retired" and info.lifecycle.replacement:
        info = resolve_model(info.lifecycle.replacement)
        if info.id in seen:  # a loop of replacements: left to validation to refuse
            break
        seen.add(info.id)
    return info.id if info.id != resolve_model(name).id else name


def explain(exc: ValidationError) -> str:
    """The first problem pydantic found, as one line: `where: what`."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
