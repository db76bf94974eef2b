"""The Anthropic adapter's agents' fields: tool_use and tool_result blocks, tool_choice, thinking (its text and
signature, sent back with the calls), structured output and images, against Anthropic's recorded transcripts and
docs examples (tests/fixtures/transcripts/README.md)."""

from __future__ import annotations

import json
from typing import Any

from schemas.agents import NamedTool, Tool, ToolCall
from schemas.catalog import Provider, resolve_model
from schemas.request import Message
from tests.workers.providers.replay import collect_items, make_request, transcript
from workers.providers.anthropic_agents import add_agent_fields
from workers.providers.normalised import ReasoningDelta

P = Provider.ANTHROPIC
HAIKU = resolve_model("claude-haiku-4-5")
WEATHER = Tool(
    name="get_weather",
    description="Lookup the weather for a given city",
    parameters={"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


def _loop() -> list[dict[str, Any]]:
    return json.loads(transcript("anthropic/messages.tool_loop.sdk-test.json"))  # type: ignore[no-any-return]


async def test_a_recorded_tool_loop_turn_by_turn(server, make_adapter) -> None:
    """Turn 1 of the SDK's recording answers with text and a tool_use; our turn 2, built from that answer and the
    tool's result, is the request the SDK sent (less the SDK's `caller` field)."""
    first, second = _loop()
    server.reply(json.dumps(first["response"]).encode())
    prompt = first["request"]["messages"][0]["content"]
    adapter = make_adapter(P)

    asked = await adapter.complete(make_request(HAIKU.id, messages=[{"role": "user", "content": prompt}]), HAIKU)

    assert asked.finish_reason == "tool_calls"
    assert asked.content == "I'll get the weather for each of those cities. Let me start by checking San Francisco."
    assert asked.tool_calls == [
        ToolCall(
            id="toolu_01LRanfq6DmHn1yDTB4d1SAh",
            name="get_weather",
            arguments='{"location": "San Francisco, CA", "units": "f"}',
        )
    ]
    result = second["request"]["messages"][2]["content"][0]["content"]
    messages = [
        Message(role="user", content=prompt),
        asked.message(),
        Message(role="tool", content=result, tool_call_id=asked.tool_calls[0].id),
    ]
    server.reply(json.dumps(second["response"]).encode())
    then = await adapter.complete(make_request(HAIKU.id, messages=messages, tools=[WEATHER]), HAIKU)

    recorded = second["request"]["messages"]
    for block in recorded[1]["content"]:
        block.pop("caller", None)
    assert server.last.body["messages"] == recorded
    assert server.last.body["tools"] == [
        {"name": "get_weather", "description": WEATHER.description, "input_schema": WEATHER.parameters}
    ]
    assert then.tool_calls[0].id == "toolu_01RWdcDdE8NAFDgZ8F9Xk2K7" and then.content == "Now let me check New York."


async def test_thinking_comes_back_apart_and_goes_back_signed(server, make_adapter) -> None:
    body = json.loads(transcript("anthropic/messages.nonstream.response.json"))
    body.update(json.loads(transcript("anthropic/messages.nonstream.thinking_tool_use.docs-example.json")))
    body["stop_reason"] = "tool_use"
    server.reply(json.dumps(body).encode())
    request = make_request(HAIKU.id, tools=[WEATHER], reasoning={"budget_tokens": 10000})
    adapter = make_adapter(P)

    answer = await adapter.complete(request, HAIKU)

    assert answer.reasoning == (
        "The user wants to know the current weather in Paris. I have access to a function `get_weather`..."
    )
    assert answer.reasoning_signature and answer.reasoning_signature.startswith("BDaL4VrbR2Oj0hO4")
    assert answer.content.startswith("I can help you get the current weather") and "thinking" not in answer.content
    assert answer.tool_calls == [
        ToolCall(id="toolu_01CswdEQBMshySk6Y9DFKrfq", name="get_weather", arguments='{"location": "Paris"}')
    ]
    assert server.last.body["thinking"] == {"type": "enabled", "budget_tokens": 10000}
    assert server.last.body["max_tokens"] == 10000 + 4096  # the budget counts inside max_tokens (default 4096)

    server.reply("anthropic/messages.nonstream.response.json")
    answered = [
        Message(role="user", content="Paris?"),
        answer.message(),
        Message(role="tool", content="88F", tool_call_id="toolu_01CswdEQBMshySk6Y9DFKrfq"),
    ]
    await adapter.complete(
        make_request(HAIKU.id, messages=answered, tools=[WEATHER], reasoning={"effort": "high"}), HAIKU
    )
    assistant = server.last.body["messages"][1]
    assert [b["type"] for b in assistant["content"]] == ["thinking", "text", "tool_use"]  # thinking first, as sent
    assert assistant["content"][0]["signature"] == answer.reasoning_signature
    assert server.last.body["thinking"] == {"type": "enabled", "budget_tokens": 16384}


async def test_streamed_thinking_of_the_docs_is_reasoning_deltas(server, make_adapter) -> None:
    server.reply("anthropic/messages.stream.thinking.docs-example.DERIVED.sse")

    items, final = await collect_items(
        make_adapter(P).stream(make_request(HAIKU.id, reasoning={"effort": "low"}), HAIKU)
    )

    assert items == [
        ReasoningDelta("Let me solve this step by step:\n\n1. First break down 27 * 453"),
        ReasoningDelta("\n2. 453 = 400 + 50 + 3"),
        "27 * 453 = 12,231",
    ]
    assert final.reasoning == "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3"
    assert final.reasoning_signature == "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."
    assert (final.content, final.finish_reason) == ("27 * 453 = 12,231", "stop")


async def test_structured_output_tool_choice_and_images_in_messages_form(server, make_adapter) -> None:
    server.reply("anthropic/messages.nonstream.structured_output.sdk-test.json")
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    image = Message(
        role="user",
        content=[
            {"type": "image", "data": "aGk=", "media_type": "image/png"},
            {"type": "image", "url": "https://x/cat.jpg"},
            {"type": "text", "text": "What are these?"},
        ],
    )
    request = make_request(
        HAIKU.id,
        messages=[image],
        tools=[WEATHER],
        tool_choice=NamedTool(name="get_weather"),
        parallel_tool_calls=False,
        response_format={"type": "json_schema", "json_schema": schema},
    )

    response = await make_adapter(P).complete(request, HAIKU)

    body = server.last.body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk="}},
        {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}},
        {"type": "text", "text": "What are these?"},
    ]
    assert json.loads(response.content)["total"] == 14.0


async def test_each_tool_choice_in_anthropics_words(server, make_adapter) -> None:
    adapter = make_adapter(P)
    for choice, parallel, sent in (
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", False, {"type": "none"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ):
        server.reply("anthropic/messages.nonstream.response.json")
        await adapter.complete(
            make_request(HAIKU.id, tools=[WEATHER], tool_choice=choice, parallel_tool_calls=parallel), HAIKU
        )
        assert server.last.body["tool_choice"] == sent


def test_a_strict_tool_is_sent_strict() -> None:
    params: dict[str, Any] = {}
    strict = WEATHER.model_copy(update={"strict": True})
    add_agent_fields(make_request(HAIKU.id, tools=[strict, WEATHER]), params, 1024)
    assert [tool.get("strict") for tool in params["tools"]] == [True, None]
