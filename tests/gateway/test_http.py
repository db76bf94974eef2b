"""Bad input gets a clear 4xx (never a 500 or a traceback), trace context goes in and comes back, and the probes
and the gateway's own metrics answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from schemas.catalog import Provider
from tests.e2e.emulator_api import requests_for
from tests.gateway.conftest import MODELS

pytestmark = pytest.mark.e2e

HELLO = {"model": MODELS[Provider.ANTHROPIC], "messages": [{"role": "user", "content": "http [[tokens=2]]"}]}


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("/v1/chat/completions", b"\xff\xfe", 400, "not valid JSON"),
        ("/v1/chat/completions", b"[1, 2]", 400, "JSON object"),
        ("/v1/chat/completions", b'{"model": "gpt-4.1-mini"}', 400, "messages"),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-4.1-mini", "messages": [{"role": "tool", "content": "x"}]}',
            400,
            "tool_call_id",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-4.1-mini", "messages": [{"role": "function", "name": "f", "content": "x"}]}',
            400,
            "role",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": 3}]}',
            400,
            "content",
        ),
        ("/v1/chat/completions", b'{"model": "gpt-4.1-mini", "messages": [], "temperature": 1}', 400, "messages"),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 9}',
            400,
            "temperature",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x"}], "stream_options": {"x": 1}}',
            400,
            "stream_options",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x", "name": "n"}]}',
            400,
            "name",
        ),
        ("/v1/chat/completions", b'{"model": "gpt-4.1-mini", "messages": "hi"}', 400, "messages"),
        ("/v1/chat/completions", b'{"model": "gpt-4.1-mini", "messages": ["hi"]}', 400, "messages[0]"),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-4.1-mini", "max_tokens": 5, "max_completion_tokens": 6, "messages": [{"role": "user", "content": "x"}]}',
            400,
            "differ",
        ),
        ("/v1/requests", b"", 400, "not valid JSON"),
        ("/v1/requests", b'"text"', 400, "JSON object"),
        (
            "/v1/requests",
            b'{"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x"}], "bogus": 1}',
            400,
            "bogus",
        ),
    ],
)
async def test_bad_input_is_a_clear_400(
    http: httpx.AsyncClient, path: str, body: bytes, status: int, says: str
) -> None:
    answer = await http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status
    error = answer.json()["error"]
    assert says in error["message"] + str(error.get("param")) and "Traceback" not in answer.text


async def test_a_bad_query_parameter_is_a_400(http: httpx.AsyncClient) -> None:
    answer = await http.get("/v1/requests/some-id", params={"wait": "soon"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "wait"


async def test_a_body_over_the_limit_is_413_declared_or_chunked(http: httpx.AsyncClient) -> None:
    big = b'{"x": "' + b"a" * 70_000 + b'"}'
    declared = await http.post("/v1/chat/completions", content=big)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    chunked = await http.post("/rpc", content=chunks())
    assert chunked.status_code == 413


async def test_trace_context_goes_in_and_comes_back(http: httpx.AsyncClient, emulator: str) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01", "X-Session-Id": "sess-7"}
    answer = await http.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert answer.status_code == 200
    assert (answer.headers["x-trace-id"], answer.headers["x-session-id"]) == (trace, "sess-7")
    version, back, span, flags = answer.headers["traceparent"].split("-")
    assert (version, back, flags) == ("00", trace, "01") and span != "00f067aa0ba902b7"  # a span of ours
    assert answer.headers["x-request-id"] == answer.json()["id"].removeprefix("chatcmpl-")
    (call,) = await requests_for(emulator, trace)  # the provider call carried the caller's trace
    assert call["headers"]["x-session-id"] == "sess-7"
    named = await http.post("/v1/chat/completions", json=HELLO, headers={"X-Trace-Id": "my-trace"})
    assert named.headers["x-trace-id"] == "my-trace" and "traceparent" not in named.headers


async def test_probes_and_metrics(http: httpx.AsyncClient, gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url) as anonymous:  # open without a token
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        ready = await anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["redis"] is True
        assert set(ready.json()["workers"]) == {"openai", "anthropic", "gemini"} and all(
            ready.json()["workers"].values()
        )
        await http.post("/v1/chat/completions", content=b"{")
        metrics = (await anonymous.get("/metrics")).text
    assert 'llm_gateway_requests_total{method="POST",route="/v1/chat/completions",status="400"}' in metrics
    assert 'llm_gateway_request_duration_seconds_count{route="/v1/chat/completions"}' in metrics
    assert 'status="500"' not in metrics
