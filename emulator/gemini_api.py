"""Gemini Developer API: ``POST /{v1|v1beta}/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``.

camelCase JSON; SSE events are ``data: <json>`` separated by ``\\r\\n\\r\\n`` like the real service.
A blocked prompt is a 200 with ``promptFeedback.blockReason`` and no candidates.
"""

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
    new_id,
    render_each,
    text_of,
    whole_number,
)
from emulator.replies import Agentic, Reply, count_tokens

_ACTIONS = {"generateContent": False, "streamGenerateContent": True}  # action -> stream
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}  # Gemini ends a call with STOP
_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
_NO_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
    "correctly. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
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
            agent=_agentic(model, body, contents),
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
        if reply.thinking or reply.calls:
            parts = _thought_parts(call, "".join(reply.thinking)) + _answer_parts(call, reply, reply.text)
            return json.dumps(_response(call, reply, new_id(""), parts, final=True)).encode()
        return json.dumps(_response(call, reply, new_id(""), reply.text, final=True)).encode()

    @override
    def frames(self, call: Call, reply: Reply) -> Frames:
        response_id = new_id("")
        if reply.thinking or reply.calls:  # a chunk per thought and per piece of text; the calls, whole, last
            chunks = [_thought_parts(call, t) for t in reply.thinking]
            chunks += [[{"text": piece}] for piece in reply.pieces[:-1]]
            chunks.append(_answer_parts(call, reply, reply.pieces[-1] if reply.pieces else ""))
            end = len(chunks) - 1
            events = [_event(_response(call, reply, response_id, c, final=i == end)) for i, c in enumerate(chunks)]
            return Frames(head=[], deltas=events, tail=[])
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


def _response(call: Call, reply: Reply, response_id: str, text: str | list[JsonObject], *, final: bool) -> JsonObject:
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
        parts = [{"text": text}] if isinstance(text, str) else text
        candidate: JsonObject = {"content": {"parts": parts, "role": "model"}}
        if final:
            candidate["finishReason"] = _FINISH[reply.finish]
            usage |= {
                "candidatesTokenCount": output,
                "totalTokenCount": prompt + output,
                "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": output}],
            }
            if reply.thinking:  # thoughts are billed apart from the candidates
                thoughts = len(reply.thinking)
                usage |= {"candidatesTokenCount": output - thoughts, "thoughtsTokenCount": thoughts}
        candidate["index"] = 0
        outcome = {"candidates": [candidate]}
    return {**outcome, "usageMetadata": usage, "modelVersion": call.model, "responseId": response_id}


def _thought_parts(call: Call, text: str) -> list[JsonObject]:
    return [{"text": text, "thought": True}] if text and call.agent.thinking else []


def _answer_parts(call: Call, reply: Reply, text: str) -> list[JsonObject]:
    """The answer's text (if any), then its calls; Gemini 3 signs the first call."""
    parts: list[JsonObject] = [{"text": text}] if text else []
    for index, planned in enumerate(reply.calls):
        part: JsonObject = {"functionCall": {"name": planned.name, "args": json.loads(planned.arguments)}}
        if index == 0 and call.model.startswith("gemini-3"):
            digest = hashlib.sha256(f"{call.prompt}{planned.arguments}".encode()).digest()
            part["thoughtSignature"] = base64.b64encode(digest).decode()
        parts.append(part)
    return parts


def _agentic(model: str, body: JsonObject, contents: list[Any]) -> Agentic:
    """Function declarations and responses, the calling mode, JSON output, thinking and images, as sent."""
    declarations = [d for t in body.get("tools") or () for d in _either(object_of(t), "functionDeclarations") or ()]
    tools = {str(d.get("name")): _either(d, "parametersJsonSchema") or d.get("parameters") for d in declarations}
    config = object_of(_either(object_of(_either(body, "toolConfig")), "functionCallingConfig"))
    allowed = _either(config, "allowedFunctionNames") or []
    choice = _MODES.get(str(config.get("mode") or "AUTO"), "auto")
    parts = [object_of(p) for c in contents if isinstance(c, dict) for p in c.get("parts") or ()]
    for image in (object_of(_either(p, "inlineData")) for p in parts if _either(p, "inlineData")):
        check_image(_either(image, "mimeType"), image.get("data"), None)
    for content in contents:
        calls = [object_of(p) for p in object_of(content).get("parts") or () if _either(object_of(p), "functionCall")]
        if calls and model.startswith("gemini-3") and not _either(calls[0], "thoughtSignature"):
            raise ApiError(400, _NO_SIGNATURE)
    last = [object_of(p) for p in object_of(contents[-1]).get("parts") or ()] if contents else []
    results = [
        object_of(_either(p, "functionResponse")).get("response") for p in last if _either(p, "functionResponse")
    ]
    generation = object_of(_either(body, "generationConfig"))
    thinking = object_of(_either(generation, "thinkingConfig"))
    return Agentic(
        tools=tools,
        choice=allowed[0] if choice == "required" and len(allowed) == 1 else choice,
        answered=" ".join(_result_text(r) for r in results) if results else None,
        schema=_either(generation, "responseJsonSchema") or _either(generation, "responseSchema"),
        json_object=_either(generation, "responseMimeType") == "application/json",
        thinking=bool(_either(thinking, "includeThoughts")),
        images=sum(1 for p in parts if _either(p, "inlineData") or _either(p, "fileData")),
    )


def _either(value: JsonObject, camel: str) -> Any:
    """A field by its JSON name or its proto name, as the API reads either (google-genai sends a function's
    `parameters_json_schema` under that name)."""
    if camel in value:
        return value[camel]
    return value.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def _result_text(response: Any) -> str:
    value = object_of(response)
    return str(value["result"]) if set(value) == {"result"} else json.dumps(value)


def _event(data: JsonObject) -> bytes:
    return f"data: {json.dumps(data)}\r\n\r\n".encode()
