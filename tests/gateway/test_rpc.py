"""JSON-RPC 2.0 at /rpc: the methods through an independent client library (jsonrpcclient), and every error
case of the specification as raw bodies."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from jsonrpcclient import Error, Ok, notification, parse, request, request_uuid

from gateway.errors import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from schemas.catalog import Provider
from tests.gateway.conftest import AGENT, MODELS

pytestmark = pytest.mark.e2e

HELLO = {"model": MODELS[Provider.GEMINI], "messages": [{"role": "user", "content": "rpc [[tokens=3]]"}]}


async def _call(http: httpx.AsyncClient, body: Any) -> Ok | Error:
    answer = await http.post("/rpc", json=body)
    assert answer.status_code == 200
    return parse(answer.json())  # type: ignore[no-any-return]


async def _raw(http: httpx.AsyncClient, body: bytes | str) -> Any:
    answer = await http.post("/rpc", content=body, headers={"Content-Type": "application/json"})
    return answer.status_code, (answer.json() if answer.content else None)


async def test_complete_submit_result_cancel_through_the_library(http: httpx.AsyncClient) -> None:
    done = await _call(http, request("llm.complete", params={**HELLO, "session_id": "s-9"}))
    assert isinstance(done, Ok)
    assert done.result["content"] == "Echo: rpc alpha" and done.result["provider"] == "gemini"
    assert (done.result["source_agent"], done.result["session_id"]) == (AGENT, "s-9")  # the token's agent
    positional = await _call(http, request_uuid("llm.complete", params=(HELLO, 10)))
    assert isinstance(positional, Ok) and positional.result["content"] == "Echo: rpc alpha"
    submitted = await _call(http, request("llm.submit", params={"request": {**HELLO, "request_id": "rpc-sub-1"}}))
    assert isinstance(submitted, Ok) and submitted.result["request_id"] == "rpc-sub-1"
    result = await _call(http, request("llm.result", params={"request_id": "rpc-sub-1", "timeout": 10}))
    assert isinstance(result, Ok) and result.result["request_id"] == "rpc-sub-1"
    cancelled = await _call(http, request("llm.cancel", params=("rpc-sub-1",)))
    assert isinstance(cancelled, Ok) and cancelled.result == {"request_id": "rpc-sub-1", "cancelled": False}


async def test_a_tool_loop_through_complete_and_submit(http: httpx.AsyncClient) -> None:
    """The agents' fields are `LLMRequest` fields: llm.complete and llm.submit carry them as they are."""
    weather = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    ask = [{"role": "user", "content": "Weather in Rome? [[tool=get_weather]]"}]
    asked = await _call(http, request("llm.complete", params={**HELLO, "messages": ask, "tools": [weather]}))
    assert isinstance(asked, Ok) and asked.result["finish_reason"] == "tool_calls"
    (call,) = asked.result["tool_calls"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "city"})
    assistant = {"role": "assistant", "content": "", "tool_calls": [call]}  # the signature goes back with it
    answered = [*ask, assistant, {"role": "tool", "tool_call_id": call["id"], "content": "18 C"}]
    body = {**HELLO, "messages": answered, "tools": [weather], "request_id": "rpc-tools-1"}
    submitted = await _call(http, request("llm.submit", params={"request": body}))
    assert isinstance(submitted, Ok)
    final = await _call(http, request("llm.result", params={"request_id": "rpc-tools-1", "timeout": 10}))
    assert isinstance(final, Ok) and final.result["content"].startswith("Echo: Result: 18 C")
    assert final.result["finish_reason"] == "stop" and "tool_calls" not in final.result


async def test_models_select_and_metrics(http: httpx.AsyncClient) -> None:
    models = await _call(http, request("llm.models"))
    assert isinstance(models, Ok)
    assert {m["provider"] for m in models.result} == {"openai", "anthropic", "gemini"}
    chosen = await _call(http, request("llm.select", params={"tier": "fast", "prefer": ["anthropic"]}))
    assert isinstance(chosen, Ok) and chosen.result["tier"] == "fast" and chosen.result["model"].startswith("claude")
    await _call(http, request("llm.complete", params=HELLO))
    metrics = await _call(http, request("llm.metrics", params=[]))
    assert isinstance(metrics, Ok)
    providers = {p["provider"]: p for p in metrics.result["providers"]}
    assert providers["gemini"]["workers"] >= 1 and providers["gemini"]["queued"] == 0
    # The whole fleet's recent requests, from Redis: at least the one just answered, with its latency.
    assert providers["gemini"]["requests"] >= 1 and providers["gemini"]["p50_ms"] > 0
    assert providers["gemini"]["tokens_per_s"] > 0
    gemini = next(m for m in metrics.result["models"] if m["model"] == MODELS[Provider.GEMINI])
    assert gemini["requests"] >= 1 and gemini["completion_tokens"] >= 3


async def test_application_errors_carry_type_retryable_request_and_trace(http: httpx.AsyncClient) -> None:
    unknown = {**HELLO, "model": "gpt-nope", "request_id": "rpc-err-1", "trace_id": "trace-rpc-err"}
    error = await _call(http, request("llm.complete", params=unknown))
    assert isinstance(error, Error) and error.code == -32002
    assert error.data["type"] == "UnknownModelError" and error.data["retryable"] is False
    assert (error.data["request_id"], error.data["trace_id"]) == ("rpc-err-1", "trace-rpc-err")
    missing = await _call(http, request("llm.result", params={"request_id": "never-submitted"}))
    assert isinstance(missing, Error) and (missing.code, missing.data["type"]) == (-32006, "RequestNotFoundError")
    refused = {**HELLO, "messages": [{"role": "user", "content": "[[fault=keyshown]]"}]}
    failed = await _call(http, request("llm.complete", params=refused))  # the provider refuses the worker's key
    assert isinstance(failed, Error) and failed.code == -32012
    assert (failed.data["type"], failed.data["retryable"]) == ("AuthenticationError", False)
    assert "emulator-key" not in json.dumps(failed.data) + failed.message


