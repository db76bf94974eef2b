"""Gemini Developer API: ``POST /{v1|v1beta}/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``.

camelCase JSON; SSE events are ``data: <json>`` separated by ``\\r\\n\\r\\n`` like the real service.
A blocked prompt is a 200 with ``promptFeedback.blockReason`` and no candidates.
"""

from __future__ import annotations

import json

from aiohttp import web
from typing_extensions import override

from emulator.provider import ApiError, Call, Frames, JsonObject, Provider, new_id, text_of, whole_number
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
        (response,) = _responses(call, reply, [reply.pieces])
        return json.dumps(response).encode()

    @override
    def frames(self, call: Call, reply: Reply) -> Frames:
        responses = _responses(call, reply, [(piece,) for piece in reply.pieces])
        if reply.finish == "blocked":
            return Frames(head=[], deltas=[], tail=[_event(response) for response in responses])
        return Frames(head=[], deltas=[_event(response) for response in responses], tail=[])

    @override
    def stream_error(self) -> bytes:
        status, message = _ERRORS[self.midstream_status]
        return _event({"error": {"code": self.midstream_status, "message": message, "status": status}})


def _responses(call: Call, reply: Reply, chunks: list[tuple[str, ...]]) -> list[JsonObject]:
    """The reply as ``GenerateContentResponse`` objects, one per chunk of pieces (one for a blocked prompt).

    Every response carries ``usageMetadata``; the last one also the finish reason and the output token count.
    """
    prompt, output = reply.prompt_tokens, reply.completion_tokens
    common = {"modelVersion": call.model, "responseId": new_id("")}
    prompt_details = [{"modality": "TEXT", "tokenCount": prompt}]
    partial = {"promptTokenCount": prompt, "totalTokenCount": prompt, "promptTokensDetails": prompt_details}
    if reply.finish == "blocked":
        feedback = {"blockReason": "SAFETY", "safetyRatings": _BLOCKED_RATINGS}
        return [{"promptFeedback": feedback, "usageMetadata": partial, **common}]
    final = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
        "promptTokensDetails": prompt_details,
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": output}],
    }
    responses = []
    for i, pieces in enumerate(chunks, start=1):
        candidate: JsonObject = {"content": {"parts": [{"text": "".join(pieces)}], "role": "model"}}
        if i == len(chunks):
            candidate["finishReason"] = _FINISH[reply.finish]
        candidate["index"] = 0
        responses.append({"candidates": [candidate], "usageMetadata": final if i == len(chunks) else partial, **common})
    return responses


def _event(data: JsonObject) -> bytes:
    return f"data: {json.dumps(data)}\r\n\r\n".encode()
