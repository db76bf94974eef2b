"""Gemini generateContent through the real google-genai SDK (``client.aio``, on v1beta and the 3.x default v1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from google import genai
from google.genai import errors, types

MODEL = "gemini-2.5-flash"
TRANSCRIPTS = Path(__file__).parents[1] / "fixtures" / "transcripts" / "gemini"
PATH = f"/v1beta/models/{MODEL}"
AUTH = {"x-goog-api-key": "gemini-test"}

# google-genai uses aiohttp when it is importable (as here: the workers depend on it) and subclasses its ClientSession.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged:DeprecationWarning"
)


def user(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


async def test_generate_text_usage_and_model(gemini_client: genai.Client) -> None:
    config = types.GenerateContentConfig(system_instruction="Be brief.")
    response = await gemini_client.aio.models.generate_content(
        model=MODEL, contents="Hello there, emulator!", config=config
    )
    assert response.text == "Echo: Hello there, emulator! alpha bravo charlie delta echo foxtrot golf hotel"
    assert response.model_version == MODEL
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (5, 12, 17)


async def test_stream_usage_on_every_chunk(gemini_client: genai.Client) -> None:
    chunks = [
        chunk
        async for chunk in await gemini_client.aio.models.generate_content_stream(
            model=MODEL, contents="Stream it [[tokens=4]]"
        )
    ]
    assert [chunk.text for chunk in chunks] == ["Echo:", " Stream", " it", " alpha"]
    assert all(chunk.usage_metadata and chunk.usage_metadata.prompt_token_count == 3 for chunk in chunks)
    assert [chunk.usage_metadata.candidates_token_count for chunk in chunks if chunk.usage_metadata] == [None] * 3 + [4]
    assert [chunk.candidates[0].finish_reason for chunk in chunks if chunk.candidates] == [None] * 3 + ["STOP"]


async def test_max_output_tokens_cuts_with_max_tokens(gemini_client: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=3)
    response = await gemini_client.aio.models.generate_content(
        model=MODEL, contents="Long [[tokens=40]]", config=config
    )
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.usage_metadata is not None and response.usage_metadata.candidates_token_count == 3


async def test_block_is_prompt_feedback(gemini_client: genai.Client) -> None:
    response = await gemini_client.aio.models.generate_content(model=MODEL, contents="Bad [[block]]")
    assert response.candidates is None
    assert response.prompt_feedback is not None
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    chunks = [
        chunk
        async for chunk in await gemini_client.aio.models.generate_content_stream(model=MODEL, contents="Bad [[block]]")
    ]
    assert [chunk.prompt_feedback and chunk.prompt_feedback.block_reason for chunk in chunks] == ["SAFETY"]


async def test_missing_api_key_is_401(gemini_client: genai.Client) -> None:
    config = types.GenerateContentConfig(http_options=types.HttpOptions(headers={"x-goog-api-key": ""}))
    with pytest.raises(errors.ClientError) as failed:
        await gemini_client.aio.models.generate_content(model=MODEL, contents="Hi", config=config)
    assert (failed.value.code, failed.value.status) == (401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ("429", errors.ClientError, 429),
        ("500", errors.ServerError, 500),
        ("503", errors.ServerError, 503),
        ("529", errors.ServerError, 529),
        ("midstream", errors.ServerError, 503),  # a non-streaming call fails as a whole: HTTP 503
    ],
)
async def test_error_faults(gemini_client: genai.Client, fault: str, error: type[errors.APIError], code: int) -> None:
    with pytest.raises(error) as failed:
        await gemini_client.aio.models.generate_content(model=MODEL, contents=f"Hi [[fault={fault}]]")
    assert failed.value.code == code


async def test_transport_faults(gemini_client: genai.Client) -> None:
    """google-genai lets transport errors through raw (here aiohttp's: it uses aiohttp when importable)."""
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await gemini_client.aio.models.generate_content(model=MODEL, contents="Hi [[fault=cut]]")
    with pytest.raises(json.JSONDecodeError):
        await gemini_client.aio.models.generate_content(model=MODEL, contents="Hi [[fault=malformed]]")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", errors.ClientError),
        ("cut", aiohttp.ClientPayloadError),
        ("malformed", errors.UnknownApiResponseError),
        ("midstream", errors.ServerError),
    ],
)
async def test_stream_faults(gemini_client: genai.Client, fault: str, error: type[Exception]) -> None:
    received: list[str | None] = []
    with pytest.raises(error):
        async for chunk in await gemini_client.aio.models.generate_content_stream(
            model=MODEL, contents=f"Hi [[fault={fault}]] [[tokens=10]]"
        ):
            received.append(chunk.text)
    if fault in ("cut", "midstream"):
        assert len(received) == 5


async def test_retry_info(gemini_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as limited:
        await gemini_client.aio.models.generate_content(model=MODEL, contents="Hi [[fault=429]] [[retry_after=53]]")
    assert limited.value.status == "RESOURCE_EXHAUSTED"
    assert limited.value.details["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "53s"}
    ]
    assert limited.value.response.headers["retry-after"] == "53"


async def test_fail_times_with_sdk_retries(url: str, control: Any) -> None:
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.01)
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url, retry_options=retry))
    response = await client.aio.models.generate_content(model=MODEL, contents="Hi [[fault=503]] [[fail_times=2]]")
    await client.aio.aclose()
    assert response.text is not None and response.text.startswith("Echo: Hi")
    assert len(await control.requests()) == 3


