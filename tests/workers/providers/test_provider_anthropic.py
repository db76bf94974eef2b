"""The Anthropic adapter against Anthropic's published Messages transcripts, on both transports."""

from __future__ import annotations

import json

import pytest

from schemas.catalog import Provider, resolve_model
from schemas.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from schemas.response import Usage
from tests.workers.providers.replay import check_error, collect, collect_items, events, make_request, transcript
from workers.providers.normalised import ToolCallDelta

P = Provider.ANTHROPIC
HAIKU = resolve_model("claude-haiku-4-5")
BASIC = "anthropic/messages.stream.basic.sse"
TOOL_USE = "anthropic/messages.stream.tool_use.sse"


async def test_complete_normalises_the_published_response(server, make_adapter) -> None:
    server.reply("anthropic/messages.nonstream.response.json", headers={"request-id": "req_1"})

    response = await make_adapter(P).complete(make_request(HAIKU.id), HAIKU)

    assert response.content == "Hi! My name is Claude."
    assert response.usage == Usage(prompt_tokens=2095, completion_tokens=503, total_tokens=2598)
    assert response.finish_reason == "stop"
    assert response.model == "claude-sonnet-4-5-20250929"  # what the provider reports
    assert response.provider is P
    assert (response.request_id, response.trace_id, response.source_agent, response.session_id) == (
        "req-1",
        "trace-1",
        "planner",
        "sess-1",
    )


async def test_complete_puts_system_on_top_and_defaults_max_tokens(server, make_adapter) -> None:
    server.reply("anthropic/messages.nonstream.response.json")
    messages = [*make_request(HAIKU.id).messages, make_request(HAIKU.id).messages[0]]  # a second system message

    await make_adapter(P).complete(make_request(HAIKU.id, messages=messages), HAIKU)

    sent = server.last
    assert sent.path == "/v1/messages"
    assert sent.body == {
        "model": "claude-haiku-4-5-20251001",
        "system": "Be brief.\n\nBe brief.",
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Who are you?"},
        ],
        "max_tokens": 4096,
    }
    assert "sk-ant-test-ANTHROPIC-7b1d4e" in (sent.headers.get("x-api-key", "") + sent.headers.get("authorization", ""))
    assert sent.headers["x-trace-id"] == "trace-1"
    assert sent.headers["x-source-agent"] == "planner"
    assert sent.headers["x-session-id"] == "sess-1"
    assert sent.headers["x-stainless-retry-count"] == "0"


async def test_complete_sends_the_given_max_tokens_and_never_a_temperature(server, make_adapter) -> None:
    """anthropic 2.x speaks API version 2026-10-21, which answers 400 to any temperature (even 1.0)."""
    server.reply("anthropic/messages.nonstream.response.json")
    server.reply("anthropic/messages.nonstream.response.json")
    adapter = make_adapter(P, LLM_ANTHROPIC_MAX_TOKENS=1000)

    await adapter.complete(make_request(HAIKU.id, max_tokens=77, temperature=0.5), HAIKU)
    assert server.last.body["max_tokens"] == 77
    assert "temperature" not in server.last.body

    only_user = make_request(HAIKU.id, messages=make_request(HAIKU.id).messages[1:2])
    await adapter.complete(only_user, HAIKU)
    assert server.last.body == {
        "model": HAIKU.id,
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 1000,
    }


async def test_stream_yields_deltas_then_the_response_with_usage(server, make_adapter) -> None:
    server.reply(BASIC)

    deltas, final = await collect(make_adapter(P).stream(make_request(HAIKU.id), HAIKU))

    assert deltas == ["Hello", "!"]
    assert final.content == "Hello!"
    assert final.usage == Usage(prompt_tokens=25, completion_tokens=15, total_tokens=40)
    assert final.finish_reason == "stop"
    assert final.model == "claude-sonnet-4-5-20250929"
    assert server.last.body["stream"] is True
    assert server.last.headers["x-trace-id"] == "trace-1"


