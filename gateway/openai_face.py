"""The OpenAI-compatible face: `POST /v1/chat/completions` (streaming and not) and `GET /v1/models`, so the
official openai SDKs, and the tools built on them, reach every model of the fleet unchanged.

`to_request` is the one place this face's body becomes an `LLMRequest`. A field it does not take is refused
with a 400 naming it, never dropped: `SUPPORTED` lists what it takes (tools, response_format and image parts
join it once `LLMRequest` carries them).
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
from gateway.state import Gateway, error_response, gateway_of, invalid, json_body, json_response
from gateway.trace import Caller, caller_of
from schemas.catalog import catalog
from schemas.errors import InvalidRequestError, LLMError, RequestCancelledError, error_from_dict
from schemas.events import StreamEvent
from schemas.request import LLMRequest
from schemas.response import LLMResponse

__all__ = ["SUPPORTED", "routes", "to_request"]

SUPPORTED = frozenset(
    {"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "stream", "stream_options", "n"}
)
"""The request fields this face takes (one that is null counts as absent)."""
MESSAGE_FIELDS = frozenset({"role", "content"})
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
PART_TYPES = frozenset({"text"})
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls"}


def to_request(body: Any, caller: Caller, request_id: str | None = None) -> tuple[LLMRequest, bool]:
    """The `LLMRequest` a chat-completions body asks for, and whether its stream ends with a usage chunk."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    given = {k: v for k, v in body.items() if v is not None}
    unsupported = sorted(k for k in given if k not in SUPPORTED)
    if unsupported:
        raise _unsupported(unsupported[0], f"field(s) not supported by this gateway: {', '.join(unsupported)}")
    if given.get("n", 1) != 1:
        raise _unsupported("n", "only n=1 is supported")
    options = given.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise _unsupported("stream_options", "stream_options takes include_usage only")
    limit = given.get("max_completion_tokens", given.get("max_tokens"))
    if "max_tokens" in given and given.get("max_tokens") != limit:
        raise InvalidRequestError("max_tokens and max_completion_tokens differ: give one", param="max_tokens")
    fields: dict[str, Any] = {
        "model": given.get("model", ""),
        "messages": _messages(given.get("messages")),
        "temperature": given.get("temperature"),
        "max_tokens": limit,
        "stream": given.get("stream", False),
    }
    if request_id:
        fields["request_id"] = request_id
    try:
        request = LLMRequest.model_validate(caller.apply(fields))
    except ValidationError as exc:
        raise invalid(exc, "request") from None
    return request, bool(options.get("include_usage"))


def _messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list):
        raise InvalidRequestError("messages must be a list of messages", param="messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        extra = sorted(k for k, v in message.items() if v is not None and k not in MESSAGE_FIELDS)
        if extra:
            raise _unsupported(f"{where}.{extra[0]}", f"message field(s) not supported: {', '.join(extra)}")
        role = message.get("role")
        if role not in ROLES:
            raise _unsupported(f"{where}.role", f"role {role!r} is not supported (system, developer, user, assistant)")
        out.append({"role": ROLES[role], "content": _text(message.get("content"), where)})
    return out


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or a list of text parts", param=where)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in PART_TYPES or not isinstance(part.get("text"), str):
            raise _unsupported(f"{where}.content[{j}]", f"content part of type {kind!r} is not supported (text only)")
        texts.append(part["text"])
    return "\n".join(texts)


def _unsupported(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


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
                "message": {"role": "assistant", "content": response.content, "refusal": None},
                "finish_reason": _FINISH.get(response.finish_reason, "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(response),
        "trace_id": response.trace_id,
    }


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
            elif event.type == "done":
                gateway.metrics.relayed(llm.model, event.response)
                model = event.response.model
                yield chunk({}, _FINISH.get(event.response.finish_reason, "stop"), model)
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
