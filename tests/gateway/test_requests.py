"""Requests by id over HTTP: submit (202, Idempotency-Key), long-poll result, cancel, and the events as SSE with
replay from Last-Event-ID (through httpx-sse)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import NamedTuple

import httpx
import pytest
from httpx_sse import aconnect_sse

from schemas.catalog import Provider
from tests.gateway.conftest import AGENT, MODELS

pytestmark = pytest.mark.e2e


class Event(NamedTuple):
    event: str
    data: str
    id: str


def _body(text: str, **extra: object) -> dict[str, object]:
    return {"model": MODELS[Provider.OPENAI], "messages": [{"role": "user", "content": text}], **extra}


async def _events(http: httpx.AsyncClient, request_id: str, last: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last} if last else {}
    async with aconnect_sse(http, "GET", f"/v1/requests/{request_id}/events", headers=headers) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [Event(sse.event, sse.data, sse.id) async for sse in source.aiter_sse()]


async def test_submit_then_long_poll_the_result(http: httpx.AsyncClient) -> None:
    key = f"idem-{uuid.uuid4().hex[:8]}"
    accepted = await http.post("/v1/requests", json=_body("slow [[latency_ms=400]]"), headers={"Idempotency-Key": key})
    assert accepted.status_code == 202 and accepted.json()["request_id"] == key
    assert accepted.headers["location"] == f"/v1/requests/{key}"
    again = await http.post("/v1/requests", json=_body("slow [[latency_ms=400]]"), headers={"Idempotency-Key": key})
    assert again.status_code == 202  # the same body under the same key: the same request
    pending = await http.get(f"/v1/requests/{key}")
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    done = await http.get(f"/v1/requests/{key}", params={"wait": 10})
    assert done.status_code == 200 and done.json()["content"].startswith("Echo: slow")
    assert done.json()["source_agent"] == AGENT
    conflict = await http.post("/v1/requests", json=_body("other"), headers={"Idempotency-Key": key})
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "RequestConflictError"


async def test_an_unknown_request_is_404(http: httpx.AsyncClient) -> None:
    for answer in (await http.get("/v1/requests/nope-1"), await http.get("/v1/requests/nope-1/events")):
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "RequestNotFoundError"


async def test_delete_cancels_a_running_request(http: httpx.AsyncClient) -> None:
    accepted = await http.post("/v1/requests", json=_body("[[fault=stall]]"))
    request_id = accepted.json()["request_id"]
    cancelled = await http.delete(f"/v1/requests/{request_id}")
    assert cancelled.status_code == 200 and cancelled.json() == {"request_id": request_id, "cancelled": True}
    after = await http.get(f"/v1/requests/{request_id}", params={"wait": 10})
    assert after.status_code == 409 and after.json()["error"]["code"] == "RequestCancelledError"


async def test_events_replay_from_the_start_and_from_last_event_id(http: httpx.AsyncClient) -> None:
    accepted = await http.post("/v1/requests", json=_body("replay [[tokens=20]] [[tokens_per_s=200]]", stream=True))
    request_id = accepted.json()["request_id"]
    live = await _events(http, request_id)  # joins while it streams: replay, then live
    assert [e.event for e in live][-1] == "done" and all(e.event == "delta" for e in live[:-1])
    assert [json.loads(e.data)["seq"] for e in live] == list(range(1, len(live) + 1))
    ids = [e.id for e in live]
    assert all(ids) and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))  # Redis stream ids
    text = "".join(json.loads(e.data)["text"] for e in live[:-1])
    assert text == json.loads(live[-1].data)["response"]["content"]
    assert await _events(http, request_id) == live  # after the end: the same, from the start
    resumed = await _events(http, request_id, last=live[2].id)
    assert resumed == live[3:]


async def test_events_follow_a_request_submitted_later_live(http: httpx.AsyncClient) -> None:
    accepted = await http.post("/v1/requests", json=_body("later [[latency_ms=300]] [[tokens=4]]", stream=True))
    request_id = accepted.json()["request_id"]
    events = await asyncio.wait_for(_events(http, request_id), 10)  # subscribed before the first token
    *deltas, done = events
    assert done.event == "done" and deltas and all(e.event == "delta" for e in deltas)
    response = json.loads(done.data)["response"]
    assert "".join(json.loads(e.data)["text"] for e in deltas) == response["content"]
    assert response["usage"]["completion_tokens"] == 4


async def test_a_request_that_does_not_stream_has_one_event_its_end(http: httpx.AsyncClient) -> None:
    accepted = await http.post("/v1/requests", json=_body("plain [[tokens=2]]"))
    events = await _events(http, accepted.json()["request_id"])
    assert [e.event for e in events] == ["done"]
    assert json.loads(events[0].data)["response"]["content"] == "Echo: plain"


async def test_a_bad_last_event_id_is_a_400(http: httpx.AsyncClient) -> None:
    accepted = await http.post("/v1/requests", json=_body("x", stream=True))
    answer = await http.get(f"/v1/requests/{accepted.json()['request_id']}/events", headers={"Last-Event-ID": "x"})
    assert answer.status_code == 400 and "Last-Event-ID" in answer.json()["error"]["message"]
