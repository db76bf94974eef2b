"""The worker's stream relay against a real Redis server: what is kept, how it is numbered, and when
nothing may leave."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator

import pytest
from redis.asyncio import Redis

from jobstore import Keys, WorkerQueue
from schemas.catalog import Provider
from schemas.events import DeltaEvent, ErrorEvent, ToolCallEvent, decode_event
from schemas.response import LLMResponse, Usage
from tests.servers import free_port
from workers.providers.base import StreamItem
from workers.providers.normalised import ReasoningDelta, ToolCallDelta
from workers.settings import WorkerSettings
from workers.streams import EventRelay, _delta, relay


@pytest.fixture
def keys() -> Keys:
    return Keys(f"s{uuid.uuid4().hex[:8]}")


def _relay(redis: Redis, keys: Keys, *, coalesce: bool = True, outage_s: float = 60.0) -> EventRelay:
    queue = WorkerQueue(redis, keys, "openai", "w1", result_ttl_s=60, stream_ttl_s=60, outage_s=outage_s)
    return EventRelay(queue, coalesce=coalesce)


async def _kept(redis: Redis, keys: Keys, request_id: str) -> list[tuple[int, str]]:
    entries = await redis.xrange(keys.events(request_id))
    return [(e["seq"], e["text"]) for e in (json.loads(fields[b"e"]) for _, fields in entries)]


async def test_streams_share_sends_and_tokens_waiting_for_one_travel_together(redis: Redis, keys: Keys) -> None:
    relay = _relay(redis, keys)
    sends: list[int] = []  # events per send
    publish = relay.queue.publish

    async def counted(events: list[tuple[str, int, str]]) -> None:
        sends.append(len(events))
        await publish(events)

    relay.queue.publish = counted  # type: ignore[method-assign]
    one, two = relay.publisher("one"), relay.publisher("two")
    one.delta("a")  # leaves at once
    await asyncio.sleep(0)  # its send is on its way
    one.delta("b")  # these wait for that send, then leave together, with the other stream's
    one.delta("c")
    two.delta("x")
    await one.drain()
    await two.drain()
    assert await _kept(redis, keys, "one") == [(1, "a"), (2, "bc")]
    assert await _kept(redis, keys, "two") == [(1, "x")]
    assert (one.seq, two.seq, one.tokens) == (2, 1, 3)
    assert sends == [1, 2]  # "a" alone, then "bc" and "x" together
    assert 0 < await redis.ttl(keys.events("one")) <= 60  # set with the stream's first event


async def test_later_tokens_gather_for_the_window_and_first_tokens_cut_it_short(redis: Redis, keys: Keys) -> None:
    relay = _relay(redis, keys)
    relay.window_s = 1.0  # far above the test's own pauses, so that a loaded machine cannot blur them
    sends: list[list[str]] = []  # the streams of each send
    publish = relay.queue.publish

    async def counted(events: list[tuple[str, int, str]]) -> None:
        sends.append([request_id for request_id, _, _ in events])
        await publish(events)

    relay.queue.publish = counted  # type: ignore[method-assign]
    one, two = relay.publisher("one"), relay.publisher("two")
    one.delta("a")  # a first token: at once
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    one.delta("b")  # a later token: waits for the rest of the window
    await asyncio.sleep(0.05)
    assert sends == [["one"]]
    two.delta("x")  # another stream's first token: sent now, with "b"
    await asyncio.sleep(0.02)
    assert sends == [["one"], ["one", "two"]]
    assert time.perf_counter() - t0 < 0.6
    one.delta("c")
    await one.drain()  # a stream that ends does not wait out the window either
    assert time.perf_counter() - t0 < 0.6
    assert await _kept(redis, keys, "one") == [(1, "a"), (2, "b"), (3, "c")]


async def test_without_coalescing_every_token_is_an_event(redis: Redis, keys: Keys) -> None:
    relay = _relay(redis, keys, coalesce=False)
    stream = relay.publisher("s")
    for token in "abc":
        stream.delta(token)
    await stream.drain()
    assert await _kept(redis, keys, "s") == [(1, "a"), (2, "b"), (3, "c")]


async def test_events_lost_with_redis_leave_no_gap_before_the_terminal_event(keys: Keys) -> None:
    gone = Redis(port=free_port())  # nothing listens there
    relay = _relay(gone, keys, outage_s=0.2)
    stream = relay.publisher("s")
    stream.delta("a")
    await asyncio.wait_for(stream.drain(), 5)
    assert stream.seq == 0  # not kept, so not numbered
    terminal = json.loads(stream.terminal(ErrorEvent, error={"type": "FleetUnavailableError", "message": "gone"}))
    assert terminal["seq"] == 1
    await gone.aclose()


@pytest.mark.parametrize("text", ["plain", 'quotes " and \\ backslash', "line\nbreak\ttab\x01", "é 漢字 😀 \u2028"])
def test_a_delta_is_written_as_pydantic_writes_it(text: str) -> None:
    """Deltas are built by hand (they are per token): the same JSON as the model's, read back to the same text."""
    assert _delta(7, text) == DeltaEvent(seq=7, text=text).model_dump_json()
    assert decode_event(_delta(7, text).encode()) == DeltaEvent(seq=7, text=text)


