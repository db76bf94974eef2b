"""An agent's loop through the fleet, on each provider: a request with tools, the model's tool call, the tool's
result sent back, the final answer; non-streamed and streamed, with real worker processes and the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from producer import LLMClient
from schemas.agents import Tool
from schemas.catalog import Provider
from schemas.events import StreamEvent, ToolCallEvent
from schemas.request import LLMRequest, Message
from schemas.response import LLMResponse
from schemas.settings import FleetSettings
from tests.e2e.conftest import Fleet
from tests.e2e.emulator_api import requests_for

pytestmark = pytest.mark.e2e

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}
WEATHER = Tool(
    name="get_weather",
    description="The weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
    },
)


async def _ask(client: LLMClient, request: LLMRequest) -> tuple[LLMResponse, list[StreamEvent]]:
    """The response, and (streamed) the events that came before it."""
    if not request.stream:
        return await client.complete(request, timeout=20), []
    events = [e async for e in client.events(request, timeout=20)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    done = events[-1]
    assert done.type == "done" and all(e.type not in ("error", "cancelled", "done") for e in events[:-1])
    return done.response, events[:-1]


def _assembled(events: list[StreamEvent]) -> list[tuple[str | None, str | None, str]]:
    calls: dict[int, list[str | None]] = {}
    for event in events:
        if isinstance(event, ToolCallEvent):
            call = calls.setdefault(event.index, [None, None, ""])
            call[0], call[1] = event.id or call[0], event.name or call[1]
            call[2] = (call[2] or "") + event.arguments
    return [(c[0], c[1], c[2] or "") for _, c in sorted(calls.items())]


@pytest.mark.parametrize("provider", list(Provider))
async def test_an_agent_loop_through_the_fleet(provider: Provider, fleet: Fleet, emulator_url: str) -> None:
    settings, _ = await fleet(provider)
    async with LLMClient(settings=settings) as client:
        for stream in (False, True):
            messages = [
                Message(role="system", content="You are a weather agent."),
                Message(role="user", content="What is the weather in Paris? [[tool=get_weather]]"),
            ]
            first = LLMRequest(model=MODELS[provider], messages=messages, tools=[WEATHER], stream=stream)
            asked, events = await _ask(client, first)

            assert asked.finish_reason == "tool_calls" and asked.content == ""
            (call,) = asked.tool_calls
            assert call.name == "get_weather" and call.id
            assert json.loads(call.arguments) == {"city": "city", "unit": "c"}  # built from the tool's schema
            if stream:  # the deltas, joined, are the calls of the done event
                assert _assembled(events) == [(c.id, c.name, c.arguments) for c in asked.tool_calls]
                assert len([e for e in events if isinstance(e, ToolCallEvent)]) >= 1

            answered = [*messages, asked.message(), Message(role="tool", content="12 C, sunny", tool_call_id=call.id)]
            second = LLMRequest(model=MODELS[provider], messages=answered, tools=[WEATHER], stream=stream)
            final, events = await _ask(client, second)

            assert final.finish_reason == "stop" and not final.tool_calls
            assert final.content.startswith("Echo: Result: 12 C, sunny")
            if stream:
                assert "".join(e.text for e in events if e.type == "delta") == final.content  # type: ignore[union-attr]
            sent = (await requests_for(emulator_url, second.trace_id))[-1]["body"]
            assert call.id in json.dumps(sent) or provider is Provider.GEMINI  # Gemini's ids are ours alone


REASONING_MODELS = {
    Provider.OPENAI: "gpt-6-luna",
    Provider.ANTHROPIC: "claude-haiku-4-5",
    Provider.GEMINI: "gemini-3.8-flash",
}


@pytest.mark.parametrize("provider", list(Provider))
async def test_reasoning_streams_apart_and_goes_back_with_the_calls(provider: Provider, fleet: Fleet) -> None:
    """Reasoning deltas come before the call; the reasoning and its signature (Anthropic's, on the thinking;
    Gemini's, on the call) travel back with the assistant's turn, which both refuse without them (as the emulator
    does)."""
    settings, _ = await fleet(provider)
    model = REASONING_MODELS[provider]
    async with LLMClient(settings=settings) as client:
        messages = [Message(role="user", content="Weather in Oslo? [[tool=get_weather]]")]
        first = LLMRequest(model=model, messages=messages, tools=[WEATHER], reasoning={"effort": "low"}, stream=True)
        asked, events = await _ask(client, first)
        assert asked.finish_reason == "tool_calls" and asked.usage.reasoning_tokens
        shown = "".join(e.text for e in events if e.type == "reasoning")  # type: ignore[union-attr]
        assert shown == (asked.reasoning or "")  # OpenAI shows none of it; the others all of it
        if provider is not Provider.OPENAI:
            assert shown == "Let me think this through."
        signed = {Provider.ANTHROPIC: asked.reasoning_signature, Provider.GEMINI: asked.tool_calls[0].signature}
        assert signed.get(provider, "none to send back")  # what the provider checks on the next turn
        (call,) = asked.tool_calls
        answered = [*messages, asked.message(), Message(role="tool", content="-3 C", tool_call_id=call.id)]
        then = LLMRequest(model=model, messages=answered, tools=[WEATHER], reasoning={"effort": "low"})
        final, _ = await _ask(client, then)
        assert final.content.startswith("Echo: Result: -3 C") and final.finish_reason == "stop"


async def test_late_subscribers_get_every_piece_and_stream_yields_text_only(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.ANTHROPIC)
    ask = Message(role="user", content="Weather? [[tool=get_weather]] [[tokens_per_s=200]]")
    request = LLMRequest(
        model="claude-haiku-4-5", messages=[ask], tools=[WEATHER], reasoning={"effort": "low"}, stream=True
    )
    async with LLMClient(settings=settings) as client:
        first = client.events(request, timeout=20)
        head = [await anext(first)]
        async with LLMClient(settings=settings) as late:  # joins while the pieces are going out
            during = [e async for e in late.subscribe(request.request_id, timeout=20)]
        rest = [e async for e in first]
        assert during == head + rest  # every event, in order, once
        assert [e.type for e in during].count("done") == 1 and during[-1].type == "done"
        assert {e.type for e in during[:-1]} == {"reasoning", "tool_call"}
        assert _assembled(during) == [(c.id, c.name, c.arguments) for c in during[-1].response.tool_calls]  # type: ignore[union-attr]
        async with LLMClient(settings=settings) as later:  # after the end: the kept copy
            assert [e async for e in later.subscribe(request.request_id, timeout=5)] == during
        again = request.model_copy(update={"request_id": "agents-stream-text"})
        assert [t async for t in client.stream(again, timeout=20)] == []  # no text: a call, and thinking


def _cli(args: list[str], settings: FleetSettings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix}
    return subprocess.run(
        [sys.executable, "-m", "llm_fleet", "complete", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_cli_sends_tools_and_prints_the_calls(fleet: Fleet, tmp_path: Path) -> None:
    settings, _ = await fleet(Provider.OPENAI)
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([WEATHER.model_dump()]))
    base = ["--model", "gpt-4.1-mini", "--tools", str(tools)]

    as_json = await asyncio.to_thread(_cli, [*base, "--json", "weather? [[tool=get_weather]]"], settings)
    assert as_json.returncode == 0, as_json.stderr
    (call,) = json.loads(as_json.stdout)["tool_calls"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "city", "unit": "c"})

    plain = await asyncio.to_thread(_cli, [*base, "--stream", "--tool-choice", "get_weather", "weather?"], settings)
    assert plain.returncode == 0, plain.stderr
    assert re.fullmatch(r'\ntool call call_\w+ get_weather\(\{"city": "city", "unit": "c"\}\)\n', plain.stdout)

    refused = await asyncio.to_thread(_cli, [*base, "--json", "--tool-choice", "nope", "x"], settings)
    assert refused.returncode == 1 and "'nope', which is not among the tools" in refused.stderr
    missing = await asyncio.to_thread(
        _cli, ["--model", "gpt-4.1-mini", "--tools", str(tmp_path / "none"), "x"], settings
    )
    assert missing.returncode == 1 and "--tools" in missing.stderr


async def test_a_model_the_fleet_chooses_can_serve_the_request(fleet: Fleet) -> None:
    settings, _ = await fleet(*Provider)
    ask = [Message(role="user", content="hello there")]
    async with LLMClient(settings=settings) as client:
        plain = await client.complete(LLMRequest(messages=ask, tier="fast"), timeout=20)
        as_json = await client.complete(
            LLMRequest(messages=ask, tier="fast", response_format={"type": "json_object"}), timeout=20
        )
    assert plain.provider is Provider.ANTHROPIC  # the fast tier's cheapest, for text
    assert as_json.provider is not Provider.ANTHROPIC  # Anthropic has no JSON mode: left out of the choice
    assert json.loads(as_json.content) == {"echo": "hello there"}
    assert as_json.selection is not None and not any("claude" in m for m in as_json.selection.fallbacks)
