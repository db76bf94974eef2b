"""How a chat-completions body becomes an `LLMRequest`, in process: every agents' field in OpenAI's form, and
each form the fleet cannot carry refused with the field named (the e2e tests run the same through the SDK)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.openai_face import to_request
from gateway.trace import Caller
from schemas.agents import ImagePart, NamedTool, ToolCall
from schemas.errors import InvalidRequestError

TOOL = {"type": "function", "function": {"name": "f", "description": None, "parameters": {"type": "object"}}}
BASE = {"model": "gemini-3.8-flash", "messages": [{"role": "user", "content": "hi"}]}


def _request(**fields: Any) -> Any:
    return to_request({**BASE, **fields}, Caller())[0]


def test_every_agents_field_in_openai_form() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "see"}, _image("data:image/webp;base64,UklG")]},
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "reasoning_content": "hm",
            "reasoning_signature": "rs",
            "tool_calls": [{"id": "c1__thought__sig", "type": "function", "function": {"name": "f", "arguments": ""}}],
        },
        {"role": "tool", "tool_call_id": "c1__thought__sig", "content": [{"type": "text", "text": "ok"}]},
    ]
    request = _request(
        messages=messages,
        tools=[{**TOOL, "function": {**TOOL["function"], "strict": True}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        parallel_tool_calls=True,
        response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}},
        reasoning_effort="medium",
    )
    user, assistant, result = request.messages
    assert user.content[1] == ImagePart(data="UklG", media_type="image/webp")
    assert assistant.tool_calls == [ToolCall(id="c1", name="f", arguments="", signature="sig")]
    assert (assistant.content, assistant.reasoning, assistant.reasoning_signature) == ("", "hm", "rs")
    assert (result.tool_call_id, result.content) == ("c1", "ok")
    assert request.tools[0].description == "" and request.tools[0].strict is True
    assert request.tool_choice == NamedTool(name="f")
    assert request.parallel_tool_calls is True and request.reasoning.effort == "medium"
    assert (request.response_format.name, request.response_format.strict) == ("out", False)


def test_plain_forms_of_the_agents_fields() -> None:
    assert _request(response_format={"type": "text"}).response_format is None  # OpenAI's default: none asked
    assert _request(response_format={"type": "json_object"}).response_format.type == "json_object"
    assert _request(tools=[TOOL], tool_choice="required").tool_choice == "required"
    url = _request(messages=[{"role": "user", "content": [_image("https://x/a.png")]}]).messages[0].content
    assert url == [ImagePart(url="https://x/a.png")]
    plain = _request()
    assert (plain.tools, plain.tool_choice, plain.response_format, plain.reasoning) == (None, None, None, None)


def _image(url: object, **more: object) -> dict[str, object]:
    return {"type": "image_url", "image_url": {"url": url, **more}}


def _user(*parts: object) -> list[dict[str, object]]:
    return [{"role": "user", "content": list(parts)}]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": {"role": "user"}}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "critic", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "messages[0].tool_calls"),
        ({"messages": _user(_image(None))}, "messages[0].content[0].image_url.url"),
        ({"messages": _user(_image("https://x", detail="low"))}, "messages[0].content[0].image_url.detail"),
        ({"messages": _user(_image("https://x", crop=1))}, "messages[0].content[0].image_url.crop"),
        ({"messages": _user(_image("data:image/png,AAAA"))}, "messages[0].content[0].image_url.url"),
        ({"messages": _user({"type": "file", "file": {}})}, "messages[0].content[0]"),
        ({"messages": [{"role": "assistant", "content": "x", "tool_calls": {}}]}, "messages[0].tool_calls"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"type": "custom"}]}]}, "messages[0].tool_calls[0]"),
        ({"tools": {"f": 1}}, "tools"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "tools[0]"),
        ({"tools": [{**TOOL, "function": {"name": "f", "examples": []}}]}, "tools[0].function.examples"),
        ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"response_format": {"type": "text", "extra": 1}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "x": 1}}},
            "response_format.json_schema.x",
        ),
        ({"reasoning_effort": "xhigh"}, "reasoning_effort"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_what_the_fleet_cannot_carry_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _request(**fields)
    assert caught.value.details["param"] == param