async def test_a_notification_runs_and_gets_no_answer(http: httpx.AsyncClient) -> None:
    answer = await http.post("/rpc", json=notification("llm.submit", params={**HELLO, "request_id": "rpc-note-1"}))
    assert (answer.status_code, answer.content) == (204, b"")
    result = await _call(http, request("llm.result", params={"request_id": "rpc-note-1", "timeout": 10}))
    assert isinstance(result, Ok)  # it ran


@pytest.mark.parametrize("call_id", ["abc", "", 7, -3, 1.5, 0, None, 2**53 + 1])
async def test_every_allowed_id_type_is_echoed(http: httpx.AsyncClient, call_id: object) -> None:
    _, body = await _raw(http, json.dumps({"jsonrpc": "2.0", "method": "llm.models", "id": call_id}))
    assert body["id"] == call_id and type(body["id"]) is type(call_id) and "result" in body


async def test_a_batch_answers_each_call_and_skips_notifications(http: httpx.AsyncClient) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "llm.models", "id": "a"},
        {"jsonrpc": "2.0", "method": "llm.models"},  # a notification: no answer
        {"jsonrpc": "2.0", "method": "no.such", "id": 2},
        {"jsonrpc": "2.0", "method": "llm.complete", "params": HELLO, "id": 3},
    ]
    status, body = await _raw(http, json.dumps(batch))
    assert status == 200 and len(body) == 3
    by_id = {json.dumps(a["id"]): a for a in body}
    assert "result" in by_id['"a"'] and by_id["2"]["error"]["code"] == METHOD_NOT_FOUND
    assert by_id["3"]["result"]["content"] == "Echo: rpc alpha"
    status, body = await _raw(http, json.dumps([{"jsonrpc": "2.0", "method": "llm.models"}] * 2))
    assert (status, body) == (204, None)  # notifications only: nothing at all


@pytest.mark.parametrize(
    ("body", "code", "answer_id"),
    [
        ('{"jsonrpc": "2.0", "method": "llm.models", "params": "bar", "baz]', PARSE_ERROR, None),
        ('[{"jsonrpc": "2.0", "method": "llm.models", "id": "1"},{"jsonrpc": "2.0", "method"]', PARSE_ERROR, None),
        ("", PARSE_ERROR, None),
        ('{"jsonrpc": "2.0", "method": "llm.models", "id": NaN}', PARSE_ERROR, None),
        ("[]", INVALID_REQUEST, None),
        ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}', INVALID_REQUEST, None),
        ('{"jsonrpc": "1.0", "method": "llm.models", "id": 4}', INVALID_REQUEST, 4),
        ('{"method": "llm.models", "id": 5}', INVALID_REQUEST, 5),
        ('{"jsonrpc": "2.0", "method": "llm.models", "params": 3, "id": 6}', INVALID_REQUEST, 6),
        ('{"jsonrpc": "2.0", "method": "llm.models", "id": true}', INVALID_REQUEST, None),
        ('{"jsonrpc": "2.0", "method": "llm.models", "id": {"a": 1}}', INVALID_REQUEST, None),
        ('{"jsonrpc": "2.0", "method": "llm.models", "id": 1e400}', INVALID_REQUEST, None),
        ("1", INVALID_REQUEST, None),
        ('"llm.models"', INVALID_REQUEST, None),
        ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}', METHOD_NOT_FOUND, "1"),
        ('{"jsonrpc": "2.0", "method": "llm.result", "params": {"nope": 1}, "id": 7}', INVALID_PARAMS, 7),
        ('{"jsonrpc": "2.0", "method": "llm.result", "params": [1, 2, 3], "id": 8}', INVALID_PARAMS, 8),
        ('{"jsonrpc": "2.0", "method": "llm.complete", "params": {"model": "x"}, "id": 9}', INVALID_PARAMS, 9),
        ('{"jsonrpc": "2.0", "method": "llm.complete", "params": [{}, "soon"], "id": 10}', INVALID_PARAMS, 10),
        ('{"jsonrpc": "2.0", "method": "llm.select", "params": {}, "id": 11}', INVALID_PARAMS, 11),
        ('{"jsonrpc": "2.0", "method": "llm.models", "params": {"x": 1}, "id": 12}', INVALID_PARAMS, 12),
    ],
)
async def test_every_error_of_the_specification(
    http: httpx.AsyncClient, body: str, code: int, answer_id: object
) -> None:
    status, answer = await _raw(http, body)
    assert status == 200
    assert answer["jsonrpc"] == "2.0" and answer["id"] == answer_id and "result" not in answer
    assert answer["error"]["code"] == code and answer["error"]["message"]


async def test_a_batch_of_invalid_calls_answers_each(http: httpx.AsyncClient) -> None:
    status, answer = await _raw(http, "[1,2,3]")
    assert status == 200 and [a["error"]["code"] for a in answer] == [INVALID_REQUEST] * 3
    assert all(a["id"] is None for a in answer)
