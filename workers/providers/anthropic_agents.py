"""The agents' fields in Anthropic's Messages form: content blocks (text, images), `tool_use` and `tool_result`
blocks, `tools` and `tool_choice`, `thinking` and `output_config`; and an answer's blocks read back."""

from __future__ import annotations

import json
from typing import Any

from schemas.agents import ImagePart, NamedTool, Tool, ToolCall
from schemas.request import LLMRequest, Message
from workers.providers import normalised

__all__ = ["add_agent_fields", "messages", "read_blocks"]


def messages(request: LLMRequest) -> list[dict[str, Any]]:
    """The conversation without its system messages; a run of tool results is one user message of `tool_result`
    blocks (as the API wants them, right after the assistant's `tool_use`)."""
    out: list[dict[str, Any]] = []
    for m in normalised.turns(request.messages):
        if isinstance(m, list):
            results = [{"type": "tool_result", "tool_use_id": r.tool_call_id, "content": r.text} for r in m]
            out.append({"role": "user", "content": results})
        elif m.role == "assistant" and (m.tool_calls or m.reasoning_signature):
            out.append({"role": "assistant", "content": _assistant_blocks(m)})
        else:
            content = m.content if isinstance(m.content, str) else [_block(p) for p in m.content]
            out.append({"role": m.role, "content": content})
    return out


def _assistant_blocks(m: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if m.reasoning_signature is not None:  # thinking goes back first, whole and signed, or the API refuses the turn
        blocks.append({"type": "thinking", "thinking": m.reasoning or "", "signature": m.reasoning_signature})
    if m.text:
        blocks.append({"type": "text", "text": m.text})
    for call in m.tool_calls or ():
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.parsed_arguments()})
    return blocks


def _block(part: Any) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        source = (
            {"type": "url", "url": part.url}
            if part.url is not None
            else {"type": "base64", "media_type": part.media_type, "data": part.data}
        )
        return {"type": "image", "source": source}
    return {"type": "text", "text": part.text}


def _tool(tool: Tool) -> dict[str, Any]:
    body = {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
    return body if tool.strict is None else {**body, "strict": tool.strict}


def add_agent_fields(request: LLMRequest, params: dict[str, Any], max_tokens: int) -> None:
    """Tools, tool_choice (with `disable_parallel_tool_use`), thinking and output_config, as the request sets
    them; `max_tokens` grows by the thinking budget when the request set none (the budget counts inside it)."""
    if request.tools is not None:
        params["tools"] = [_tool(t) for t in request.tools]
    choice = _tool_choice(request)
    if choice is not None:
        params["tool_choice"] = choice
    if request.response_format is not None and request.response_format.json_schema is not None:
        params["output_config"] = {"format": {"type": "json_schema", "schema": request.response_format.json_schema}}
    reasoning = request.reasoning
    if reasoning is not None:
        budget = reasoning.as_budget()
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if request.max_tokens is None:
            params["max_tokens"] = max_tokens + budget


def _tool_choice(request: LLMRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is None:
        return None
    if isinstance(choice, NamedTool):
        out: dict[str, Any] = {"type": "tool", "name": choice.name}
    else:
        out = {"type": {"required": "any", None: "auto"}.get(choice, choice)}
    if request.parallel_tool_calls is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def read_blocks(blocks: list[dict[str, Any]]) -> tuple[str, list[ToolCall], str, str | None]:
    """An answer's text, tool calls, thinking text and thinking signature (redacted thinking left out)."""
    text, thinking, calls, signature = [], [], [], None
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            text.append(block["text"])
        elif kind == "tool_use":
            calls.append(ToolCall(id=block["id"], name=block["name"], arguments=json.dumps(block.get("input") or {})))
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
            signature = block.get("signature") or signature
    return "".join(text), calls, "".join(thinking), signature