async def test_request_headers_and_body_are_recorded(gemini_client: genai.Client, control: Any) -> None:
    headers = {"X-Trace-Id": "trace-gemini-1", "X-Source-Agent": "critic", "X-Session-Id": "s-2"}
    config = types.GenerateContentConfig(max_output_tokens=5, http_options=types.HttpOptions(headers=headers))
    await gemini_client.aio.models.generate_content(model=MODEL, contents="Hi", config=config)
    (recorded,) = await control.requests(trace_id="trace-gemini-1")
    assert recorded["path"].endswith(f"/models/{MODEL}:generateContent")
    assert {name.lower(): value for name, value in headers.items()}.items() <= recorded["headers"].items()
    assert recorded["headers"]["x-goog-api-key"] == "...test"  # the key sent, kept masked
    assert recorded["body"] == {**user("Hi"), "generationConfig": {"maxOutputTokens": 5}}


async def test_a_key_in_the_query_is_accepted_and_kept_masked(control: Any) -> None:
    await control.reset()
    status, _, _ = await control.post(f"{PATH}:generateContent?key=AIza-real-9876", user("Hi"), {})
    assert status == 200
    (recorded,) = await control.requests()
    assert "9876" in recorded["query"] and "AIza-real" not in recorded["query"]


async def test_response_has_the_published_shape(control: Any) -> None:
    published = json.loads((TRANSCRIPTS / "firebase-testdata.unary-success-basic-reply-short.json").read_text())
    status, _, raw = await control.post(f"{PATH}:generateContent", user("Hi"), AUTH)
    ours = json.loads(raw)
    assert status == 200
    assert ours.keys() == published.keys() | {"responseId"}
    assert ours["usageMetadata"].keys() == published["usageMetadata"].keys()
    assert ours["candidates"][0]["content"].keys() == published["candidates"][0]["content"].keys()
    assert ours["candidates"][0]["finishReason"] == "STOP"


async def test_stream_has_the_published_framing(control: Any) -> None:
    raw_published = (TRANSCRIPTS / "firebase-testdata.streaming-success-basic-reply-short.txt").read_bytes()
    published = control.events(raw_published, b"\r\n\r\n")
    status, headers, raw = await control.post(f"{PATH}:streamGenerateContent?alt=sse", user("Hi [[tokens=3]]"), AUTH)
    ours = control.events(raw, b"\r\n\r\n")
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert raw.count(b"\r\n\r\n") == 3 and raw.endswith(b"\r\n\r\n")
    assert len(ours) == len(published)
    for mine, theirs in zip(ours, published, strict=True):
        assert mine["data"].keys() == theirs["data"].keys() | {"responseId"}
        assert mine["data"]["usageMetadata"].keys() <= theirs["data"]["usageMetadata"].keys() | {
            "candidatesTokensDetails"
        }
        assert mine["data"]["candidates"][0].keys() == theirs["data"]["candidates"][0].keys() | {"index"}


async def test_blocked_stream_has_the_published_shape(control: Any) -> None:
    raw_published = (TRANSCRIPTS / "firebase-testdata.streaming-failure-prompt-blocked-safety.txt").read_bytes()
    (published,) = control.events(raw_published, b"\r\n")
    status, _, raw = await control.post(f"{PATH}:streamGenerateContent?alt=sse", user("Hi [[block]]"), AUTH)
    (ours,) = control.events(raw, b"\r\n\r\n")
    assert status == 200
    assert ours["data"]["promptFeedback"] == published["data"]["promptFeedback"]


async def test_errors_have_the_published_shape(control: Any) -> None:
    published = json.loads((TRANSCRIPTS / "firebase-testdata.unary-failure-api-key.json").read_text())
    status, _, raw = await control.post(f"{PATH}:generateContent", user("Hi"), {})
    assert status == 401
    assert json.loads(raw)["error"].keys() == published["error"].keys()
    status, _, raw = await control.post(f"/v1/models/{MODEL}:countTokens", user("Hi"), AUTH)
    assert (status, json.loads(raw)["error"]["status"]) == (404, "NOT_FOUND")
    status, _, raw = await control.post(f"{PATH}:generateContent", {"contents": []}, AUTH)
    assert (status, json.loads(raw)["error"]["status"]) == (400, "INVALID_ARGUMENT")


async def test_httpx2_transport(url: str) -> None:
    """Without aiohttp google-genai uses httpx2: same answers, and its own transport errors."""
    async with httpx2.AsyncClient() as http:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url, httpx_async_client=http))
        response = await client.aio.models.generate_content(model=MODEL, contents="Hi [[tokens=2]]")
        assert response.text == "Echo: Hi"
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="Hi [[tokens=2]]")
        assert [chunk.text async for chunk in stream] == ["Echo:", " Hi"]
        with pytest.raises(httpx2.RemoteProtocolError):
            async for _ in await client.aio.models.generate_content_stream(model=MODEL, contents="Hi [[fault=cut]]"):
                pass
        await client.aio.aclose()
