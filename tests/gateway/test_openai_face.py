"""The official openai SDK, sync and async, streaming and not, against the gateway, for a model of each provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from schemas.catalog import Provider
from tests.e2e.emulator_api import requests_for
from tests.gateway.conftest import AGENT, MODELS, TOKEN

pytestmark = pytest.mark.e2e


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def client(gateway_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=TOKEN, base_url=f"{gateway_url}/v1", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("provider", list(Provider))
async def test_async_sdk_completes_and_streams_on_every_provider(
    provider: Provider, client: openai.AsyncOpenAI
) -> None:
    model = MODELS[provider]
    done = await client.chat.completions.create(model=model, messages=_user("Hi there [[tokens=5]]"))  # type: ignore[arg-type]
    assert done.choices[0].message.content == "Echo: Hi there alpha bravo"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and (done.usage.completion_tokens, done.usage.prompt_tokens) == (5, 3)
    assert done.model.startswith(model.split("-")[0])
    stream = await client.chat.completions.create(
        model=model,
        messages=_user("Hi there [[tokens=5]]"),  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Hi there alpha bravo"
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]  # usage in the last chunk, with no choices, as OpenAI sends it
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 5


@pytest.mark.parametrize("provider", list(Provider))
async def test_sync_sdk_completes_and_streams_on_every_provider(provider: Provider, gateway_url: str) -> None:
    def call() -> tuple[str | None, str]:
        with openai.OpenAI(api_key=TOKEN, base_url=f"{gateway_url}/v1", max_retries=0) as sync:
            done = sync.chat.completions.create(model=MODELS[provider], messages=_user("sync [[tokens=3]]"))  # type: ignore[arg-type]
            stream = sync.chat.completions.create(
                model=MODELS[provider],
                messages=_user("sync [[tokens=3]]"),  # type: ignore[arg-type]
                stream=True,
            )
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            return done.choices[0].message.content, streamed

    assert await asyncio.to_thread(call) == ("Echo: sync alpha", "Echo: sync alpha")


async def test_text_parts_and_roles_become_one_request(client: openai.AsyncOpenAI, emulator: str) -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two [[tokens=4]]"}]},
    ]
    done = await client.chat.completions.with_raw_response.create(
        model=MODELS[Provider.OPENAI],
        messages=messages,  # type: ignore[arg-type]
        max_completion_tokens=3,
        extra_headers={"X-Trace-Id": "trace-parts-1", "X-Session-Id": "s-1"},
    )
    parsed = done.parse()
    assert parsed.choices[0].finish_reason == "length"  # 3 of 4 tokens: max_completion_tokens went through
    assert (done.headers["x-trace-id"], done.headers["x-session-id"]) == ("trace-parts-1", "s-1")
    assert done.headers["x-source-agent"] == AGENT
    sent = (await requests_for(emulator, "trace-parts-1"))[0]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["messages"][1]["content"] == "one\ntwo [[tokens=4]]"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "examples": []}}]}, "tools[0].function.examples"),
        ({"reasoning_effort": "minimal"}, "reasoning_effort"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "description": "b"}}},
            "response_format.json_schema.description",
        ),
        ({"n": 2}, "n"),
        ({"extra_body": {"logit_bias": {"1": 2}}}, "logit_bias"),
    ],
)
async def test_a_field_not_supported_is_a_400_naming_it(
    client: openai.AsyncOpenAI, extra: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=MODELS[Provider.OPENAI], messages=_user("hi"), **extra)  # type: ignore[call-overload]
    assert caught.value.param == param and param in caught.value.message


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}}, "image_url.detail"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "content[1]"),
    ],
)
async def test_a_part_the_fleet_cannot_carry_is_refused_by_name(
    client: openai.AsyncOpenAI, part: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=MODELS[Provider.OPENAI],
            messages=[{"role": "user", "content": [{"type": "text", "text": "see"}, part]}],  # type: ignore[list-item]
        )
    named = f"messages[0].{param}".replace(".image_url", ".content[1].image_url")
    assert caught.value.param == named and named in caught.value.message


async def test_fleet_errors_keep_their_type(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        await client.chat.completions.create(model="gpt-nonexistent", messages=_user("hi"))  # type: ignore[arg-type]
    assert unknown.value.code == "UnknownModelError"
    with pytest.raises(openai.BadRequestError) as rule:  # Anthropic takes no temperature: refused before queueing
        await client.chat.completions.create(model=MODELS[Provider.ANTHROPIC], messages=_user("hi"), temperature=0.5)  # type: ignore[arg-type]
    assert "temperature" in rule.value.message


async def test_a_stream_that_fails_midway_raises_in_the_sdk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODELS[Provider.ANTHROPIC],
        messages=_user("cut [[tokens=6]] [[fault=midstream]]"),  # type: ignore[arg-type]
        stream=True,
    )
    seen = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            seen.append(chunk)
    assert seen and "Overloaded" in str(caught.value.body)


async def test_models_lists_the_catalog(client: openai.AsyncOpenAI) -> None:
    ids = {m.id: m.owned_by async for m in client.models.list()}
    assert {ids.get("gpt-4.1-mini-2025-04-14"), ids.get("claude-haiku-4-5-20251001")} <= {"openai", "anthropic"}
    assert {"openai", "anthropic", "gemini"} <= set(ids.values())


async def test_a_caller_that_stops_reading_a_stream_stops_its_request(gateway_url: str) -> None:
    body = {
        "model": MODELS[Provider.GEMINI],
        "stream": True,
        "messages": _user("long [[tokens=200]] [[tokens_per_s=20]]"),
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=20) as http:
        async with http.stream("POST", "/v1/chat/completions", json=body) as stream:
            request_id = stream.headers["x-request-id"]
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("data: ")  # the role chunk; then the caller goes away
        after = await http.get(f"/v1/requests/{request_id}", params={"wait": 10})
    assert after.status_code == 409 and after.json()["error"]["code"] == "RequestCancelledError"
