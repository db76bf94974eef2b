"""The OpenAI-compatible face: `POST /v1/chat/completions` (streaming and not) and `GET /v1/models`, so the
official openai SDKs, and the tools built on them, reach every model of the fleet unchanged.

`to_request` is the one place this face's body becomes an `LLMRequest` (its messages through
`gateway.openai_messages`). A field it does not take is refused with a 400 naming it, never dropped: `SUPPORTED`
lists what it takes. The agents' fields (tools, tool_choice, parallel_tool_calls, response_format,
reasoning_effort) are read only when the body has one of them, so a text request costs what it did. The answer
carries the model's tool calls (`message.tool_calls`; streamed, `delta.tool_calls` pieces) and, as extensions,
its reasoning (`reasoning_content`) and Anthropic's signature of it (`reasoning_signature`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.errors import http_body
from gateway.openai_messages import call_id, messages, unsupported
from gateway.state import Gateway, error_response, gateway_of, invalid, json_body, json_response
from gateway.trace import Caller, caller_of
from schemas.catalog import catalog
from schemas.errors import InvalidRequestError, LLMError, RequestCancelledError, error_from_dict
from schemas.events import StreamEvent, ToolCallEvent
from schemas.request import LLMRequest
from schemas.response import LLMResponse

__all__ = ["SUPPORTED", "routes", "to_request"]

AGENT_FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort"})
TEXT_FIELDS = frozenset({"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "n"})
SUPPORTED = TEXT_FIELDS | {"stream", "stream_options"} | AGENT_FIELDS
"""The request fields this face takes (one that is null counts as absent)."""
EFFORTS = frozenset({"low", "medium", "high"})
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls"}


def to_request(body: Any, caller: Caller, request_id: str | None = None) -> tuple[LLMRequest, bool]:
    """The `LLMRequest` a chat-completions body asks for, and whether its stream ends with a usage chunk."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    given = {k: v for k, v in body.items() if v is not None}
    refused = sorted(k for k in given if k not in SUPPORTED)
    if refused:
        raise unsupported(refused[0], f"field(s) not supported by this gateway: {', '.join(refused)}")
    if given.get("n", 1) != 1:
        raise unsupported("n", "only n=1 is supported")
    options = given.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise unsupported("stream_options", "stream_options takes include_usage only")
    limit = given.get("max_completion_tokens", given.get("max_tokens"))
    if "max_tokens" in given and given.get("max_tokens") != limit:
        raise InvalidRequestError("max_tokens and max_completion_tokens differ: give one", param="max_tokens")
    fields: dict[str, Any] = {
        "model": given.get("model", ""),
        "messages": messages(given.get("messages")),
        "temperature": given.get("temperature"),
        "max_tokens": limit,
        "stream": given.get("stream", False),
    }
    if not AGENT_FIELDS.isdisjoint(given):
        _agent_fields(given, fields)
    if request_id:
        fields["request_id"] = request_id
    try:
        request = LLMRequest.model_validate(caller.apply(fields))
    except ValidationError as exc:
        raise invalid(exc, "request") from None
    return request, bool(options.get("include_usage"))


def _agent_fields(given: dict[str, Any], fields: dict[str, Any]) -> None:
    """Tools, tool_choice, parallel_tool_calls, response_format and reasoning_effort as the fleet has them."""
    if "tools" in given:
        fields["tools"] = _tools(given["tools"])
    choice = given.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        if choice.get("type") != "function" or not isinstance(function, dict) or set(function) != {"name"}:
            raise unsupported("tool_choice", 'tool_choice is auto, none, required or {"type": "function", ...}')
        choice = {"name": function["name"]}
    elif choice not in (None, "auto", "none", "required"):
        raise unsupported("tool_choice", f"tool_choice {choice!r} is not supported (auto, none, required, a function)")
    fields["tool_choice"] = choice
    fields["parallel_tool_calls"] = given.get("parallel_tool_calls")
    if "response_format" in given:
        fields["response_format"] = _response_format(given["response_format"])
    effort = given.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise unsupported("reasoning_effort", f"reasoning_effort {effort!r} is not supported (low, medium, high)")
        fields["reasoning"] = {"effort": effort}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequestError("tools must be a list of tools", param="tools")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function" or set(tool) != {"type", "function"}:
            raise unsupported(f"tools[{i}]", "a tool is {type: function, function: {name, description, parameters}}")
        extra = sorted(set(function) - {"name", "description", "parameters", "strict"})
        if extra:
            raise unsupported(f"tools[{i}].function.{extra[0]}", f"tools[{i}].function.{extra[0]} is not supported")
        out.append({k: v for k, v in function.items() if v is not None})
    return out


def _response_format(given: Any) -> dict[str, Any] | None:
    kind = given.get("type") if isinstance(given, dict) else None
    if kind == "text" and len(given) == 1:  # the default: no format asked
        return None
    if kind == "json_object" and len(given) == 1:
        return {"type": "json_object"}
    schema = given.get("json_schema") if kind == "json_schema" else None
    if not isinstance(schema, dict):
        raise unsupported("response_format", "response_format is text, json_object or json_schema {name, schema}")
    extra = sorted(set(schema) - {"name", "schema", "strict"})
    if extra:
        where = f"response_format.json_schema.{extra[0]}"
        raise unsupported(where, f"{where} is not supported (name, schema, strict)")
    fmt = {"type": "json_schema", "json_schema": schema.get("schema"), "name": schema.get("name")}
    return {**{k: v for k, v in fmt.items() if v is not None}, "strict": bool(schema.get("strict"))}


