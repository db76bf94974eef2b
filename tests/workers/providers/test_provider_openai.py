"""The OpenAI adapter against OpenAI's published Chat Completions transcripts, on both transports."""

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
from schemas.response import LLMResponse, Usage
from tests.workers.providers.replay import check_error, collect, events, make_request, transcript

P = Provider.OPENAI
MINI = resolve_model("gpt-4.1-mini")
REASONING = resolve_model("gpt-5-mini")
STREAM = "openai/chat_completions.stream.wire-framed.DERIVED.sse"


def usage_chunk() -> bytes:
    """The extra `choices: []` chunk that `include_usage` adds before [DONE] (spec: ChatCompletionStreamOptions)."""
    chunk = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def test_complete_normalises_the_published_response(server, make_adapter) -> None:
    server.reply("openai/chat_completions.nonstream.response.json", headers={"x-request-id": "req_abc"})
    request = make_request(MINI.id, temperature=0.2, max_tokens=50)

    response = await make_adapter(P).complete(request, MINI)

    assert response.content == "Hello! How can I assist you today?"
    assert response.usage == Usage(
        prompt_tokens=19, completion_tokens=10, total_tokens=29, cached_tokens=0, reasoning_tokens=0
    )
    assert response.finish_reason == "stop"
    assert response.model == "gpt-5.4"  # what the provider reports, not what we sent
    assert response.provider is P
    assert (response.request_id, response.trace_id) == ("req-1", "trace-1")
    assert (response.source_agent, response.session_id) == ("planner", "sess-1")
    assert response.latency_ms > 0


async def test_complete_sends_messages_as_is_with_trace_headers(server, make_adapter) -> None:
    server.reply("openai/chat_completions.nonstream.response.json")
    await make_adapter(P).complete(make_request(MINI.id, temperature=0.2, max_tokens=50), MINI)

    sent = server.last
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "gpt-4.1-mini-2025-04-14",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Who are you?"},
        ],
        "temperature": 0.2,
        "max_tokens": 50,
    }
    assert sent.headers["authorization"] == "Bearer sk-test-OPENAI-9f3c2a"
    assert sent.headers["x-trace-id"] == "trace-1"
    assert sent.headers["x-source-agent"] == "planner"
    assert sent.headers["x-session-id"] == "sess-1"
    assert sent.headers["x-stainless-retry-count"] == "0"


async def test_complete_leaves_out_what_was_not_given(server, make_adapter) -> None:
    server.reply("openai/chat_completions.nonstream.response.json")
    await make_adapter(P).complete(make_request(MINI.id, source_agent=None, session_id=None), MINI)

    assert set(server.last.body) == {"model", "messages"}
    assert "x-source-agent" not in server.last.headers
    assert "x-session-id" not in server.last.headers


async def test_reasoning_model_gets_max_completion_tokens_and_no_temperature(server, make_adapter) -> None:
    server.reply("openai/chat_completions.nonstream.response.json")
    await make_adapter(P).complete(make_request(REASONING.id, temperature=0.7, max_tokens=64), REASONING)

    body = server.last.body
    assert body["model"] == "gpt-5-mini-2025-08-07"
    assert body["max_completion_tokens"] == 64
    assert "temperature" not in body
    assert "max_tokens" not in body


async def test_stream_yields_deltas_then_the_response_with_usage(server, make_adapter) -> None:
    sse = events(STREAM)
    server.reply(b"".join([*sse[:-1], usage_chunk(), sse[-1]]), sse=True)

    deltas, final = await collect(make_adapter(P).stream(make_request(MINI.id), MINI))

    assert deltas == ["Hello"]
    assert isinstance(final, LLMResponse)
    assert final.content == "Hello"
    assert final.finish_reason == "stop"
    assert final.model == "gpt-4o-mini"
    assert final.usage == Usage(
        prompt_tokens=19, completion_tokens=10, total_tokens=29, cached_tokens=4, reasoning_tokens=0
    )
    assert server.last.body["stream"] is True
    assert server.last.body["stream_options"] == {"include_usage": True}
    assert server.last.headers["x-trace-id"] == "trace-1"


