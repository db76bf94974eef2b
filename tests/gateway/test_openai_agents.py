"""An agent's tool loop through the OpenAI-compatible face with the official openai SDK, sync and async, streamed
and not, on a model of each provider; structured output, reasoning and images through the same face."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from schemas.catalog import Provider
from schemas.settings import FleetSettings
from tests.e2e.emulator_api import requests_for
from tests.gateway.conftest import MODELS, TOKEN, start_gateway

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
ASK = [
    {"role": "system", "content": "You are a weather agent."},
    {"role": "user", "content": "What is the weather in Paris? [[tool=get_weather]]"},
]
Calls = list[tuple[str, str, dict[str, Any]]]


@pytest.fixture
async def client(gateway_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{gateway_url}/v1", max_retries=0) as client:
        yield client


def _calls(message: Any) -> Calls:
    return [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or ()]


async def _turn(client: openai.AsyncOpenAI, stream: bool, **body: Any) -> tuple[Any, str | None]:
    """The answer's message and finish reason; streamed, as the SDK's own accumulator assembles the chunks."""
    if not stream:
        done = await client.chat.completions.create(**body)
        return done.choices[0].message, done.choices[0].finish_reason
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    async for chunk in await client.chat.completions.create(**body, stream=True):
        state.handle_chunk(chunk)
    final = state.get_final_completion().choices[0]
    return final.message, final.finish_reason


@pytest.mark.parametrize("provider", list(Provider))
async def test_an_agent_loop_through_the_async_sdk(provider: Provider, client: openai.AsyncOpenAI) -> None:
    model, seen = MODELS[provider], {}
    for stream in (False, True):
        asked, finish = await _turn(client, stream, model=model, messages=ASK, tools=[WEATHER])
        assert finish == "tool_calls" and not asked.content
        ((call_id, name, arguments),) = seen[stream] = _calls(asked)
        assert name == "get_weather" and arguments == {"city": "city", "unit": "c"} and call_id
        if provider is Provider.GEMINI:  # its signature rides in the id, and must come back
            assert "__thought__" in call_id
        result = {"role": "tool", "tool_call_id": call_id, "content": "12 C, sunny"}
        history = [*ASK, asked.model_dump(exclude_none=True), result]  # as a dict (the reasoning test: the object)
        final, finish = await _turn(client, stream, model=model, messages=history, tools=[WEATHER])
        assert finish == "stop" and final.content.startswith("Echo: Result: 12 C, sunny") and not final.tool_calls
    assert [c[1:] for c in seen[True]] == [c[1:] for c in seen[False]]  # streamed calls, assembled, are the same


def _sync_loop(gateway_url: str, model: str, stream: bool) -> tuple[Calls, str]:
    """The loop with the sync SDK; streamed, the deltas assembled by hand, the assistant message written as a dict."""
    with openai.OpenAI(api_key=TOKEN, base_url=f"{gateway_url}/v1", max_retries=0) as sync:
        if stream:
            pieces: dict[int, dict[str, str]] = {}
            finish = None
            for chunk in sync.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], stream=True):  # type: ignore[arg-type,list-item]
                for piece in chunk.choices[0].delta.tool_calls or ():
                    call = pieces.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] = piece.id or call["id"]
                    call["name"] = (piece.function and piece.function.name) or call["name"]
                    call["arguments"] += (piece.function and piece.function.arguments) or ""
                finish = chunk.choices[0].finish_reason or finish
            assert finish == "tool_calls"
            calls = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(pieces.items())]
        else:
            done = sync.chat.completions.create(model=model, messages=ASK, tools=[WEATHER])  # type: ignore[arg-type,list-item]
            assert done.choices[0].finish_reason == "tool_calls"
            calls = _calls(done.choices[0].message)
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, n, a in calls
            ],
        }
        results = [{"role": "tool", "tool_call_id": i, "content": "9 C, rain"} for i, _, _ in calls]
        final = sync.chat.completions.create(model=model, messages=[*ASK, assistant, *results], tools=[WEATHER])  # type: ignore[arg-type,list-item]
        return calls, final.choices[0].message.content or ""


@pytest.mark.parametrize("provider", list(Provider))
async def test_an_agent_loop_through_the_sync_sdk(provider: Provider, gateway_url: str) -> None:
    plain = await asyncio.to_thread(_sync_loop, gateway_url, MODELS[provider], False)
    streamed = await asyncio.to_thread(_sync_loop, gateway_url, MODELS[provider], True)
    for calls, answer in (plain, streamed):
        assert [c[1:] for c in calls] == [("get_weather", {"city": "city", "unit": "c"})]
        assert answer.startswith("Echo: Result: 9 C, rain")


async def test_tool_choice_and_parallel_calls_reach_the_provider(client: openai.AsyncOpenAI, emulator: str) -> None:
    clock = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    ask = [{"role": "user", "content": "weather and time [[tool=get_weather,get_time]]"}]
    both = await client.chat.completions.create(model=MODELS[Provider.ANTHROPIC], messages=ask, tools=[WEATHER, clock])  # type: ignore[arg-type,list-item]
    assert [c.function.name for c in both.choices[0].message.tool_calls or ()] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    for provider in Provider:  # streamed, each call its own index, assembled as the unstreamed answer has them
        streamed, _ = await _turn(client, True, model=MODELS[provider], messages=ask, tools=[WEATHER, clock])
        assert [(name, args) for _, name, args in _calls(streamed)] == [
            ("get_weather", {"city": "city", "unit": "c"}),
            ("get_time", {}),
        ]
    one = await client.chat.completions.with_raw_response.create(
        model=MODELS[Provider.ANTHROPIC],
        messages=[{"role": "user", "content": "the time"}],
        tools=[WEATHER, clock],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
    )
    assert [c.function.name for c in one.parse().choices[0].message.tool_calls or ()] == ["get_time"]  # type: ignore[union-attr]
    sent = (await requests_for(emulator, one.headers["x-trace-id"]))[0]["body"]
    assert sent["tool_choice"] == {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}


async def test_reasoning_streams_apart_and_goes_back_with_the_calls(client: openai.AsyncOpenAI) -> None:
    """Anthropic refuses the next turn without its signed thinking: the face's extensions carry it both ways."""
    model = MODELS[Provider.ANTHROPIC]
    for stream in (False, True):
        body = {"model": model, "tools": [WEATHER], "reasoning_effort": "low"}
        asked, finish = await _turn(client, stream, messages=ASK, **body)
        assert finish == "tool_calls" and asked.reasoning_content == "Let me think this through."  # type: ignore[attr-defined]
        assert asked.reasoning_signature  # type: ignore[attr-defined]
        ((call_id, _, _),) = _calls(asked)
        history = [
            *ASK,
            asked,  # the SDK's message object itself: it sends back the extensions with the calls
            {"role": "tool", "tool_call_id": call_id, "content": "2 C"},
        ]
        final, _ = await _turn(client, stream, messages=history, **body)
        assert final.content.startswith("Echo: Result: 2 C")
    done = await client.chat.completions.create(
        model=MODELS[Provider.GEMINI],
        messages=[{"role": "user", "content": "think [[tokens=3]]"}],
        reasoning_effort="high",
    )
    assert done.usage is not None and done.usage.completion_tokens_details is not None
    assert done.usage.completion_tokens_details.reasoning_tokens == 5


