"""What agents add to a request: content parts (text, images), tools and their calls, structured output and
reasoning controls; and the rules a request using them must meet before it is queued.

Every field here is optional and left out of a request's JSON when unset, so a request without them is
written (and digested) exactly as before they existed.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.errors import InvalidRequestError
from schemas.json_schema import schema_problem

if TYPE_CHECKING:
    from schemas.catalog import ModelInfo
    from schemas.request import LLMRequest, Message

__all__ = [
    "ContentPart",
    "ImagePart",
    "NamedTool",
    "Reasoning",
    "ResponseFormat",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "absent",
    "asks_for_agent_fields",
    "check_agent_fields",
    "serves",
]

_NAME = r"^[A-Za-z0-9_-]{1,64}$"
"""A tool's (or a response schema's) name as all three providers take it."""
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
ANTHROPIC_MIN_BUDGET = 1024


absent: Callable[[object], bool] = functools.partial(operator.is_, None)
"""Left out of the JSON: an optional field that is None. In C (no Python frame per field written): a request is
written for its digest, its job and its worker's log, and a response for its result and its done event."""


class TextPart(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image, by URL (`url`) or inline (`data`: base64, with its `media_type`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["image"] = "image"
    url: str | None = Field(default=None, exclude_if=absent)
    data: str | None = Field(default=None, exclude_if=absent)
    media_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"] | None = Field(
        default=None, exclude_if=absent
    )

    @model_validator(mode="after")
    def _one_source(self) -> ImagePart:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image has a url or base64 data, one of them")
        if self.data is not None and self.media_type is None:
            raise ValueError(f"an image given as data needs its media_type ({', '.join(IMAGE_TYPES)})")
        return self


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ToolCall(BaseModel):
    """A call the model made: `arguments` is the JSON text as the model wrote it (it may not parse)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    arguments: str
    signature: str | None = Field(default=None, exclude_if=absent)
    """Gemini's `thoughtSignature` of the call, sent back with it on the next turn (opaque)."""

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as the object Anthropic and Gemini take back (arguments that do not parse: none)."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


class Tool(BaseModel):
    """A function the model may call; `parameters` is the JSON schema of its arguments (an object)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = Field(default=None, exclude_if=absent)
    """The arguments held to the schema: OpenAI's and Anthropic's `strict` (Gemini has none: refused)."""


class NamedTool(BaseModel):
    """`tool_choice` naming the tool the model must call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedTool


class ResponseFormat(BaseModel):
    """Structured output: any JSON object (`json_object`), or JSON that matches `json_schema`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["json_object", "json_schema"]
    json_schema: dict[str, Any] | None = Field(default=None, exclude_if=absent)
    name: str = Field(default="response", pattern=_NAME)
    strict: bool = False

    @model_validator(mode="after")
    def _schema_for_json_schema(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is given with type json_schema, and only then")
        return self


class Reasoning(BaseModel):
    """How hard the model thinks: an `effort`, or a thinking budget in tokens (one of them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effort: Literal["low", "medium", "high"] | None = Field(default=None, exclude_if=absent)
    budget_tokens: int | None = Field(default=None, gt=0, exclude_if=absent)

    @model_validator(mode="after")
    def _one(self) -> Reasoning:
        if (self.effort is None) == (self.budget_tokens is None):
            raise ValueError("reasoning takes an effort or budget_tokens, one of them")
        return self

    def as_effort(self) -> Literal["low", "medium", "high"]:
        """The effort asked, or what a budget comes to for a provider that takes an effort: up to 2 048 tokens
        low, up to 8 192 medium, more high."""
        if self.effort is not None:
            return self.effort
        budget = self.budget_tokens or 0
        return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"

    def as_budget(self) -> int:
        """The budget asked, or what an effort comes to for a provider that takes a budget: 1 024, 4 096, 16 384."""
        if self.budget_tokens is not None:
            return self.budget_tokens
        return {"low": 1024, "medium": 4096, "high": 16384}[self.effort or "medium"]


def asks_for_agent_fields(request: LLMRequest) -> bool:
    """Whether the request uses any of the agents' fields (tools, tool calls or results, images, an output
    format, reasoning): then a model chosen for it must be able to serve them."""
    fields = (request.tools, request.tool_choice, request.parallel_tool_calls, request.response_format)
    return (
        request.reasoning is not None
        or any(f is not None for f in fields)
        or any(
            not isinstance(m.content, str) or m.tool_calls is not None or m.tool_call_id is not None
            for m in request.messages
        )
    )


def serves(request: LLMRequest, info: ModelInfo) -> bool:
    """Whether `info`'s model can serve what the request asks of it (`check_agent_fields` would pass)."""
    try:
        check_agent_fields(request, info)
    except InvalidRequestError:
        return False
    return True


def check_agent_fields(request: LLMRequest, info: ModelInfo) -> None:
    """Refuse (`InvalidRequestError` naming what is wrong) what `info`'s model cannot do of what the request asks,
    and tools, tool results or schemas that do not hold together."""
    _check_messages(request.messages, info)
    if request.tools is not None:
        _check_tools(request, info)
    elif request.tool_choice not in (None, "none") or request.parallel_tool_calls is not None:
        raise InvalidRequestError("tool_choice and parallel_tool_calls need tools", model=info.id)
    if request.response_format is not None:
        _check_format(request.response_format, info)
    if request.reasoning is not None:
        _check_reasoning(request, request.reasoning, info)


def _check_messages(messages: Sequence[Message], info: ModelInfo) -> None:
    called: set[str] = set()
    for index, message in enumerate(messages):
        if isinstance(message.content, str) and message.tool_calls is None and message.tool_call_id is None:
            if message.role == "tool":
                raise InvalidRequestError(f"messages[{index}]: a tool message has a tool_call_id", model=info.id)
            continue  # text: nothing more to check
        where = f"messages[{index}]"
        if message.tool_calls and message.role != "assistant":
            raise InvalidRequestError(f"{where}: only an assistant message carries tool_calls", model=info.id)
        called.update(call.id for call in message.tool_calls or ())
        if (message.role == "tool") != (message.tool_call_id is not None):
            raise InvalidRequestError(f"{where}: a tool message, and only one, has a tool_call_id", model=info.id)
        if message.tool_call_id is not None and message.tool_call_id not in called:
            raise InvalidRequestError(
                f"{where}: tool_call_id {message.tool_call_id!r} answers no tool call of an earlier assistant message",
                model=info.id,
            )
        if isinstance(message.content, list) and any(p.type == "image" for p in message.content):
            if message.role != "user":
                raise InvalidRequestError(f"{where}: images go in user messages", model=info.id)
            if not info.capabilities.vision:
                raise InvalidRequestError(f"model {info.id!r} takes no images ({where})", model=info.id)


def _check_tools(request: LLMRequest, info: ModelInfo) -> None:
    tools = request.tools or []
    if not info.capabilities.tools:
        raise InvalidRequestError(f"model {info.id!r} takes no tools", model=info.id)
    names = [tool.name for tool in tools]
    if info.provider == "gemini" and any(tool.strict for tool in tools):
        raise InvalidRequestError(f"model {info.id!r} is a Gemini model, which has no strict tools", model=info.id)
    if len(set(names)) < len(names):
        raise InvalidRequestError("tools: two tools have the same name", model=info.id)
    for tool in tools:
        where = f"tools[{tool.name}].parameters"
        problem = schema_problem(tool.parameters, where)
        if problem is None and tool.parameters.get("type") != "object":
            problem = f'{where}: the arguments\' schema is of "type": "object"'
        if problem:
            raise InvalidRequestError(f"tool schema is not valid: {problem}", model=info.id)
    choice = request.tool_choice
    if isinstance(choice, NamedTool) and choice.name not in names:
        raise InvalidRequestError(f"tool_choice names {choice.name!r}, which is not among the tools", model=info.id)


def _check_format(response_format: ResponseFormat, info: ModelInfo) -> None:
    if response_format.json_schema is not None:
        if not info.capabilities.json_schema:
            raise InvalidRequestError(f"model {info.id!r} takes no JSON schema for its output", model=info.id)
        problem = schema_problem(response_format.json_schema, "response_format.json_schema")
        if problem:
            raise InvalidRequestError(f"response schema is not valid: {problem}", model=info.id)
    elif info.provider == "anthropic":
        raise InvalidRequestError(
            f"model {info.id!r} is an Anthropic model, which has no JSON mode: give response_format a json_schema",
            model=info.id,
        )


def _check_reasoning(request: LLMRequest, reasoning: Reasoning, info: ModelInfo) -> None:
    if not info.capabilities.reasoning:
        raise InvalidRequestError(f"model {info.id!r} is not a reasoning model: it takes no reasoning", model=info.id)
    if info.provider != "anthropic":
        return
    if request.tool_choice == "required" or isinstance(request.tool_choice, NamedTool):
        raise InvalidRequestError(
            "Anthropic takes no forced tool_choice (required or named) with reasoning: use auto", model=info.id
        )
    budget = reasoning.budget_tokens
    if budget is not None and budget < ANTHROPIC_MIN_BUDGET:
        raise InvalidRequestError(
            f"reasoning.budget_tokens {budget} is less than Anthropic's least ({ANTHROPIC_MIN_BUDGET})", model=info.id
        )
    if budget is not None and request.max_tokens is not None and budget >= request.max_tokens:
        raise InvalidRequestError(
            f"reasoning.budget_tokens {budget} must be less than max_tokens ({request.max_tokens}) on Anthropic",
            model=info.id,
        )