async def test_stream_with_tool_use_keeps_the_text_and_says_tool_calls(server, make_adapter) -> None:
    # The docs print this stream without the blank line that ends its last event; on the wire every event has one.
    server.reply(transcript(TOOL_USE) + b"\n", sse=True)

    items, final = await collect_items(make_adapter(P).stream(make_request(HAIKU.id), HAIKU))

    assert final.content == "Okay, let's check the weather for San Francisco, CA:"
    assert "".join(i for i in items if isinstance(i, str)) == final.content
    assert final.finish_reason == "tool_calls"
    assert final.usage.prompt_tokens == 472
    pieces = [i for i in items if isinstance(i, ToolCallDelta)]  # the call's start, then its non-empty fragments
    assert (pieces[0].index, pieces[0].id, pieces[0].name) == (0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
    assert len(pieces) == 9 and all(p.arguments for p in pieces[1:])
    (call,) = final.tool_calls
    assert call.arguments == "".join(p.arguments for p in pieces)
    assert json.loads(call.arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}


async def test_last_event_without_its_blank_line_is_not_an_end(server, make_adapter) -> None:
    """SSE drops an event the body ends in the middle of, so the verbatim docs stream has no message_stop."""
    server.reply(TOOL_USE)

    with pytest.raises(ProviderUnavailableError):
        await collect_items(make_adapter(P).stream(make_request(HAIKU.id), HAIKU))


async def test_stream_cache_and_thinking_counts(server, make_adapter) -> None:
    """message_delta may restate the input counts; cached input is part of prompt_tokens."""
    sse = events(BASIC)
    start = json.loads(sse[0].split(b"data: ", 1)[1])
    start["message"]["usage"].update(cache_read_input_tokens=100, cache_creation_input_tokens=10)
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
        "usage": {"output_tokens": 30, "input_tokens": 26, "output_tokens_details": {"thinking_tokens": 12}},
    }
    body = [b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n", *sse[1:-2]]
    body += [b"event: message_delta\ndata: " + json.dumps(delta).encode() + b"\n\n", sse[-1]]
    server.reply(b"".join(body), sse=True)

    _, final = await collect(make_adapter(P).stream(make_request(HAIKU.id), HAIKU))

    assert final.usage == Usage(
        prompt_tokens=136, completion_tokens=30, total_tokens=166, cached_tokens=100, reasoning_tokens=12
    )
    assert final.finish_reason == "length"


async def test_stream_without_message_stop_fails(server, make_adapter) -> None:
    server.reply(b"".join(events(BASIC)[:-1]), sse=True)

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(make_adapter(P).stream(make_request(HAIKU.id), HAIKU))
    assert "message_stop" in check_error(caught.value, ProviderUnavailableError, P).message


async def test_published_midstream_overloaded_error(server, make_adapter) -> None:
    sse = events(BASIC)
    server.reply(b"".join(sse[:4]) + transcript("anthropic/error.midstream.overloaded_error.sse"), sse=True)

    chunks = make_adapter(P).stream(make_request(HAIKU.id), HAIKU)
    assert await anext(chunks) == "Hello"
    with pytest.raises(OverloadedError) as caught:
        await anext(chunks)
    assert "Overloaded" in check_error(caught.value, OverloadedError, P).message
    assert caught.value.retryable


async def test_midstream_rate_limit_error(server, make_adapter) -> None:
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}
    server.reply(events(BASIC)[0] + b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n", sse=True)

    with pytest.raises(RateLimitedError) as caught:
        await collect(make_adapter(P).stream(make_request(HAIKU.id), HAIKU))
    check_error(caught.value, RateLimitedError, P)


@pytest.mark.parametrize(
    ("name", "status", "cls", "text"),
    [
        ("anthropic/error.400.invalid_request_error.json", 400, BadRequestError, "roles must alternate"),
        ("anthropic/error.404.not_found_error.json", 404, NotFoundError, "could not be found"),
    ],
)
async def test_published_errors(server, make_adapter, name, status, cls, text) -> None:
    server.reply(name, status=status)

    with pytest.raises(cls) as caught:
        await make_adapter(P).complete(make_request(HAIKU.id), HAIKU)
    assert text in check_error(caught.value, cls, P, status).message


@pytest.mark.parametrize(
    ("status", "kind", "headers", "cls", "retry_after"),
    [
        (429, "rate_limit_error", {"retry-after": "3"}, RateLimitedError, 3.0),
        (429, "rate_limit_error", {"retry-after-ms": "1500"}, RateLimitedError, 1.5),
        (401, "authentication_error", {}, AuthenticationError, None),
        (403, "permission_error", {}, AuthenticationError, None),
        (413, "request_too_large", {}, BadRequestError, None),
        (500, "api_error", {}, ProviderUnavailableError, None),
        (503, "api_error", {}, ProviderUnavailableError, None),
        (529, "overloaded_error", {}, OverloadedError, None),
    ],
)
async def test_http_errors(server, make_adapter, status, kind, headers, cls, retry_after) -> None:
    body = {"type": "error", "error": {"type": kind, "message": f"upstream said {status}"}, "request_id": "req_x"}
    server.reply(json.dumps(body).encode(), status=status, headers=headers)

    with pytest.raises(cls) as caught:
        await make_adapter(P).complete(make_request(HAIKU.id), HAIKU)
    err = check_error(caught.value, cls, P, status)
    assert err.details.get("retry_after") == retry_after
    assert f"upstream said {status}" in err.message
    assert len(server.requests) == 1  # SDK retries are off