@pytest.mark.parametrize("coalesce", [True, False])
async def test_tool_call_and_reasoning_pieces_keep_their_order_and_types(
    redis: Redis, keys: Keys, coalesce: bool
) -> None:
    relay = _relay(redis, keys, coalesce=coalesce)
    publisher = relay.publisher("agent")
    publisher.piece(ReasoningDelta("Let me"))
    await publisher.drain()  # the first piece leaves alone; the rest wait and travel together
    pieces: list[str | ToolCallDelta | ReasoningDelta] = [
        ReasoningDelta(" think."),
        "Calling",
        " now.",
        ToolCallDelta(0, "call_1", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"ci'),
        ToolCallDelta(0, None, None, 'ty": "Paris"}'),
        ToolCallDelta(1, "call_2", "get_time", "{}", "sig-2"),
    ]
    for piece in pieces:
        publisher.delta(piece) if isinstance(piece, str) else publisher.piece(piece)
    await publisher.drain()
    entries = await redis.xrange(keys.events("agent"))
    events = [decode_event(fields[b"e"]) for _, fields in entries]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert publisher.tokens == 8
    dumped = [e.model_dump(exclude={"seq"}) for e in events]
    if coalesce:
        assert dumped == [
            {"type": "reasoning", "text": "Let me"},
            {"type": "reasoning", "text": " think."},
            {"type": "delta", "text": "Calling now."},
            {"type": "tool_call", "index": 0, "id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {
                "type": "tool_call",
                "index": 1,
                "id": "call_2",
                "name": "get_time",
                "arguments": "{}",
                "signature": "sig-2",
            },
        ]
    else:
        assert len(events) == 8 and [e.type for e in events].count("tool_call") == 4
        assert (
            "".join(e.arguments for e in events if isinstance(e, ToolCallEvent) and e.index == 0) == '{"city": "Paris"}'
        )
    # the hand-written JSON is what pydantic would write
    assert all(fields[b"e"].decode() == decode_event(fields[b"e"]).model_dump_json() for _, fields in entries)


async def test_relay_publishes_every_kind_of_piece_then_returns_the_answer(redis: Redis, keys: Keys) -> None:
    relay_ = _relay(redis, keys)
    fields = {"content": "ok", "latency_ms": 1, "model": "m", "request_id": "r", "trace_id": "r"}
    answer = LLMResponse(usage=Usage(), provider=Provider.ANTHROPIC, finish_reason="tool_calls", **fields)  # type: ignore[arg-type]

    async def chunks() -> AsyncGenerator[StreamItem]:
        yield ReasoningDelta("hm")  # the stream's first piece: it leaves at once
        yield "ok"
        yield ToolCallDelta(0, "c", "f", "{}")
        yield answer

    publisher = relay_.publisher("r")
    settings = WorkerSettings(REDIS_URL="redis://unused", LLM_KEY_PREFIX=keys.prefix)
    assert await relay(chunks(), publisher, Provider.ANTHROPIC, settings) is answer
    entries = await redis.xrange(keys.events("r"))
    assert [decode_event(fields[b"e"]).type for _, fields in entries] == ["reasoning", "delta", "tool_call"]
    assert publisher.tokens == 3
