"""The /_emulator/ endpoints, the server-wide options, concurrency and client disconnects."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anthropic
import openai
import pytest

from emulator.replies import prompt_hash
from emulator.server import Options

OPENAI_MODEL = "gpt-4.1-mini-2025-04-14"


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_stats_count_per_provider_trace_and_prompt(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic, control: Any
) -> None:
    for trace_id in ("t-1", "t-1", "t-2"):
        await openai_client.chat.completions.create(
            model=OPENAI_MODEL, messages=user("Hi"), extra_headers={"X-Trace-Id": trace_id}
        )
    await anthropic_client.messages.create(model="claude-haiku-4-5-20251001", max_tokens=5, messages=user("Yo"))
    stats = await control.stats()
    assert stats["requests"] == {"total": 4, "openai": 3, "anthropic": 1, "gemini": 0}
    assert stats["by_trace_id"] == {"t-1": 2, "t-2": 1}
    assert stats["by_prompt"] == {prompt_hash("Hi"): 3, prompt_hash("Yo"): 1}
    assert stats["open"] == {"total": 0, "openai": 0, "anthropic": 0, "gemini": 0}
    assert stats["max_open"] == {"total": 1, "openai": 1, "anthropic": 1, "gemini": 0}
    assert stats["disconnects"] == {"total": 0, "events": []}
    assert [entry["headers"].get("x-trace-id") for entry in await control.requests()] == ["t-1", "t-1", "t-2", None]
    assert await control.requests(trace_id="t-unknown") == []


async def test_reset_clears_counts_and_fail_times(openai_client: openai.AsyncOpenAI, control: Any) -> None:
    prompt = "Hi [[fault=500]] [[fail_times=1]]"
    with pytest.raises(openai.InternalServerError):
        await openai_client.chat.completions.create(model=OPENAI_MODEL, messages=user(prompt))
    await control.reset()
    assert set((await control.stats())["requests"].values()) == {0}
    assert await control.requests() == []
    with pytest.raises(openai.InternalServerError):  # the fail_times counter started again
        await openai_client.chat.completions.create(model=OPENAI_MODEL, messages=user(prompt))
    await openai_client.chat.completions.create(model=OPENAI_MODEL, messages=user(prompt))
    assert (await control.stats())["faults"] == {"500": 1}


async def test_max_open_counts_concurrent_requests(openai_client: openai.AsyncOpenAI, control: Any) -> None:
    async def call() -> None:
        await openai_client.chat.completions.create(model=OPENAI_MODEL, messages=user("Hi [[latency_ms=1000]]"))

    tasks = [asyncio.create_task(call()) for _ in range(20)]
    stats = await control.stats_when(lambda stats: stats["open"]["total"] == 20)
    assert stats["open"] == {"total": 20, "openai": 20, "anthropic": 0, "gemini": 0}
    await asyncio.gather(*tasks)
    stats = await control.stats()
    assert stats["open"]["total"] == 0
    assert stats["max_open"] == {"total": 20, "openai": 20, "anthropic": 0, "gemini": 0}


@pytest.mark.parametrize("url", [Options(tokens_per_s=50)], indirect=True)
async def test_cancelled_stream_is_counted_as_a_disconnect(openai_client: openai.AsyncOpenAI, control: Any) -> None:
    stream = await openai_client.chat.completions.create(
        model=OPENAI_MODEL, messages=user("Long [[tokens=500]]"), stream=True, extra_headers={"X-Trace-Id": "cancelled"}
    )
    received = 0
    async for _ in stream:
        received += 1
        if received == 3:
            break
    closed_at = time.time()
    await stream.close()
    stats = await control.stats_when(lambda stats: stats["disconnects"]["total"] > 0)
    assert stats["open"]["openai"] == 0
    (event,) = stats["disconnects"]["events"]
    assert stats["disconnects"]["total"] == 1
    assert event["provider"] == "openai"
    assert event["trace_id"] == "cancelled"
    assert closed_at <= event["at"] <= time.time()
    assert 0.015 <= event["after_s"] < 5  # 3 chunks in, at 50 tokens/s: mid-way through a 10 s stream


async def test_stalled_request_ends_when_the_client_gives_up(openai_client: openai.AsyncOpenAI, control: Any) -> None:
    with pytest.raises(openai.APITimeoutError):
        await openai_client.chat.completions.create(
            model=OPENAI_MODEL, messages=user("Hi [[fault=stall]]"), stream=True, timeout=0.2
        )
    stats = await control.stats_when(lambda stats: stats["open"]["total"] == 0)
    assert stats["disconnects"]["total"] == 1
    assert stats["faults"] == {"stall": 1}


@pytest.mark.parametrize("url", [Options(latency_ms=500)], indirect=True)
async def test_server_latency_and_the_tag_that_overrides_it(openai_client: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    await openai_client.chat.completions.create(model=OPENAI_MODEL, messages=user("Hi"))
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    await openai_client.chat.completions.create(model=OPENAI_MODEL, messages=user("Hi [[latency_ms=0]]"))
    assert time.monotonic() - started < 0.4


@pytest.mark.parametrize("url", [Options(tokens_per_s=100)], indirect=True)
async def test_tokens_per_s_paces_streams_and_replies(openai_client: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    stream = await openai_client.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[tokens=21]]"), stream=True
    )
    arrivals = [time.monotonic() - started async for chunk in stream if chunk.choices[0].delta.content]
    assert len(arrivals) == 21
    assert arrivals[-1] - arrivals[0] >= 0.2  # 20 intervals of 10 ms
    started = time.monotonic()
    await openai_client.chat.completions.create(model=OPENAI_MODEL, messages=user("[[tokens=20]]"))
    assert time.monotonic() - started >= 0.2


async def test_unknown_routes_and_tags(control: Any) -> None:
    status, _, _ = await control.post("/v1/completions", {}, {"Authorization": "Bearer k"})
    assert status == 404
    body = {"model": OPENAI_MODEL, "messages": user("Hi [[fault=teapot]] [[tokens=x]] [[other=1]]")}
    status, _, _ = await control.post("/v1/chat/completions", body, {"Authorization": "Bearer k"})
    assert status == 200
