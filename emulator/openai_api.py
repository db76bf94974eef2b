"""OpenAI Chat Completions: ``POST /v1/chat/completions``, JSON or ``data:``-only SSE ending in ``[DONE]``."""

from __future__ import annotations

import json
import time
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

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")

_FINISH = {"stop": "stop", "length": "length", "blocked": "content_filter", "tool_calls": "tool_calls"}
_ERRORS = {  # status -> (error.type, error.code, usual message)
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        None,
        (
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
            "https://platform.openai.com/account/api-keys."
        ),
    ),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests per min (RPM)."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    529: ("server_error", None, "The server is overloaded or not ready yet."),
}


class OpenAIApi(Provider):
    name = "openai"
    routes = ("/v1/chat/completions",)
    request_id_header = "x-request-id"
    midstream_status = 500
    malformed_body = b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{'
    malformed_event = b'data: {"id": "chatcmpl-malformed", "object": "chat.completion.chunk", "choices": [\n\n'

    @override
    def api_key(self, request: web.Request) -> str:
        return bearer_token(request)

    @override
    def parse(self, request: web.Request, body: JsonObject) -> Call:
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            raise _missing("model")
        if not isinstance(messages, list) or not messages:
            raise _missing("messages")
        if model.startswith(REASONING_PREFIXES):
            _check_reasoning_params(body)
        texts = [
            (message.get("role"), text_of(message.get("content"))) for message in messages if isinstance(message, dict)
        ]
        stream = body.get("stream") is True
        return Call(
            model=model,
            stream=stream,
            prompt=next((text for role, text in reversed(texts) if role == "user"), ""),
            prompt_tokens=count_tokens(text for _, text in texts),
            max_tokens=whole_number(body.get("max_completion_tokens")) or whole_number(body.get("max_tokens")),
            include_usage=stream and bool((body.get("stream_options") or {}).get("include_usage")),
            agent=_agentic(body, messages),
        )

    @override
    def error_body(self, error: ApiError, request_id: str) -> bytes:
        kind, code, message = _ERRORS.get(error.status, _ERRORS[500])
        if error.retry_after is not None and error.status == 429:
            message = f"{message} Please try again in {error.retry_after:g}s."
        body = {
            "error": {
                "message": error.message or message,
                "type": kind,
                "param": error.param,
                "code": error.code or code,
            }
        }
        return json.dumps(body, indent=4).encode()  # the real API pretty-prints its errors

    @override
    def completion(self, call: Call, reply: Reply) -> bytes:
        message: JsonObject = {"role": "assistant", "content": reply.text or None, "refusal": None, "annotations": []}
        if reply.calls:
            message["tool_calls"] = [
                {"id": new_id("call_"), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in reply.calls
            ]
        return json.dumps(
            {
                "id": new_id("chatcmpl-"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": call.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _FINISH[reply.finish]}],
                "usage": _usage(reply),
                "service_tier": "default",
            }
        ).encode()

    @override
    def frames(self, call: Call, reply: Reply) -> Frames:
        base: JsonObject = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model,
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }
        if call.include_usage:
            base["usage"] = None

        def chunk(delta: JsonObject, finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _event({**base, "choices": [choice]})

        tail = [chunk({}, _FINISH[reply.finish])]
        if call.include_usage:
            tail.append(_event({**base, "choices": [], "usage": _usage(reply)}))
        tail.append(b"data: [DONE]\n\n")
        deltas = render_each(chunk({"content": TEXT}), reply.pieces)
        for index, planned in enumerate(reply.calls):
            first = {"index": index, "id": new_id("call_"), "type": "function"}
            deltas.append(chunk({"tool_calls": [{**first, "function": {"name": planned.name, "arguments": ""}}]}))
            piece = chunk({"tool_calls": [{"index": index, "function": {"arguments": TEXT}}]})
            deltas += render_each(piece, planned.fragments)
        return Frames(head=[chunk({"role": "assistant", "content": ""})], deltas=deltas, tail=tail)

    @override
    def stream_error(self) -> bytes:
        kind, code, message = _ERRORS[self.midstream_status]
        return _event({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _check_reasoning_params(body: JsonObject) -> None:
    if body.get("max_tokens") is not None:
        raise ApiError(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            param="max_tokens",
            code="unsupported_parameter",
        )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise ApiError(
            400,
            f"Unsupported value: 'temperature' does not support {temperature} with this model. "
            "Only the default (1) value is supported.",
            param="temperature",
            code="unsupported_value",
        )


def _agentic(body: JsonObject, messages: list[Any]) -> Agentic:
    """Tools, tool results, response_format, reasoning_effort and images, as Chat Completions sends them."""
    tools = {
        str(object_of(t.get("function")).get("name")): object_of(t.get("function")).get("parameters")
        for t in body.get("tools") or ()
        if isinstance(t, dict)
    }
    choice = body.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        choice = object_of(choice.get("function")).get("name")
        if choice not in tools:
            raise ApiError(400, f"Invalid value for 'tool_choice': no function named {choice!r} in 'tools'.")
    trailing = []
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        trailing.append(text_of(message.get("content")))
    fmt = object_of(body.get("response_format"))
    parts = [p for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list) for p in m["content"]]
    images = [object_of(p.get("image_url")) for p in parts if isinstance(p, dict) and p.get("type") == "image_url"]
    for image in images:
        check_image(None, None, str(image.get("url")))
    return Agentic(
        tools=tools,
        choice=str(choice),
        parallel=body.get("parallel_tool_calls") is not False,
        answered=" ".join(reversed(trailing)) if trailing else None,
        schema=object_of(fmt.get("json_schema")).get("schema") if fmt.get("type") == "json_schema" else None,
        json_object=fmt.get("type") == "json_object",
        thinking=body.get("reasoning_effort") not in (None, "none", "minimal"),
        images=len(images),
    )


def _missing(param: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _usage(reply: Reply) -> JsonObject:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": len(reply.thinking),  # Chat Completions counts reasoning, never shows it
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _event(data: JsonObject) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()