@pytest.mark.parametrize("provider", list(Provider))
async def test_response_format_json_schema_returns_json(provider: Provider, client: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    for stream in (False, True):
        message, finish = await _turn(
            client,
            stream,
            model=MODELS[provider],
            messages=[{"role": "user", "content": "a city"}],
            response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}},
        )
        assert finish == "stop" and isinstance(json.loads(message.content)["city"], str)


async def test_an_image_part_reaches_a_model_that_takes_images(client: openai.AsyncOpenAI) -> None:
    png = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}}
    link = {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    for provider in Provider:
        done = await client.chat.completions.create(
            model=MODELS[provider],
            messages=[{"role": "user", "content": [{"type": "text", "text": "look [[tokens=4]]"}, png, link]}],  # type: ignore[list-item]
        )
        assert done.choices[0].message.content == "Echo: look <image> <image>"  # the emulator saw both images


async def test_an_image_is_refused_typed_on_a_model_without_vision(
    fleet_settings: FleetSettings, tmp_path: Path
) -> None:
    entry = {"id": "text-only-test", "provider": "openai", "tier": "fast", "capabilities": {"vision": False}}
    (tmp_path / "catalog.json").write_text(json.dumps({"models": [entry]}))
    gateway = await start_gateway(
        fleet_settings, LLM_GATEWAY_TOKENS=f"{TOKEN}=agent-v", LLM_CATALOG_FILE=str(tmp_path / "catalog.json")
    )
    try:
        url = str(gateway.ready_info["url"]).replace("0.0.0.0", "127.0.0.1")
        async with openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{url}/v1", max_retries=0) as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(
                    model="text-only-test",
                    messages=[
                        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}
                    ],
                )
    finally:
        await gateway.stop()
    assert caught.value.code == "InvalidRequestError" and "takes no images" in caught.value.message


STRICT = {**WEATHER, "function": {**WEATHER["function"], "strict": True}}


@pytest.mark.parametrize("provider", [Provider.OPENAI, Provider.ANTHROPIC])
async def test_the_sdks_stream_helper_parses_strict_tool_calls(
    provider: Provider, client: openai.AsyncOpenAI, emulator: str
) -> None:
    """The SDK's own helpers (`stream`, `parse`) take strict tools only: the face carries `strict` to the provider."""
    trace = f"strict-{provider.value}"
    async with client.chat.completions.stream(
        model=MODELS[provider], messages=ASK, tools=[STRICT], extra_headers={"X-Trace-Id": trace}
    ) as stream:
        kinds = {event.type async for event in stream}
        final = await stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds
    (call,) = final.choices[0].message.tool_calls or ()
    assert (call.function.name, call.function.parsed_arguments) == ("get_weather", {"city": "city", "unit": "c"})
    sent = (await requests_for(emulator, trace))[0]["body"]["tools"][0]
    assert (sent["function"] if provider is Provider.OPENAI else sent)["strict"] is True
    parsed = await client.chat.completions.parse(model=MODELS[provider], messages=ASK, tools=[STRICT])  # type: ignore[arg-type,list-item]
    assert [(c.function.name, c.function.arguments) for c in parsed.choices[0].message.tool_calls or ()] == [
        (call.function.name, call.function.arguments)
    ]


async def test_a_strict_tool_is_refused_typed_on_gemini(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=MODELS[Provider.GEMINI], messages=ASK, tools=[STRICT])  # type: ignore[arg-type,list-item]
    assert caught.value.code == "InvalidRequestError" and "no strict tools" in caught.value.message
