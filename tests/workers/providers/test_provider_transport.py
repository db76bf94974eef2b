"""What each of the three adapters does when the transport fails it: garbage instead of an answer, a dropped
connection, silence, a stream cut or stalled mid-way, and a reader that stops early. The same cases for
all three providers, on both transports."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from schemas.catalog import ModelInfo, Provider, resolve_model
from schemas.errors import MalformedResponseError, ProviderTimeoutError, ProviderUnavailableError
from tests.workers.providers.replay import check_error, collect, events, make_request


@dataclass(frozen=True)
class Case:
    model: ModelInfo
    stream: str  # a published streaming transcript
    first_events: int  # the events of `stream` up to and including its first text
    first_text: str
    garbage: bytes  # one unreadable event, as this provider frames its events


CASES = {
    Provider.OPENAI: Case(
        resolve_model("gpt-4.1-mini"),
        "openai/chat_completions.stream.wire-framed.DERIVED.sse",
        2,
        "Hello",
        b"data: {not json\n\n",
    ),
    Provider.ANTHROPIC: Case(
        resolve_model("claude-haiku-4-5"),
        "anthropic/messages.stream.basic.sse",
        4,
        "Hello",
        b"event: content_block_delta\ndata: {not json\n\n",
    ),
    Provider.GEMINI: Case(
        resolve_model("gemini-2.5-flash"),
        "gemini/firebase-testdata.streaming-success-basic-reply-short.txt",
        2,
        "The",
        b"data: {not json\n\n",
    ),
}

providers = pytest.mark.parametrize("provider", list(Provider))


@providers
@pytest.mark.parametrize("content_type", ["application/json", "text/html"])
async def test_garbage_200_is_malformed(server, make_adapter, provider, content_type) -> None:
    case = CASES[provider]
    server.reply(b"<html>not json", headers={"Content-Type": content_type})

    with pytest.raises(MalformedResponseError) as caught:
        await make_adapter(provider).complete(make_request(case.model.id), case.model)
    check_error(caught.value, MalformedResponseError, provider)


@providers
async def test_garbage_inside_a_stream_is_malformed(server, make_adapter, provider) -> None:
    case = CASES[provider]
    server.reply(events(case.stream)[0] + case.garbage, sse=True)

    with pytest.raises(MalformedResponseError) as caught:
        await collect(make_adapter(provider).stream(make_request(case.model.id), case.model))
    check_error(caught.value, MalformedResponseError, provider)


@providers
async def test_dropped_connection_fails_at_once_without_a_hidden_retry(server, make_adapter, provider) -> None:
    """SDK retries are off (google-genai's aiohttp path would otherwise retry once after 1-10 s)."""
    case = CASES[provider]
    server.reply(b"{}", drop=True)
    started = time.perf_counter()

    with pytest.raises(ProviderUnavailableError) as caught:
        await make_adapter(provider).complete(make_request(case.model.id), case.model)
    check_error(caught.value, ProviderUnavailableError, provider)
    assert len(server.requests) == 1
    assert time.perf_counter() - started < 1


@providers
async def test_no_answer_in_time_is_a_timeout(server, make_adapter, provider) -> None:
    case = CASES[provider]
    server.reply(b"{}", hang_before=True)

    with pytest.raises(ProviderTimeoutError) as caught:
        await make_adapter(provider, LLM_PROVIDER_TIMEOUT=0.3).complete(make_request(case.model.id), case.model)
    check_error(caught.value, ProviderTimeoutError, provider)


@providers
async def test_stream_cut_mid_way_is_unavailable(server, make_adapter, provider) -> None:
    case = CASES[provider]
    server.reply(case.stream, cut_after=case.first_events)

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(make_adapter(provider).stream(make_request(case.model.id), case.model))
    check_error(caught.value, ProviderUnavailableError, provider)


@providers
async def test_stream_that_stalls_is_a_timeout(server, make_adapter, provider) -> None:
    case = CASES[provider]
    server.reply(case.stream, hang_after=case.first_events)

    with pytest.raises(ProviderTimeoutError) as caught:
        await collect(make_adapter(provider, LLM_PROVIDER_TIMEOUT=0.3).stream(make_request(case.model.id), case.model))
    check_error(caught.value, ProviderTimeoutError, provider)


@providers
async def test_closing_the_stream_early_closes_the_http_response(server, make_adapter, provider) -> None:
    case = CASES[provider]
    server.reply(case.stream, hang_after=case.first_events)
    chunks = make_adapter(provider).stream(make_request(case.model.id), case.model)

    assert await anext(chunks) == case.first_text
    await chunks.aclose()
    await asyncio.wait_for(server.client_gone.wait(), 2)
