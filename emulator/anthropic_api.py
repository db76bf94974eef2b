"""Anthropic Messages: ``POST /v1/messages``, JSON or named-event SSE (``event:`` + ``data:``)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from aiohttp import web
from typing_extensions import override

from emulator.agents import check_image, object_of
from emulator.provider import (
    TEXT,
    ApiError,
    Call,
    Frames,
    JsonObject,
    Provider,
    bearer_token,
    new_id,
    render_each,
    text_of,
    whole_number,
)
from emulator.replies import Agentic, Reply, count_tokens

_STOP = {"stop": "end_turn", "length": "max_tokens", "blocked": "refusal", "tool_calls": "tool_use"}
_THINKING_FIRST = (
    "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final "
    "`assistant` message must start with a thinking block (preceding the lastmost set of `tool_use` and "
    "`tool_result` blocks)."
)
_ERRORS = {  # status -> (error.type, usual message)
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "x-api-key header is required"),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}


class AnthropicApi(Provider):
    name = "anthropic"
    routes = ("/v1/messages",)
    request_id_header = "request-id"
    midstream_status = 529
    malformed_body = b'{"id": "msg_malformed", "type": "message", "content": [{'
    malformed_event = b'event: message_start\ndata: {"type": "message_start", "message": {\n\n'

    @override
    def api_key(self, request: web.Request) -> str:
        return request.headers.get("x-api-key", "").strip() or bearer_token(request)

    @override
    def parse(self, request: web.Request, body: JsonObject) -> Call:
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "model: Field required")
        if not isinstance(messages, list):
            raise ApiError(400, "messages: Field required")
        if body.get("max_tokens") is None:
            raise ApiError(400, "max_tokens: Field required")
        texts = [
            (message.get("role"), text_of(message.get("content"))) for message in messages if isinstance(message, dict)
        ]
        return Call(
            model=model,
            stream=body.get("stream") is True,
            prompt=next((text for role, text in reversed(texts) if role == "user"), ""),
            prompt_tokens=count_tokens([text_of(body.get("system")), *(text for _, text in texts)]),
            max_tokens=whole_number(body.get("max_tokens")),
            agent=_agentic(body, messages),
        )

    @override
    def error_body(self, error: ApiError, request_id: str) -> bytes:
        kind, message = _ERRORS.get(error.status, _ERRORS[500])
        body = {"type": "error", "error": {"type": kind, "message": error.message or message}, "request_id": request_id}
        return json.dumps(body).encode()

    @override
    def completion(self, call: Call, reply: Reply) -> bytes:
        blocks: list[JsonObject] = []
        if reply.thinking:
            blocks.append({"type": "thinking", "thinking": "".join(reply.thinking), "signature": _signature(reply)})
        if reply.pieces or not reply.calls:
            blocks.append({"citations": None, "text": reply.text, "type": "text"})
        blocks += [
            {"type": "tool_use", "id": new_id("toolu_"), "name": c.name, "input": json.loads(c.arguments)}
            for c in reply.calls
        ]
        return json.dumps(
            {
                "content": blocks,
                "id": new_id("msg_"),
                "model": call.model,
                "role": "assistant",
                "stop_reason": _STOP[reply.finish],
                "stop_sequence": None,
                "type": "message",
                "usage": _usage(reply.prompt_tokens, reply.completion_tokens, len(reply.thinking)),
            }
        ).encode()

    @override
    def frames(self, call: Call, reply: Reply) -> Frames:
        message: JsonObject = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": call.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(reply.prompt_tokens, 1),
        }
        if reply.thinking or reply.calls:
            return _agent_frames(message, reply)
        return Frames(
            head=[
                _event({"type": "message_start", "message": message}),
                _event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                _event({"type": "ping"}),
            ],
            deltas=render_each(
                _event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}}),
                reply.pieces,
            ),
            tail=[
                _event({"type": "content_block_stop", "index": 0}),
                _event(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": _STOP[reply.finish], "stop_sequence": None},
                        "usage": {"output_tokens": reply.completion_tokens},
                    }
                ),
                _event({"type": "message_stop"}),
            ],
        )

    @override
    def stream_error(self) -> bytes:
        kind, message = _ERRORS[self.midstream_status]
        return _event({"type": "error", "error": {"type": kind, "message": message}})


def _agent_frames(message: JsonObject, reply: Reply) -> Frames:
    """A stream of thinking, text and tool_use blocks, each opened, filled by its deltas and closed."""
    deltas: list[bytes] = []

    def block(start: JsonObject, delta: JsonObject, texts: list[str] | tuple[str, ...]) -> None:
        index = len([d for d in deltas if d.startswith(b"event: content_block_start")])
        deltas.append(_event({"type": "content_block_start", "index": index, "content_block": start}))
        template = {"type": "content_block_delta", "index": index, "delta": delta}
        deltas.extend(render_each(_event(template), texts))
        if start["type"] == "thinking":
            signature = {"type": "signature_delta", "signature": _signature(reply)}
            deltas.append(_event({"type": "content_block_delta", "index": index, "delta": signature}))
        deltas.append(_event({"type": "content_block_stop", "index": index}))

    if reply.thinking:
        block(
            {"type": "thinking", "thinking": "", "signature": ""},
            {"type": "thinking_delta", "thinking": TEXT},
            reply.thinking,
        )
    if reply.pieces:
        block({"type": "text", "text": ""}, {"type": "text_delta", "text": TEXT}, reply.pieces)
    for planned in reply.calls:
        start = {"type": "tool_use", "id": new_id("toolu_"), "name": planned.name, "input": {}}
        block(start, {"type": "input_json_delta", "partial_json": TEXT}, planned.fragments)
    stop = {"stop_reason": _STOP[reply.finish], "stop_sequence": None}
    tail = [
        _event(
            {
                "type": "message_delta",
                "delta": stop,
                "usage": _output_usage(reply.completion_tokens, len(reply.thinking)),
            }
        ),
        _event({"type": "message_stop"}),
    ]
    return Frames(
        head=[_event({"type": "message_start", "message": message}), _event({"type": "ping"})], deltas=deltas, tail=tail
    )


def _signature(reply: Reply) -> str:
    return base64.b64encode(hashlib.sha256("".join(reply.thinking).encode()).digest()).decode()


def _agentic(body: JsonObject, messages: list[Any]) -> Agentic:
    """Tools, tool results, tool_choice, output_config, thinking and images, as the Messages API sends them."""
    tools = {str(t.get("name")): t.get("input_schema") for t in body.get("tools") or () if isinstance(t, dict)}
    choice = object_of(body.get("tool_choice"))
    kind = str(choice.get("type") or "auto")
    if kind == "tool" and choice.get("name") not in tools:
        raise ApiError(400, f"tool_choice: tool {choice.get('name')!r} not found in tools")
    thinking = object_of(body.get("thinking")).get("type") in ("enabled", "adaptive")
    blocks = [b for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list) for b in m["content"]]
    for image in (object_of(b.get("source")) for b in blocks if isinstance(b, dict) and b.get("type") == "image"):
        check_image(image.get("media_type"), image.get("data"), image.get("url"))
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    results = [b for b in last.get("content") or () if isinstance(b, dict) and b.get("type") == "tool_result"]
    if results and thinking:
        assistant = messages[-2] if len(messages) > 1 and isinstance(messages[-2], dict) else {}
        content = assistant.get("content")
        if not isinstance(content, list) or not content or object_of(content[0]).get("type") != "thinking":
            raise ApiError(400, _THINKING_FIRST)
    return Agentic(
        tools=tools,
        choice={"any": "required", "tool": str(choice.get("name"))}.get(kind, kind),
        parallel=not choice.get("disable_parallel_tool_use"),
        answered=" ".join(text_of(r.get("content")) for r in results) if results else None,
        schema=object_of(object_of(body.get("output_config")).get("format")).get("schema"),
        thinking=thinking,
        images=sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "image"),
    )


def _usage(input_tokens: int, output_tokens: int, thinking: int = 0) -> JsonObject:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        **_output_usage(output_tokens, thinking),
    }


def _output_usage(output_tokens: int, thinking: int) -> JsonObject:
    """Output tokens, thinking included (and counted apart when there was some)."""
    usage: JsonObject = {"output_tokens": output_tokens}
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    return usage


def _event(data: JsonObject) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()
