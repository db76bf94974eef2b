"""The agents' fields in the Gemini API's JSON: parts (text, `inlineData`, `fileData`), `functionCall` and
`functionResponse` parts, `tools.functionDeclarations`, `toolConfig`, `responseJsonSchema` and
`thinkingConfig`; and an answer's parts read back.

Gemini gives its calls no ids: each gets one of ours, stable (the request's id and the call's place), and a
tool result finds its call's name by that id on the way back in, as `functionResponse` wants the name.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from typing import Any

from schemas.agents import ImagePart, NamedTool, ToolCall
from schemas.catalog import ModelInfo
from schemas.request import LLMRequest, Message
from workers.providers import normalised

__all__ = ["add_agent_fields", "call_id", "contents", "read_call"]

_ROLES = {"user": "user", "assistant": "model"}
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def call_id(request_id: str, index: int) -> str:
    """The id of the `index`th call of an answer to `request_id`: the same every time the answer is read."""
    return f"call_{hashlib.blake2b(request_id.encode(), digest_size=6).hexdigest()}_{index}"


def contents(request: LLMRequest) -> list[dict[str, Any]]:
    """The conversation (system messages left out) as `contents`; a run of tool results is one user turn of
    `functionResponse` parts, each named after the call it answers."""
    names = {c.id: c.name for m in request.messages for c in m.tool_calls or ()}
    out: list[dict[str, Any]] = []
    for m in normalised.turns(request.messages):
        if isinstance(m, list):
            results = [
                {"functionResponse": {"name": names.get(r.tool_call_id or "", ""), "response": _response(r.text)}}
                for r in m
            ]
            out.append({"role": "user", "parts": results})
        else:
            out.append({"role": _ROLES[m.role], "parts": _parts(m)})
    return out


def _parts(m: Message) -> list[dict[str, Any]]:
    if isinstance(m.content, str):
        parts = [{"text": m.content}] if m.content or not m.tool_calls else []
    else:
        parts = [_part(p) for p in m.content]
    for call in m.tool_calls or ():
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.parsed_arguments()}}
        if call.signature is not None:  # sent back with its call, as Gemini 3 requires
            part["thoughtSignature"] = call.signature
        parts.append(part)
    return parts


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        if part.data is not None:
            return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
        media_type = mimetypes.guess_type(part.url or "")[0] or "image/jpeg"
        return {"fileData": {"mimeType": media_type, "fileUri": part.url}}
    return {"text": part.text}


def _response(text: str) -> dict[str, Any]:
    """A tool's result as the object `functionResponse.response` must be: the JSON object it wrote, or its text."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def add_agent_fields(request: LLMRequest, body: dict[str, Any], generation: dict[str, Any], model: ModelInfo) -> None:
    """Function declarations, the function-calling mode, JSON output and thinking, as the request sets them.
    `parallel_tool_calls` has no Gemini switch and is not sent."""
    if request.tools is not None:
        declarations = [
            {"name": t.name, "description": t.description, "parametersJsonSchema": t.parameters} for t in request.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    choice = request.tool_choice
    if choice is not None:
        config: dict[str, Any] = {"mode": "ANY" if isinstance(choice, NamedTool) else _MODES[choice]}
        if isinstance(choice, NamedTool):
            config["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": config}
    fmt = request.response_format
    if fmt is not None:
        generation["responseMimeType"] = "application/json"
        if fmt.json_schema is not None:
            generation["responseJsonSchema"] = fmt.json_schema
    reasoning = request.reasoning
    if reasoning is not None:
        thinking: dict[str, Any] = {"includeThoughts": True}
        if model.id.startswith("gemini-2"):  # Gemini 2.5 takes a budget; from 3 on a level
            thinking["thinkingBudget"] = reasoning.as_budget()
        else:
            thinking["thinkingLevel"] = reasoning.as_effort().upper()
        generation["thinkingConfig"] = thinking


def read_call(part: dict[str, Any], request_id: str, index: int) -> ToolCall:
    """A `functionCall` part as a tool call: its id (Gemini's, or ours), and its `thoughtSignature` kept."""
    call = part["functionCall"]
    return ToolCall(
        id=call.get("id") or call_id(request_id, index),
        name=call["name"],
        arguments=json.dumps(call.get("args") or {}),
        signature=part.get("thoughtSignature"),
    )
