"""Anthropic Messages: ``POST /v1/messages``, JSON or named-event SSE (``event:`` + ``data:``)."""

from __future__ import annotations

import json

from aiohttp import web
from typing_extensions import override

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
from emulator.replies import Reply, count_tokens

_STOP = {"stop": "end_turn", "length": "max_tokens", "blocked": "refusal"}
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
        )

    @override
    def error_body(self, error: ApiError, request_id: str) -> bytes:
        kind, message = _ERRORS.get(error.status, _ERRORS[500])
        body = {"type": "error", "error": {"type": kind, "message": error.message or message}, "request_id": request_id}
        return json.dumps(body).encode()

    @override
    def completion(self, call: Call, reply: Reply) -> bytes:
        return json.dumps(
            {
                "content": [{"citations": None, "text": reply.text, "type": "text"}],
                "id": new_id("msg_"),
                "model": call.model,
                "role": "assistant",
                "stop_reason": _STOP[reply.finish],
                "stop_sequence": None,
                "type": "message",
                "usage": _usage(reply.prompt_tokens, reply.completion_tokens),
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


def _usage(input_tokens: int, output_tokens: int) -> JsonObject:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _event(data: JsonObject) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()
