"""OpenAI Chat Completions through the real openai SDK."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest

MODEL = "gpt-4.1-mini-2025-04-14"
TRANSCRIPTS = Path(__file__).parents[1] / "fixtures" / "transcripts" / "openai"
AUTH = {"Authorization": "Bearer sk-test"}


def user(text: str) -> list[Any]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


async def test_completion_text_usage_and_model(openai_client: openai.AsyncOpenAI) -> None:
    response = await openai_client.chat.completions.with_raw_response.create(
        model=MODEL, messages=user("Hello there, emulator!")
    )
    completion = response.parse()
    assert completion.model == MODEL
    assert (
        completion.choices[0].message.content
        == "Echo: Hello there, emulator! alpha bravo charlie delta echo foxtrot golf hotel"
    )
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 12, 17)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0
    assert response.headers["x-request-id"].startswith("req_")
    assert completion._request_id == response.headers["x-request-id"]


async def test_replies_are_deterministic(openai_client: openai.AsyncOpenAI) -> None:
    first, second = [
        await openai_client.chat.completions.create(model=MODEL, messages=user("same words [[tokens=30]]"))
        for _ in range(2)
    ]
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage is not None and first.usage.completion_tokens == 30


async def test_stream_with_usage(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=user("Stream it [[tokens=5]]"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [chunk.choices[0].delta.content for chunk in chunks[1:-2]]
    assert contents == ["Echo:", " Stream", " it", " alpha", " bravo"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 5)
    assert {chunk.model for chunk in chunks} == {MODEL}


async def test_stream_without_usage_has_none(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(model=MODEL, messages=user("Hi [[tokens=3]]"), stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 1 + 3 + 1
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_cuts_with_length(openai_client: openai.AsyncOpenAI, limit: str) -> None:
    completion = await openai_client.chat.completions.create(
        model=MODEL, messages=user("Long [[tokens=50]]"), extra_body={limit: 7}
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 7
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=user("Long [[tokens=50]]"), stream=True, extra_body={limit: 7}
    )
    chunks = [chunk async for chunk in stream]
    assert len([chunk for chunk in chunks if chunk.choices[0].delta.content]) == 7
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_block_is_content_filter(openai_client: openai.AsyncOpenAI) -> None:
    completion = await openai_client.chat.completions.create(model=MODEL, messages=user("Bad [[block]]"))
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content is None
    stream = await openai_client.chat.completions.create(model=MODEL, messages=user("Bad [[block]]"), stream=True)
    chunks = [chunk async for chunk in stream]
    assert [chunk.choices[0].finish_reason for chunk in chunks] == [None, "content_filter"]


async def test_latency_tag(openai_client: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    await openai_client.chat.completions.create(model=MODEL, messages=user("Slow [[latency_ms=300]]"))
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"])
async def test_reasoning_models_refuse_max_tokens_and_temperature(
    openai_client: openai.AsyncOpenAI, model: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await openai_client.chat.completions.create(model=model, messages=user("Hi"), max_tokens=10)
    assert refused.value.param == "max_tokens"
    assert "max_completion_tokens" in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        await openai_client.chat.completions.create(model=model, messages=user("Hi"), temperature=0.2)
    assert refused.value.param == "temperature"
    completion = await openai_client.chat.completions.create(
        model=model, messages=user("Hi"), max_completion_tokens=10, temperature=1
    )
    assert completion.model == model


async def test_missing_api_key_is_401(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as failed:
        await openai_client.chat.completions.create(
            model=MODEL, messages=user("Hi"), extra_headers={"Authorization": openai.Omit()}
        )
    assert failed.value.status_code == 401
    assert failed.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("503", openai.InternalServerError),
        ("529", openai.InternalServerError),
        ("cut", openai.APIConnectionError),
        ("malformed", json.JSONDecodeError),
        ("midstream", openai.InternalServerError),  # a non-streaming call fails as a whole: HTTP 500
    ],
)
async def test_faults(openai_client: openai.AsyncOpenAI, fault: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await openai_client.chat.completions.create(model=MODEL, messages=user(f"Hi [[fault={fault}]]"))


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", openai.RateLimitError),
        ("529", openai.InternalServerError),
        ("cut", openai.APIConnectionError),
        ("malformed", json.JSONDecodeError),
        ("midstream", openai.APIError),
    ],
)
async def test_stream_faults(openai_client: openai.AsyncOpenAI, fault: str, error: type[Exception]) -> None:
    received: list[str] = []
    with pytest.raises(error) as failed:
        stream = await openai_client.chat.completions.create(
            model=MODEL, messages=user(f"Hi [[fault={fault}]] [[tokens=10]]"), stream=True
        )
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    if fault in ("cut", "midstream"):
        assert len(received) == 1 + 5  # the role chunk and half the tokens, then the failure
    if fault == "midstream":
        assert type(failed.value) is openai.APIError  # not an APIStatusError: the HTTP status was 200
        assert failed.value.body == {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }


async def test_stall_never_answers(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APITimeoutError):
        await openai_client.chat.completions.create(model=MODEL, messages=user("Hi [[fault=stall]]"), timeout=0.3)


async def test_retry_after_headers_and_body(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        await openai_client.chat.completions.create(model=MODEL, messages=user("Hi [[fault=429]] [[retry_after=7]]"))
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.response.headers["retry-after-ms"] == "7000"
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.request_id is not None


async def test_fail_times_lets_the_sdk_retry_succeed(openai_client: openai.AsyncOpenAI, control: Any) -> None:
    retrying = openai_client.with_options(max_retries=2)
    prompt = "Retry me [[fault=503]] [[fail_times=2]] [[retry_after=0.01]]"
    completion = await retrying.chat.completions.create(model=MODEL, messages=user(prompt))
    assert completion.choices[0].finish_reason == "stop"
    attempts = [entry["headers"]["x-stainless-retry-count"] for entry in await control.requests()]
    assert attempts == ["0", "1", "2"]
    with pytest.raises(openai.InternalServerError):  # fail_times counts per prompt: a new prompt fails again
        await openai_client.chat.completions.create(model=MODEL, messages=user(f"{prompt} again"))


async def test_request_headers_and_body_are_recorded(openai_client: openai.AsyncOpenAI, control: Any) -> None:
    headers = {"X-Trace-Id": "trace-openai-1", "X-Source-Agent": "planner", "X-Session-Id": "session-9"}
    await openai_client.chat.completions.create(model=MODEL, messages=user("Hi"), extra_headers=headers)
    (recorded,) = await control.requests(trace_id="trace-openai-1")
    assert recorded["provider"] == "openai"
    assert recorded["path"] == "/v1/chat/completions"
    assert {name.lower(): value for name, value in headers.items()}.items() <= recorded["headers"].items()
    assert recorded["body"] == {"messages": user("Hi"), "model": MODEL}
    assert (await control.stats())["by_trace_id"] == {"trace-openai-1": 1}


async def test_completion_has_the_published_shape(control: Any) -> None:
    published = json.loads((TRANSCRIPTS / "chat_completions.nonstream.response.json").read_text())
    status, _, raw = await control.post("/v1/chat/completions", {"model": MODEL, "messages": user("Hi")}, AUTH)
    ours = json.loads(raw)
    assert status == 200
    assert ours.keys() == published.keys()
    assert ours["choices"][0].keys() == published["choices"][0].keys()
    assert ours["choices"][0]["message"].keys() == published["choices"][0]["message"].keys()
    assert ours["usage"].keys() == published["usage"].keys()
    for details in ("prompt_tokens_details", "completion_tokens_details"):
        assert ours["usage"][details].keys() == published["usage"][details].keys()


async def test_stream_has_the_published_framing(control: Any) -> None:
    published = control.events((TRANSCRIPTS / "chat_completions.stream.wire-framed.DERIVED.sse").read_bytes())
    body = {"model": MODEL, "messages": user("Hi [[tokens=1]]"), "stream": True}
    status, headers, raw = await control.post("/v1/chat/completions", body, AUTH)
    ours = control.events(raw)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    assert [event["event"] for event in ours] == [None] * 4
    assert len(ours) == len(published)
    for mine, theirs in zip(ours[:-1], published[:-1], strict=True):
        assert mine["data"].keys() >= theirs["data"].keys()
        assert mine["data"]["choices"][0] == {
            **theirs["data"]["choices"][0],
            "delta": mine["data"]["choices"][0]["delta"],
        }
        assert mine["data"]["choices"][0]["delta"].keys() == theirs["data"]["choices"][0]["delta"].keys()


async def test_error_has_the_published_shape(control: Any) -> None:
    published = (TRANSCRIPTS / "error.401.invalid_api_key.real-world.json").read_text()
    status, headers, raw = await control.post("/v1/chat/completions", {"model": MODEL, "messages": user("Hi")}, {})
    assert status == 401
    assert json.loads(raw)["error"].keys() == json.loads(published)["error"].keys()
    assert raw.decode().startswith('{\n    "error": {\n        "message"')  # pretty-printed like the real API
    assert headers["x-request-id"].startswith("req_")


async def test_invalid_json_and_missing_fields_are_400(control: Any) -> None:
    status, _, raw = await control.post("/v1/chat/completions", b"{not json", AUTH)
    assert (status, json.loads(raw)["error"]["type"]) == (400, "invalid_request_error")
    status, _, raw = await control.post("/v1/chat/completions", {"messages": user("Hi")}, AUTH)
    assert (status, json.loads(raw)["error"]["param"]) == (400, "model")


async def test_aiohttp_transport(url: str) -> None:
    """The fleet may use the SDK's aiohttp transport (half the CPU of httpx2): same answers."""
    async with openai.AsyncOpenAI(
        api_key="sk-test", base_url=f"{url}/v1", max_retries=0, http_client=openai.DefaultAioHttpClient()
    ) as client:
        completion = await client.chat.completions.create(model=MODEL, messages=user("Hi [[tokens=2]]"))
        assert completion.choices[0].message.content == "Echo: Hi"
        stream = await client.chat.completions.create(model=MODEL, messages=user("Hi [[tokens=2]]"), stream=True)
        assert [chunk.choices[0].delta.content async for chunk in stream] == ["", "Echo:", " Hi", None]
