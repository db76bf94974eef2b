"""The Gemini adapter against Google's recorded Gemini API responses and streams, on both transports."""

from __future__ import annotations

import json

import pytest
from google import genai
from google.genai import models, types

from schemas.catalog import Provider, resolve_model
from schemas.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    NotFoundError,
    ProviderUnavailableError,
    RateLimitedError,
)
from schemas.response import Usage
from tests.workers.providers.replay import check_error, collect, collect_items, events, make_request, transcript
from workers.providers import gemini_adapter
from workers.providers.normalised import ReasoningDelta

P = Provider.GEMINI
FLASH = resolve_model("gemini-2.5-flash")
UNARY = "gemini/firebase-testdata.unary-success-basic-reply-short.json"
BASIC = "gemini/firebase-testdata.streaming-success-basic-reply-short.txt"
THINKING = "gemini/firebase-testdata.streaming-success-thinking-reply-thought-summary.txt"
BLOCKED = "gemini/firebase-testdata.streaming-failure-prompt-blocked-safety.txt"


async def test_complete_normalises_the_recorded_response(server, make_adapter) -> None:
    server.reply(UNARY)

    response = await make_adapter(P).complete(make_request(FLASH.id), FLASH)

    assert response.content == (
        "Google's headquarters, also known as the Googleplex, is located in **Mountain View, California**.\n"
    )
    assert response.usage == Usage(prompt_tokens=7, completion_tokens=22, total_tokens=29)
    assert response.finish_reason == "stop"
    assert response.model == "gemini-2.0-flash"  # the modelVersion the provider reports
    assert response.provider is P
    assert (response.request_id, response.trace_id, response.source_agent, response.session_id) == (
        "req-1",
        "trace-1",
        "planner",
        "sess-1",
    )


async def test_complete_sends_system_instruction_and_model_roles(server, make_adapter) -> None:
    server.reply(UNARY)
    await make_adapter(P).complete(make_request(FLASH.id, temperature=0.4, max_tokens=99), FLASH)

    sent = server.last
    assert sent.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert sent.body["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Hi."}]},
        {"role": "user", "parts": [{"text": "Who are you?"}]},
    ]
    assert sent.body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert sent.body["generationConfig"] == {"temperature": 0.4, "maxOutputTokens": 99}
    assert sent.headers["x-goog-api-key"] == "key1234"
    assert sent.headers["x-trace-id"] == "trace-1"
    assert sent.headers["x-source-agent"] == "planner"
    assert sent.headers["x-session-id"] == "sess-1"


async def test_complete_leaves_out_what_was_not_given(server, make_adapter) -> None:
    server.reply(UNARY)
    only_user = make_request(FLASH.id, messages=make_request(FLASH.id).messages[1:2])

    await make_adapter(P).complete(only_user, FLASH)

    body = server.last.body
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]
    assert "systemInstruction" not in body
    assert body.get("generationConfig", {}) == {}  # the SDK sends an empty one


@pytest.mark.parametrize("fields", [{"temperature": 0.4, "max_tokens": 99}, {}], ids=["all", "defaults"])
def test_the_body_is_what_the_sdks_own_converter_writes(fields: dict[str, object]) -> None:
    """The adapter writes the API's JSON itself (the SDK's typed request path is skipped): it must stay what
    google-genai's `generate_content` would send for the same request, on an SDK upgrade too."""
    request = make_request(FLASH.id, **fields)
    config: dict[str, object] = {"system_instruction": "Be brief."}
    if "temperature" in fields:
        config.update(temperature=0.4, max_output_tokens=99)
    client = genai.Client(enterprise=False, api_key="k", http_options=types.HttpOptions(base_url="http://localhost"))
    parameters = types._GenerateContentParameters(
        model=FLASH.id, contents=gemini_adapter.request_body(request, FLASH)["contents"], config=config
    )
    written = models._GenerateContentParameters_to_mldev(client._api_client, parameters)

    assert written.pop("_url") == {"model": f"models/{FLASH.id}"}
    assert gemini_adapter.request_body(request, FLASH) == {"generationConfig": {}, **written}


