"""Streaming over Redis, end to end: every token to every subscriber, late ones too, one terminal event."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from launcher.processes import Process
from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import OverloadedError, ProviderUnavailableError, RequestCancelledError, ResultTimeoutError
from schemas.events import StreamEvent
from schemas.request import LLMRequest
from schemas.settings import FleetSettings
from tests.e2e.emulator_api import requests_for, stats

pytestmark = pytest.mark.e2e

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}


def _request(model: str, text: str) -> LLMRequest:
    return LLMRequest(model=model, messages=[{"role": "user", "content": text}], stream=True)


async def _collect(events: object) -> list[StreamEvent]:
    return [e async for e in events]  # type: ignore[attr-defined]


def _check_complete(events: list[StreamEvent], tokens: int) -> str:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # in order, none lost or twice
    *deltas, done = events
    assert done.type == "done" and all(e.type == "delta" for e in deltas)
    text = "".join(e.text for e in deltas)  # type: ignore[union-attr]
    assert text == done.response.content
    assert done.response.usage.completion_tokens == tokens
    assert done.response.usage.prompt_tokens > 0
    return text


@pytest.mark.parametrize("provider", list(Provider))
async def test_every_token_in_order_with_usage(
    provider: Provider, client: LLMClient, workers: dict[Provider, Process]
) -> None:
    request = _request(MODELS[provider], "count [[tokens=40]]")
    events = await _collect(client.events(request, timeout=20))
    text = _check_complete(events, 40)
    assert text == (await client.result(request.request_id, timeout=5)).content  # stored like any result
    tokens = [t async for t in client.stream(_request(MODELS[provider], "count [[tokens=40]]"), timeout=20)]
    assert "".join(tokens) == text


async def test_late_subscribers_get_the_whole_stream(
    client: LLMClient, workers: dict[Provider, Process], fleet_settings: FleetSettings
) -> None:
    request = _request(MODELS[Provider.ANTHROPIC], "slowly [[tokens=30]] [[tokens_per_s=100]]")
    first = client.events(request, timeout=20)
    head = [await anext(first), await anext(first)]
    async with LLMClient(settings=fleet_settings) as late:  # joins after the first tokens went out
        during = await _collect(late.subscribe(request.request_id, timeout=20))
    rest = await _collect(first)
    _check_complete(head + rest, 30)
    assert during == head + rest
    async with LLMClient(settings=fleet_settings) as later:  # joins after the end
        assert await _collect(later.subscribe(request.request_id, timeout=5)) == during


async def test_a_reader_times_out_on_silence_not_on_a_long_stream(
    client: LLMClient, workers: dict[Provider, Process]
) -> None:
    slow = _request(MODELS[Provider.OPENAI], "paced [[tokens=12]] [[tokens_per_s=10]]")  # ~1.2 s, a token per 0.1 s
    reading = asyncio.create_task(_collect(client.events(slow, timeout=20)))
    await asyncio.sleep(0.05)
    followed = await _collect(client.subscribe(slow.request_id, timeout=0.4))  # waits of 0.4 s at most
    _check_complete(followed, 12)
    assert await reading == followed

    # a reader's own wait, not the request's deadline (20 s: the worker's verdict would race the reader's)
    stalled = _request(MODELS[Provider.OPENAI], "quiet [[fault=stall]]")
    submitted = client.events(stalled, timeout=20)
    waiting = asyncio.create_task(anext(submitted))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    with pytest.raises(ResultTimeoutError):
        await _collect(client.subscribe(stalled.request_id, timeout=0.5))
    assert 0.45 < time.perf_counter() - started < 2.0
    waiting.cancel()  # the first reader stops: the request is cancelled
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await submitted.aclose()


@pytest.mark.parametrize(
    ("provider", "fault", "error"),
    [
        (Provider.OPENAI, "cut", ProviderUnavailableError),
        (Provider.ANTHROPIC, "cut", ProviderUnavailableError),
        (Provider.GEMINI, "cut", ProviderUnavailableError),
        (Provider.ANTHROPIC, "midstream", OverloadedError),
        (Provider.OPENAI, "midstream", Exception),
        (Provider.GEMINI, "midstream", ProviderUnavailableError),
    ],
)
async def test_a_broken_stream_ends_with_a_typed_error(
    provider: Provider, fault: str, error: type[Exception], client: LLMClient, workers: dict[Provider, Process]
) -> None:
    request = _request(MODELS[provider], f"break [[tokens=20]] [[fault={fault}]]")
    events = await _collect(client.events(request, timeout=20))
    *deltas, last = events
    assert last.type == "error" and all(e.type == "delta" for e in deltas)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    with pytest.raises(error):
        await client.result(request.request_id, timeout=5)
    with pytest.raises(error):
        async for _ in client.stream(_request(MODELS[provider], f"again [[tokens=20]] [[fault={fault}]]")):
            pass


async def test_cancel_closes_the_provider_stream_within_a_second(
    client: LLMClient, workers: dict[Provider, Process], emulator: str, fleet_settings: FleetSettings
) -> None:
    request = _request(MODELS[Provider.OPENAI], "long [[tokens=2000]] [[tokens_per_s=50]]")
    stream = client.stream(request, timeout=20)
    assert await anext(stream)
    cancelled_at = time.time()
    await stream.aclose()  # the consumer stops reading: the request is cancelled
    with pytest.raises(RequestCancelledError):
        await client.result(request.request_id, timeout=5)
    deadline = time.monotonic() + 2
    while True:  # the emulator saw its connection close
        gone = [e for e in (await stats(emulator))["disconnects"]["events"] if e["trace_id"] == request.trace_id]
        if gone or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert gone and gone[0]["at"] - cancelled_at < 1.0
    async with LLMClient(settings=fleet_settings) as late:
        events = await _collect(late.subscribe(request.request_id, timeout=5))
    assert events[-1].type == "cancelled" and [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_cancelling_a_queued_request_never_calls_the_provider(
    fleet_settings: FleetSettings, emulator: str
) -> None:
    idle = fleet_settings.model_copy(update={"key_prefix": "no-workers-here"})
    async with LLMClient(settings=idle) as client:
        request = _request(MODELS[Provider.GEMINI], "never sent")
        await client.submit(request)
        assert await client.cancel(request.request_id)
        with pytest.raises(RequestCancelledError):
            await client.result(request.request_id, timeout=1)
        events = await _collect(client.subscribe(request.request_id, timeout=1))
        assert [e.type for e in events] == ["cancelled"]
        assert not await client.cancel(request.request_id)  # already finished
    assert await requests_for(emulator, request.trace_id) == []
