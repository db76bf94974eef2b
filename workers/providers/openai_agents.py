"""The agents' fields in OpenAI's Chat Completions form: content parts, tools, tool calls and results,
`response_format` and `reasoning_effort`; and the tool calls of its answers read back."""

from __future__ import annotations

from typing import Any

from schemas.agents import ImagePart, NamedTool, Tool, ToolCall
from schemas.request import LLMRequest, Message
from workers.providers.normalised import ToolCallDelta

__all__ = ["add_agent_fields", "message", "tool_call_deltas", "tool_calls"]


def message(m: Message) -> dict[str, Any]:
    """One message in Chat Completions' form (text stays a string, as it always was sent)."""
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text}
    content: Any = m.content if isinstance(m.content, str) else [_part(p) for p in m.content]
    if not m.tool_calls:
        return {"role": m.role, "content": content}
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls
    ]
    return {"role": "assistant", "content": content or None, "tool_calls": calls}


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        url = part.url if part.url is not None else f"data:{part.media_type};base64,{part.data}"
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "text", "text": part.text}


def add_agent_fields(request: LLMRequest, params: dict[str, Any], *, reasoning_model: bool) -> None:
    """Tools, tool_choice, parallel_tool_calls, response_format and reasoning_effort, as the request sets them."""
    if request.tools is not None:
        params["tools"] = [{"type": "function", "function": _function(t)} for t in request.tools]
    choice = request.tool_choice
    if choice is not None:
        params["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}} if isinstance(choice, NamedTool) else choice
        )
    if request.parallel_tool_calls is not None:
        params["parallel_tool_calls"] = request.parallel_tool_calls
    fmt = request.response_format
    if fmt is not None:
        params["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.json_schema, "strict": fmt.strict}}
            if fmt.json_schema is not None
            else {"type": "json_object"}
        )
    if request.reasoning is not None and reasoning_model:
        params["reasoning_effort"] = request.reasoning.as_effort()


def _function(tool: Tool) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return function if tool.strict is None else {**function, "strict": tool.strict}


def tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    """The function calls of an answer's message (other kinds of call, if any, are not ours to run)."""
    return [
        ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"].get("arguments") or "")
        for c in message.get("tool_calls") or ()
        if c.get("type", "function") == "function"
    ]


def tool_call_deltas(pieces: list[dict[str, Any]]) -> list[ToolCallDelta]:
    """A chunk's `delta.tool_calls` as pieces of calls (id and name on a call's first piece; a piece without an
    index is the first call's, as some OpenAI-compatible servers send a lone call)."""
    out = []
    for piece in pieces:
        function = piece.get("function") or {}
        out.append(
            ToolCallDelta(piece.get("index", 0), piece.get("id"), function.get("name"), function.get("arguments") or "")
        )
    return out