async def test_candidate_blocked_by_safety_is_a_content_filter_finish(server, make_adapter) -> None:
    body = {
        "candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": []}],
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
        "modelVersion": "gemini-2.5-flash",
    }
    server.reply(json.dumps(body).encode())

    response = await make_adapter(P).complete(make_request(FLASH.id), FLASH)

    assert (response.content, response.finish_reason) == ("", "content_filter")
    assert response.usage == Usage(prompt_tokens=7, completion_tokens=0, total_tokens=7)


async def test_prompt_blocked_before_any_output_is_content_filtered(server, make_adapter) -> None:
    server.reply(events(BLOCKED)[0].split(b"data: ", 1)[1])  # the recorded block, as a non-stream answer

    with pytest.raises(ContentFilteredError) as caught:
        await make_adapter(P).complete(make_request(FLASH.id), FLASH)
    assert "SAFETY" in check_error(caught.value, ContentFilteredError, P).message


async def test_stream_yields_deltas_then_the_response_with_usage(server, make_adapter) -> None:
    server.reply(BASIC)

    deltas, final = await collect(make_adapter(P).stream(make_request(FLASH.id), FLASH))

    assert deltas == ["The", " capital of Wyoming", " is **Cheyenne**.\n"]
    assert final.content == "The capital of Wyoming is **Cheyenne**.\n"
    assert final.usage == Usage(prompt_tokens=7, completion_tokens=10, total_tokens=17)  # from the last chunk
    assert final.finish_reason == "stop"
    assert final.model == "gemini-2.0-flash"
    assert server.last.path == "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert server.last.headers["x-trace-id"] == "trace-1"


