"""Anthropic Messages through the real anthropic SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

MODEL = "claude-haiku-4-5-20251001"
TRANSCRIPTS = Path(__file__).parents[1] / "fixtures" / "transcripts" / "anthropic"
AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_message_text_usage_and_model(anthropic_client: anthropic.AsyncAnthropic) -> None:
    response = await anthropic_client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, system="Be brief.", messages=user("Hello there, emulator!")
    )
    message = await response.parse()
    assert message.model == MODEL
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Echo: Hello there, emulator! alpha bravo charlie delta echo foxtrot golf hotel"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 12)
    assert response.headers["request-id"].startswith("req_")


async def test_stream_events_and_cumulative_usage(anthropic_client: anthropic.AsyncAnthropic) -> None:
    stream = await anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=user("Stream it [[tokens=4]]"), stream=True
    )
    events = [event async for event in stream]
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 4,  # the SDK swallows the ping
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert (start.message.usage.input_tokens, start.message.usage.output_tokens) == (3, 1)
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 4


async def test_stream_helper_final_message(anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with anthropic_client.messages.stream(
        model=MODEL, max_tokens=3, messages=user("Helper [[tokens=9]]")
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Echo: Helper alpha"
    assert final.stop_reason == "max_tokens"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 3)


async def test_block_is_refusal(anthropic_client: anthropic.AsyncAnthropic) -> None:
    message = await anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=user("Bad [[block]]"))
    assert message.stop_reason == "refusal"
    assert message.usage.output_tokens == 0
    async with anthropic_client.messages.stream(model=MODEL, max_tokens=100, messages=user("Bad [[block]]")) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "refusal"


async def test_both_auth_headers_are_accepted(url: str) -> None:
    async with anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url=url, max_retries=0, default_headers={"anthropic-version": "2023-06-01"}
    ) as client:
        bearer = await client.messages.create(model=MODEL, max_tokens=10, messages=user("Hi"))
        x_api_key = await client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=user("Hi"),
            extra_headers={"Authorization": anthropic.Omit(), "x-api-key": "sk-ant-test"},
        )
    assert bearer.content == x_api_key.content


async def test_missing_api_key_is_401(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError) as failed:
        await anthropic_client.messages.create(
            model=MODEL, max_tokens=10, messages=user("Hi"), extra_headers={"Authorization": anthropic.Omit()}
        )
    assert failed.value.type == "authentication_error"


async def test_missing_max_tokens_is_400(control: Any) -> None:
    published = json.loads((TRANSCRIPTS / "error.400.invalid_request_error.json").read_text())
    status, headers, raw = await control.post("/v1/messages", {"model": MODEL, "messages": user("Hi")}, AUTH)
    body = json.loads(raw)
    assert status == 400
    assert body.keys() == published.keys()
    assert body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert body["request_id"] == headers["request-id"]


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", anthropic.RateLimitError),
        ("500", anthropic.InternalServerError),
        ("503", anthropic.ServiceUnavailableError),
        ("529", anthropic.OverloadedError),
        ("cut", anthropic.APIConnectionError),
        ("malformed", json.JSONDecodeError),
        ("midstream", anthropic.OverloadedError),  # a non-streaming call fails as a whole: HTTP 529
    ],
)
async def test_faults(anthropic_client: anthropic.AsyncAnthropic, fault: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await anthropic_client.messages.create(model=MODEL, max_tokens=100, messages=user(f"Hi [[fault={fault}]]"))


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", anthropic.RateLimitError),
        ("529", anthropic.OverloadedError),
        # anthropic 2.17 wraps a failed read of a stream's body as it does any connection failure (before
        # 2.17 it came raw); either way the cause is the cut
        ("cut", (anthropic.APIConnectionError, httpx2.RemoteProtocolError)),
        ("malformed", json.JSONDecodeError),
        ("midstream", anthropic.APIStatusError),
    ],
)
async def test_stream_faults(
    anthropic_client: anthropic.AsyncAnthropic, fault: str, error: type[Exception] | tuple[type[Exception], ...]
) -> None:
    deltas = 0
    with pytest.raises(error) as failed:
        stream = await anthropic_client.messages.create(
            model=MODEL, max_tokens=100, messages=user(f"Hi [[fault={fault}]] [[tokens=10]]"), stream=True
        )
        async for event in stream:
            deltas += event.type == "content_block_delta"
    if fault in ("cut", "midstream"):
        assert deltas == 5
    if fault == "cut":
        cause = failed.value.__cause__ or failed.value
        assert isinstance(cause, httpx2.RemoteProtocolError)
    if fault == "midstream":
        assert isinstance(failed.value, anthropic.APIStatusError)
        assert failed.value.status_code == 200  # in-stream: not an OverloadedError
        assert failed.value.type == "overloaded_error"


async def test_retry_after_and_fail_times(anthropic_client: anthropic.AsyncAnthropic, control: Any) -> None:
    prompt = "Hi [[fault=529]] [[retry_after=0.02]] [[fail_times=1]]"
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await anthropic_client.messages.create(model=MODEL, max_tokens=10, messages=user(prompt))
    assert overloaded.value.response.headers["retry-after"] == "0.02"
    assert overloaded.value.response.headers["retry-after-ms"] == "20"
    assert overloaded.value.request_id == overloaded.value.body["request_id"]  # type: ignore[index]
    message = await anthropic_client.messages.create(model=MODEL, max_tokens=10, messages=user(prompt))
    assert message.stop_reason == "max_tokens"
    assert (await control.stats())["faults"] == {"529": 1}


async def test_request_headers_and_body_are_recorded(anthropic_client: anthropic.AsyncAnthropic, control: Any) -> None:
    headers = {"X-Trace-Id": "trace-anthropic-1", "X-Source-Agent": "coder", "X-Session-Id": "s-1"}
    await anthropic_client.messages.create(model=MODEL, max_tokens=10, messages=user("Hi"), extra_headers=headers)
    (recorded,) = await control.requests(trace_id="trace-anthropic-1")
    assert recorded["path"] == "/v1/messages"
    assert {name.lower(): value for name, value in headers.items()}.items() <= recorded["headers"].items()
    assert recorded["headers"]["authorization"] == "Bearer ...test"  # the key sent, kept masked
    assert recorded["body"] == {"max_tokens": 10, "messages": user("Hi"), "model": MODEL}


async def test_message_has_the_published_shape(control: Any) -> None:
    published = json.loads((TRANSCRIPTS / "messages.nonstream.response.json").read_text())
    body = {"model": MODEL, "max_tokens": 10, "messages": user("Hi")}
    status, _, raw = await control.post("/v1/messages", body, AUTH)
    ours = json.loads(raw)
    assert status == 200
    assert ours.keys() == published.keys()
    assert ours["content"][0].keys() == published["content"][0].keys()
    assert ours["usage"].keys() >= published["usage"].keys()


async def test_stream_has_the_published_events(control: Any) -> None:
    published = control.events((TRANSCRIPTS / "messages.stream.basic.sse").read_bytes())
    body = {"model": MODEL, "max_tokens": 10, "messages": user("Hi [[tokens=2]]"), "stream": True}
    status, _, raw = await control.post("/v1/messages", body, AUTH)
    ours = control.events(raw)
    assert status == 200
    assert [event["event"] for event in ours] == [event["event"] for event in published]
    for mine, theirs in zip(ours, published, strict=True):
        assert mine["event"] == mine["data"]["type"]
        assert mine["data"].keys() == theirs["data"].keys()
    assert ours[0]["data"]["message"].keys() == published[0]["data"]["message"].keys()


async def test_midstream_error_has_the_published_shape(control: Any) -> None:
    (published,) = control.events((TRANSCRIPTS / "error.midstream.overloaded_error.sse").read_bytes())
    body = {"model": MODEL, "max_tokens": 10, "messages": user("Hi [[fault=midstream]]"), "stream": True}
    _, _, raw = await control.post("/v1/messages", body, AUTH)
    assert control.events(raw)[-1] == published