async def test_stream_without_a_usage_chunk_is_complete_with_zero_usage(server, make_adapter) -> None:
    """The published stream has no usage chunk: a server that ignores include_usage. Its finish_reason shows the
    answer is whole, so it is returned, with usage unknown (zeros) rather than failing a finished answer."""
    server.reply(STREAM)

    deltas, final = await collect(make_adapter(P).stream(make_request(MINI.id), MINI))

    assert deltas == ["Hello"]
    assert final.content == "Hello"
    assert final.finish_reason == "stop"
    assert final.usage == Usage()


async def test_stream_that_ends_before_its_finish_reason_fails(server, make_adapter) -> None:
    server.reply(b"".join(events(STREAM)[:2]), sse=True)  # ends cleanly, but without finish chunk and [DONE]

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(make_adapter(P).stream(make_request(MINI.id), MINI))
    assert "finish_reason" in caught.value.message


def _refusal_body() -> bytes:
    body = json.loads(transcript("openai/chat_completions.nonstream.response.json"))
    body["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    return json.dumps(body).encode()


async def test_a_refusal_is_a_content_filtered_answer_with_its_text(server, make_adapter) -> None:
    """The model declined: `message.refusal` holds its words, `content` is null and finish_reason is "stop"."""
    server.reply(_refusal_body())

    response = await make_adapter(P).complete(make_request(MINI.id), MINI)

    assert (response.content, response.finish_reason) == ("I can't help with that.", "content_filter")


async def test_a_streamed_refusal_is_a_content_filtered_answer(server, make_adapter) -> None:
    sse = events(STREAM)
    refusal = json.loads(sse[1].decode().removeprefix("data: "))
    refusal["choices"][0]["delta"] = {"refusal": "I can't"}
    more = json.loads(json.dumps(refusal))
    more["choices"][0]["delta"] = {"refusal": " help with that."}
    chunks = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in (refusal, more)]
    server.reply(b"".join([sse[0], *chunks, *sse[2:]]), sse=True)

    deltas, final = await collect(make_adapter(P).stream(make_request(MINI.id), MINI))

    assert deltas == ["I can't", " help with that."]
    assert (final.content, final.finish_reason) == ("I can't help with that.", "content_filter")


async def test_published_401_is_an_authentication_error(server, make_adapter) -> None:
    server.reply("openai/error.401.invalid_api_key.real-world.json", status=401)

    with pytest.raises(AuthenticationError) as caught:
        await make_adapter(P).complete(make_request(MINI.id), MINI)
    err = check_error(caught.value, AuthenticationError, P, 401)
    assert "Incorrect API key provided" in err.message
    assert not err.retryable


@pytest.mark.parametrize(
    ("status", "headers", "cls", "retry_after"),
    [
        (429, {"retry-after": "7"}, RateLimitedError, 7.0),
        (429, {"retry-after-ms": "250", "retry-after": "7"}, RateLimitedError, 0.25),
        (429, {}, RateLimitedError, None),
        (400, {}, BadRequestError, None),
        (403, {}, AuthenticationError, None),
        (404, {}, NotFoundError, None),
        (422, {}, BadRequestError, None),
        (500, {}, ProviderUnavailableError, None),
        (503, {}, ProviderUnavailableError, None),
        (529, {}, OverloadedError, None),
    ],
)
async def test_http_errors(server, make_adapter, status, headers, cls, retry_after):
    body = {"error": {"message": f"upstream said {status}", "type": "x", "param": None, "code": None}}
    server.reply(json.dumps(body).encode(), status=status, headers=headers)

    with pytest.raises(cls) as caught:
        await make_adapter(P).complete(make_request(MINI.id), MINI)
    err = check_error(caught.value, cls, P, status)
    assert err.details.get("retry_after") == retry_after
    assert f"upstream said {status}" in err.message


async def test_html_502_keeps_its_status(server, make_adapter) -> None:
    server.reply(b"<html><body>502 Bad Gateway</body></html>", status=502, headers={"Content-Type": "text/html"})

    with pytest.raises(ProviderUnavailableError) as caught:
        await make_adapter(P).complete(make_request(MINI.id), MINI)
    check_error(caught.value, ProviderUnavailableError, P, 502)
