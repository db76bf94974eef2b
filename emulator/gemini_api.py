"""Gemini Developer API: ``POST /{v1|v1beta}/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``.

camelCase JSON; SSE events are ``data: <json>`` separated by ``\\r\\n\\r\\n`` like the real service.
A blocked prompt is a 200 with ``promptFeedback.blockReason`` and no candidates.
"""

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
    new_id,
    render_each,
    text_of,
    whole_number,
)
from emulator.replies import Reply, count_tokens

_ACTIONS = {"generateContent": False, "streamGenerateContent": True}  # action -> stream
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}
_BLOCKED_RATINGS = [
    {"category": category, "probability": "HIGH" if category == "HARM_CATEGORY_HATE_SPEECH" else "NEGLIGIBLE"}
    for category in (
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
    )
]
_ERRORS = {  # status -> (error.status, usual message)
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        (
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API."
        ),
    ),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    529: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


class GeminiApi(Provider):
    name = "gemini"
    routes = ("/{version:v1|v1beta}/models/{target}",)
    request_id_header = None
    midstream_status = 503
    malformed_body = b'{"candidates": [{"content": {"parts": [{"text": '
    malformed_event = b'data: {"candidates": [{"content": {"parts": [\r\n\r\n'

    @override
    def api_key(self, request: web.Request) -> str:
        return request.headers.get("x-goog-api-key", "").strip() or request.query.get("key", "")

    @override
    def parse(self, request: web.Request, body: JsonObject) -> Call:
        model, _, action = request.match_info["target"].rpartition(":")
        if action not in _ACTIONS or not model:
            raise ApiError(404, f"Method not found: {request.match_info['target']}")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified")
        texts = [
            (content.get("role", "user"), text_of(content.get("parts")))
            for content in contents
            if isinstance(content, dict)
        ]
        system = body.get("systemInstruction")
        config = body.get("generationConfig")
        return Call(
            model=model,
            stream=_ACTIONS[action],
            prompt=next((text for role, text in reversed(texts) if role == "user"), ""),
            prompt_tokens=count_tokens(
                [text_of(system.get("parts")) if isinstance(system, dict) else "", *(text for _, text in texts)]
            ),
            max_tokens=whole_number(config.get("maxOutputTokens")) if isinstance(config, dict) else None,
        )

    @override
    def error_body(self, error: ApiError, request_id: str) -> bytes:
        status, message = _ERRORS.get(error.status, _ERRORS[500])
        details = []
        if error.retry_after is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{error.retry_after:g}s"}
            )
        body = {
            "error": {"code": error.status, "message": error.message or message, "status": status, "details": details}
        }
        return json.dumps(body, indent=2).encode()

    @override
    def completion(self, call: Call, reply: Reply) -> bytes:
        return json.dumps(_response(call, reply, new_id(""), reply.text, final=True)).encode()

    @override
    def frames(self, call: Call, reply: Reply) -> Frames:
        response_id = new_id("")
        if reply.finish == "blocked":
            return Frames(head=[], deltas=[], tail=[_event(_response(call, reply, response_id, "", final=True))])
        *pieces, last = reply.pieces
        deltas = render_each(_event(_response(call, reply, response_id, TEXT, final=False)), pieces)
        deltas.append(_event(_response(call, reply, response_id, last, final=True)))
        return Frames(head=[], deltas=deltas, tail=[])

    @override
    def stream_error(self) -> bytes:
        status, message = _ERRORS[self.midstream_status]
        return _event({"error": {"code": self.midstream_status, "message": message, "status": status}})


def _response(call: Call, reply: Reply, response_id: str, text: str, *, final: bool) -> JsonObject:
    """A ``GenerateContentResponse``: the whole reply, or one chunk of a stream (``final``: the last one).

    Every response carries ``usageMetadata``; the final one also the finish reason and the output token count.
    A blocked prompt has ``promptFeedback`` and no candidates.
    """
    prompt, output = reply.prompt_tokens, reply.completion_tokens
    usage: JsonObject = {
        "promptTokenCount": prompt,
        "totalTokenCount": prompt,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if reply.finish == "blocked":
        outcome: JsonObject = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _BLOCKED_RATINGS}}
    else:
        candidate: JsonObject = {"content": {"parts": [{"text": text}], "role": "model"}}
        if final:
            candidate["finishReason"] = _FINISH[reply.finish]
            usage |= {
                "candidatesTokenCount": output,
                "totalTokenCount": prompt + output,
                "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": output}],
            }
        candidate["index"] = 0
        outcome = {"candidates": [candidate]}
    return {**outcome, "usageMetadata": usage, "modelVersion": call.model, "responseId": response_id}


def _event(data: JsonObject) -> bytes:
    return f"data: {json.dumps(data)}\r\n\r\n".encode()