async def chat_completions(request: Request) -> Response:
    gateway, caller = gateway_of(request), caller_of(request)
    request_id = request.headers.get("idempotency-key") or None
    try:
        llm, include_usage = to_request(await json_body(request), caller, request_id)
    except InvalidRequestError as exc:
        return error_response(exc, caller)
    caller = caller.for_request(llm.trace_id)
    if not llm.stream:
        try:
            response = await gateway.client.complete(llm)
        except LLMError as exc:
            gateway.metrics.relayed(llm.model, None)
            return error_response(exc, caller, request_id=llm.request_id)
        gateway.metrics.relayed(llm.model, response)
        return json_response(_completion(response), caller, request_id=llm.request_id)
    events = gateway.client.events(llm)
    try:
        first = await anext(events)
    except BaseException as exc:  # refused, or the caller went away before the first token: stop it
        await events.aclose()
        if isinstance(exc, LLMError):
            return error_response(exc, caller, request_id=llm.request_id)
        raise
    if first.type in ("error", "cancelled"):  # failed before its first token: an HTTP error, as OpenAI's is
        await events.aclose()
        gateway.metrics.relayed(llm.model, None)
        return error_response(_failure(first, llm.request_id), caller, request_id=llm.request_id)
    chunks = _chunks(gateway, llm, first, events, include_usage)
    headers = caller.headers(request_id=llm.request_id, trace_id=llm.trace_id)
    return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)


def _completion(response: LLMResponse) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{response.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": _message(response),
                "finish_reason": _FINISH.get(response.finish_reason, "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(response),
        "trace_id": response.trace_id,
    }


def _message(response: LLMResponse) -> dict[str, Any]:
    """The answer's message; `reasoning_content` and `reasoning_signature` are this face's extensions (sent back
    on the assistant's next-turn message, as Anthropic needs its signed thinking with the calls it made)."""
    message: dict[str, Any] = {"role": "assistant", "content": response.content, "refusal": None}
    if response.tool_calls:
        message["content"] = response.content or None
        message["tool_calls"] = [
            {
                "id": call_id(c.id, c.signature),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in response.tool_calls
        ]
    if response.reasoning is not None:
        message["reasoning_content"] = response.reasoning
    if response.reasoning_signature is not None:
        message["reasoning_signature"] = response.reasoning_signature
    return message


def _usage(response: LLMResponse) -> dict[str, Any]:
    usage = response.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens or 0},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
    }


def _failure(event: StreamEvent, request_id: str) -> LLMError:
    if event.type == "error":
        return error_from_dict(event.error)
    return RequestCancelledError(f"request {request_id!r} was cancelled", request_id=request_id)


async def _chunks(
    gateway: Gateway, llm: LLMRequest, first: StreamEvent, events: AsyncGenerator[StreamEvent], include_usage: bool
) -> AsyncIterator[bytes]:
    created, chunk_id = int(time.time()), f"chatcmpl-{llm.request_id}"

    def chunk(delta: dict[str, Any], finish: str | None = None, model: str = llm.model) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        body = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model}
        return _sse({**body, "choices": [choice], **({"usage": None} if include_usage else {})})

    yield chunk({"role": "assistant", "content": ""})
    async with contextlib.aclosing(events):
        event = first
        while True:
            if event.type == "delta":
                yield chunk({"content": event.text})
            elif event.type == "tool_call":
                yield chunk({"tool_calls": [_call_piece(event)]})
            elif event.type == "reasoning":
                yield chunk({"reasoning_content": event.text})
            elif event.type == "done":
                gateway.metrics.relayed(llm.model, event.response)
                model, signature = event.response.model, event.response.reasoning_signature
                last = {} if signature is None else {"reasoning_signature": signature}
                yield chunk(last, _FINISH.get(event.response.finish_reason, "stop"), model)
                if include_usage:
                    body = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model}
                    yield _sse({**body, "choices": [], "usage": _usage(event.response)})
                break
            else:
                gateway.metrics.relayed(llm.model, None)
                yield _error_chunk(_failure(event, llm.request_id), llm)
                break
            try:
                event = await anext(events)
            except LLMError as exc:  # the wait for the next event ran out, or Redis went away for good
                yield _error_chunk(exc, llm)
                break
    yield b"data: [DONE]\n\n"


def _call_piece(event: ToolCallEvent) -> dict[str, Any]:
    """A piece of a call as OpenAI streams it: its id, type and name on its first piece, then its arguments."""
    if event.id is None:
        return {"index": event.index, "function": {"arguments": event.arguments}}
    function = {"name": event.name, "arguments": event.arguments}
    return {"index": event.index, "id": call_id(event.id, event.signature), "type": "function", "function": function}


def _error_chunk(error: LLMError, llm: LLMRequest) -> bytes:
    return _sse(http_body(error, request_id=llm.request_id, trace_id=llm.trace_id))


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def models(request: Request) -> Response:
    gateway, caller = gateway_of(request), caller_of(request)
    policy = gateway.client.policy
    data = [
        {"id": m.id, "object": "model", "created": 0, "owned_by": m.provider.value}
        for m in catalog().models
        if m.lifecycle.status != "retired" and (policy is None or policy.permits(m))
    ]
    return json_response({"object": "list", "data": data}, caller)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
]