async def test_a_usage_only_chunk_after_the_finish_counts(server, make_adapter) -> None:
    usage = {"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 11, "totalTokenCount": 18}}
    server.reply(transcript(BASIC) + b"data: " + json.dumps(usage).encode() + b"\n\n", sse=True)

    deltas, final = await collect(make_adapter(P).stream(make_request(FLASH.id), FLASH))

    assert len(deltas) == 3
    assert final.usage == Usage(prompt_tokens=7, completion_tokens=11, total_tokens=18)
    assert final.finish_reason == "stop"


async def test_thinking_stream_keeps_thoughts_apart_and_counts_them(server, make_adapter) -> None:
    server.reply(THINKING)

    items, final = await collect_items(make_adapter(P).stream(make_request(FLASH.id), FLASH))

    deltas = [i for i in items if isinstance(i, str)]
    thoughts = [i.text for i in items if isinstance(i, ReasoningDelta)]
    assert len(deltas) + len(thoughts) == len(items)
    assert deltas[0].startswith("The sky is blue because")
    assert "**Exploring Sky Color**" not in final.content and thoughts[0].startswith("**Exploring Sky Color**")
    assert final.reasoning == "".join(thoughts)
    assert items.index(deltas[0]) > items.index(ReasoningDelta(thoughts[-1]))  # the thoughts came first
    assert final.content == "".join(deltas)
    assert final.usage == Usage(prompt_tokens=10, completion_tokens=588, total_tokens=598, reasoning_tokens=540)
    assert final.finish_reason == "stop"
    assert final.model == "gemini-2.5-flash"


async def test_cookbook_stream_with_crlf_and_a_finish_reason_on_every_chunk(server, make_adapter) -> None:
    server.reply("gemini/cookbook.Streaming_REST.output.sse")

    deltas, final = await collect(make_adapter(P).stream(make_request(FLASH.id), FLASH))

    assert len(deltas) > 3
    assert final.content.startswith("In the quaint, sunlit cottage")
    assert final.finish_reason == "stop"
    assert final.usage == Usage()  # that older recording carries no usageMetadata


async def test_recorded_blocked_prompt_stream_is_content_filtered(server, make_adapter) -> None:
    server.reply(BLOCKED)

    with pytest.raises(ContentFilteredError) as caught:
        await collect(make_adapter(P).stream(make_request(FLASH.id), FLASH))
    check_error(caught.value, ContentFilteredError, P)


async def test_stream_without_a_finish_reason_fails(server, make_adapter) -> None:
    server.reply(b"".join(events(BASIC)[:2]), sse=True)

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(make_adapter(P).stream(make_request(FLASH.id), FLASH))
    assert "finishReason" in check_error(caught.value, ProviderUnavailableError, P).message


async def test_error_inside_a_200_stream(server, make_adapter) -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    server.reply(events(BASIC)[0] + b"data: " + json.dumps(error).encode() + b"\n\n", sse=True)

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(make_adapter(P).stream(make_request(FLASH.id), FLASH))
    assert "The model is overloaded." in check_error(caught.value, ProviderUnavailableError, P, 503).message


async def test_recorded_invalid_key_is_a_bad_request_without_the_key(server, make_adapter) -> None:
    """Google echoes the key in the error's debug details; our message carries the error message only."""
    assert b"key1234" in transcript("gemini/firebase-testdata.unary-failure-api-key.json")
    server.reply("gemini/firebase-testdata.unary-failure-api-key.json", status=400)

    with pytest.raises(BadRequestError) as caught:
        await make_adapter(P).complete(make_request(FLASH.id), FLASH)
    assert "API key not valid" in check_error(caught.value, BadRequestError, P, 400).message


async def test_recorded_unknown_model_is_not_found(server, make_adapter) -> None:
    server.reply("gemini/firebase-testdata.unary-failure-unknown-model.json", status=404)

    with pytest.raises(NotFoundError) as caught:
        await make_adapter(P).complete(make_request(FLASH.id), FLASH)
    assert "is not found for API version v1" in check_error(caught.value, NotFoundError, P, 404).message


async def test_recorded_429_with_retry_after_header(server, make_adapter) -> None:
    server.reply("gemini/error.429.resource_exhausted.real-world.json", status=429, headers={"Retry-After": "12"})

    with pytest.raises(RateLimitedError) as caught:
        await make_adapter(P).complete(make_request(FLASH.id), FLASH)
    err = check_error(caught.value, RateLimitedError, P, 429)
    assert err.details["retry_after"] == 12.0
    assert "RESOURCE_EXHAUSTED" in err.message


async def test_429_with_retry_info_in_the_body(server, make_adapter) -> None:
    body = json.loads(transcript("gemini/error.429.resource_exhausted.real-world.json"))
    body["error"]["details"] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "53s"},
    ]
    server.reply(json.dumps(body).encode(), status=429)

    with pytest.raises(RateLimitedError) as caught:
        await collect(make_adapter(P).stream(make_request(FLASH.id), FLASH))
    assert check_error(caught.value, RateLimitedError, P, 429).details["retry_after"] == 53.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (500, ProviderUnavailableError),
        (503, ProviderUnavailableError),
        (504, ProviderUnavailableError),
    ],
)
async def test_http_errors(server, make_adapter, status, cls) -> None:
    body = {"error": {"code": status, "message": f"upstream said {status}", "status": "X"}}
    server.reply(json.dumps(body).encode(), status=status)

    with pytest.raises(cls) as caught:
        await make_adapter(P).complete(make_request(FLASH.id), FLASH)
    assert f"upstream said {status}" in check_error(caught.value, cls, P, status).message
    assert len(server.requests) == 1


async def test_html_502_keeps_its_status(server, make_adapter) -> None:
    server.reply(b"<html><body>502 Bad Gateway</body></html>", status=502, headers={"Content-Type": "text/html"})

    with pytest.raises(ProviderUnavailableError) as caught:
        await make_adapter(P).complete(make_request(FLASH.id), FLASH)
    check_error(caught.value, ProviderUnavailableError, P, 502)
