"""The emulator speaks tools, tool results, JSON output, thinking and images, as the SDKs read them (their typed
paths and their stream helpers, which assemble tool calls and thinking themselves)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from emulator.agents import example

TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"enum": ["c", "f"]},
            "hourly": {"type": ["boolean", "null"]},
            "places": {"type": "array", "items": {"type": "object", "properties": {"lat": {"type": "number"}}}},
        },
    },
}
ARGUMENTS = {"city": "city", "days": 1, "unit": "c", "hourly": True, "places": [{"lat": 1.5}]}
OPENAI_TOOLS: Any = [{"type": "function", "function": TOOL}]
ANTHROPIC_TOOLS: Any = [{"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}]


def test_examples_follow_the_schema() -> None:
    assert example(TOOL["parameters"]) == ARGUMENTS
    assert example({"anyOf": [{"const": 3}, {"type": "string"}]}) == 3
    assert example({"$ref": "#/x"}, "name") == "name"


async def test_openai_tool_calls_whole_and_streamed(openai_client: openai.AsyncOpenAI) -> None:
    ask: Any = [{"role": "user", "content": "weather? [[tool=get_weather,get_weather]]"}]
    whole = await openai_client.chat.completions.create(model="gpt-4.1-mini", messages=ask, tools=OPENAI_TOOLS)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [ARGUMENTS, ARGUMENTS]  # type: ignore[union-attr]
    assert len({c.id for c in calls}) == 2
    usage = whole.usage
    fragments = sum(-(-len(c.function.arguments) // 8) for c in calls)  # type: ignore[union-attr]
    assert usage is not None and usage.completion_tokens == fragments  # a token per streamed piece of arguments

    async with openai_client.chat.completions.stream(
        model="gpt-4.1-mini", messages=ask, tools=OPENAI_TOOLS, parallel_tool_calls=False
    ) as stream:
        final = await stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in streamed] == [ARGUMENTS]  # one call: parallel off
    assert final.choices[0].finish_reason == "tool_calls"


async def test_openai_tool_results_json_images_and_reasoning(openai_client: openai.AsyncOpenAI) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages: Any = [
        {"role": "user", "content": "weather? [[tool=get_weather]]"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    answer = await openai_client.chat.completions.create(model="gpt-4.1-mini", messages=messages, tools=OPENAI_TOOLS)
    assert (answer.choices[0].message.content or "").startswith("Echo: Result: sunny")

    schema = {"type": "object", "properties": {"total": {"type": "number"}}}
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    made = await openai_client.chat.completions.create(
        model="gpt-5", messages=messages[:1], response_format=fmt, reasoning_effort="low"
    )
    assert json.loads(made.choices[0].message.content or "") == {"total": 1.5}
    assert (
        made.usage
        and made.usage.completion_tokens_details
        and made.usage.completion_tokens_details.reasoning_tokens == 5
    )

    image: Any = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]}
    ]
    seen = await openai_client.chat.completions.create(
        model="gpt-4.1-mini", messages=image, response_format={"type": "json_object"}
    )
    assert json.loads(seen.choices[0].message.content or "") == {"echo": "<image>"}
    image[0]["content"][0]["image_url"]["url"] = "data:image/png;base64,not base64!"
    with pytest.raises(openai.BadRequestError, match="not base64"):
        await openai_client.chat.completions.create(model="gpt-4.1-mini", messages=image)
    with pytest.raises(openai.BadRequestError, match="'nope' is not among"):
        await openai_client.chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "[[tool=nope]]"}], tools=OPENAI_TOOLS
        )


async def test_anthropic_thinking_and_tool_use_whole_and_streamed(anthropic_client: anthropic.AsyncAnthropic) -> None:
    ask: Any = [{"role": "user", "content": "weather? [[tool=get_weather]]"}]
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    whole = await anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=2000, messages=ask, tools=ANTHROPIC_TOOLS, thinking=thinking
    )
    assert [b.type for b in whole.content] == ["thinking", "tool_use"] and whole.stop_reason == "tool_use"
    assert whole.content[1].input == ARGUMENTS  # type: ignore[union-attr]

    async with anthropic_client.messages.stream(
        model="claude-haiku-4-5", max_tokens=2000, messages=ask, tools=ANTHROPIC_TOOLS, thinking=thinking
    ) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"]
    assert final.content[0].thinking == "Let me think this through." and final.content[0].signature  # type: ignore[union-attr]
    assert final.content[1].input == ARGUMENTS  # type: ignore[union-attr]

    result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": final.content[1].id, "content": "sunny"}],
    }  # type: ignore[union-attr]
    unsigned = [*ask, {"role": "assistant", "content": [final.content[1].model_dump()]}, result]
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        await anthropic_client.messages.create(
            model="claude-haiku-4-5", max_tokens=2000, messages=unsigned, thinking=thinking
        )
    signed = [*ask, {"role": "assistant", "content": [b.model_dump() for b in final.content]}, result]
    answer = await anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=2000, messages=signed, thinking=thinking
    )
    assert answer.content[-1].text.startswith("Echo: Result: sunny")  # type: ignore[union-attr]


async def test_anthropic_structured_output_and_images(anthropic_client: anthropic.AsyncAnthropic) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "aGk="}}
    messages: Any = [{"role": "user", "content": [image, {"type": "text", "text": "what?"}]}]
    output: Any = {
        "format": {"type": "json_schema", "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    }
    made = await anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=messages, output_config=output
    )
    assert json.loads(made.content[0].text) == {"n": 1}  # type: ignore[union-attr]
    image["source"]["media_type"] = "image/bmp"
    with pytest.raises(anthropic.BadRequestError, match="media type"):
        await anthropic_client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=messages)


GEMINI_SDK_WARNING = (
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged:DeprecationWarning"
)


@pytest.mark.filterwarnings(GEMINI_SDK_WARNING)
async def test_gemini_calls_thoughts_and_signatures(gemini_client: genai.Client) -> None:
    declaration = types.FunctionDeclaration(
        name="get_weather", description=TOOL["description"], parameters_json_schema=TOOL["parameters"]
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_level=types.ThinkingLevel.LOW),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    ask = "weather? [[tool=get_weather]]"
    whole = await gemini_client.aio.models.generate_content(model="gemini-3.8-flash", contents=ask, config=config)
    (call,) = whole.function_calls or []
    assert (call.name, call.args) == ("get_weather", ARGUMENTS)
    parts = whole.candidates[0].content.parts  # type: ignore[index,union-attr]
    assert parts[0].thought and parts[0].text == "Let me think this through."  # type: ignore[index]
    assert parts[1].thought_signature  # type: ignore[index]
    assert whole.usage_metadata and whole.usage_metadata.thoughts_token_count == 5

    chunks = [
        c
        async for c in await gemini_client.aio.models.generate_content_stream(
            model="gemini-3.8-flash", contents=ask, config=config
        )
    ]
    assert [p.thought for p in chunks[0].candidates[0].content.parts] == [True]  # type: ignore[index,union-attr]
    assert chunks[-1].function_calls and chunks[-1].function_calls[0].args == ARGUMENTS

    turn = types.Content(role="model", parts=[types.Part(function_call=call)])  # its signature dropped
    answer = types.Content(
        role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": "sunny"})]
    )
    with pytest.raises(genai_errors.ClientError, match="thought_signature"):
        await gemini_client.aio.models.generate_content(
            model="gemini-3.8-flash", contents=[ask, turn, answer], config=config
        )
    signed = types.Content(role="model", parts=[parts[1]])  # type: ignore[index]
    final = await gemini_client.aio.models.generate_content(
        model="gemini-3.8-flash", contents=[ask, signed, answer], config=config
    )
    assert (final.text or "").startswith("Echo: Result: sunny")


@pytest.mark.filterwarnings(GEMINI_SDK_WARNING)
async def test_gemini_json_output_and_images(gemini_client: genai.Client) -> None:
    image = types.Part.from_bytes(data=b"hi", mime_type="image/png")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema)
    made = await gemini_client.aio.models.generate_content(
        model="gemini-3.8-flash", contents=[image, "what?"], config=config
    )
    assert json.loads(made.text or "") == {"ok": True}
    plain = types.GenerateContentConfig(response_mime_type="application/json")
    echoed = await gemini_client.aio.models.generate_content(
        model="gemini-3.8-flash", contents=[image, "what?"], config=plain
    )
    assert json.loads(echoed.text or "") == {"echo": "what? <image>"}
