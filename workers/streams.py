"""Publishing stream events: one relay per worker sends the events of all its streams together.

A stream's tokens wait in its `EventPublisher`; the worker's `EventRelay` sends every waiting stream's
events in one script (XADD to each kept copy, PUBLISH on each live channel). A stream's first token leaves
at once, never held back; later tokens gather for at most `window_s` (5 ms) after the relay's last send
(plus the round trip of a send on its way), so that under load one round trip carries many streams'
events, and a stream's end is sent at once. A stream's waiting tokens travel as one event (coalescing),
or one event each with `LLM_STREAM_COALESCE=false`. Pieces of tool calls and of reasoning travel as events of
their own types, in the order they came, each run of them coalesced as text is (a call's argument fragments
into one).

A stream's events are numbered only once they are kept, so its terminal event never follows a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator
from typing import cast

import structlog
from redis.exceptions import RedisError

from jobstore import WorkerQueue
from schemas.catalog import Provider
from schemas.errors import ProviderTimeoutError, ProviderUnavailableError
from schemas.events import CancelledEvent, DoneEvent, ErrorEvent
from schemas.response import LLMResponse
from workers.providers.base import StreamItem
from workers.providers.normalised import ReasoningDelta, ToolCallDelta
from workers.settings import WorkerSettings

__all__ = ["EventPublisher", "EventRelay", "relay"]

log = structlog.get_logger("llm_fleet.worker")


_WINDOW_S = 0.005


def _delta(seq: int, text: str) -> str:
    """A `DeltaEvent`'s JSON, as pydantic writes it; by hand, at half its cost, as it is built per token."""
    return f'{{"type":"delta","seq":{seq},"text":{json.dumps(text, ensure_ascii=False)}}}'


_Piece = str | ToolCallDelta | ReasoningDelta


def _event(seq: int, piece: _Piece) -> str:
    """Any piece's event JSON (`ToolCallEvent`, `ReasoningEvent`, `DeltaEvent`), by hand as `_delta` is."""
    if isinstance(piece, ToolCallDelta):
        call = (
            f'"index":{piece.index},"id":{json.dumps(piece.id)},"name":{json.dumps(piece.name, ensure_ascii=False)},'
            f'"arguments":{json.dumps(piece.arguments, ensure_ascii=False)}'
        )
        if piece.signature is not None:
            call += f',"signature":{json.dumps(piece.signature)}'
        return f'{{"type":"tool_call","seq":{seq},{call}}}'
    if isinstance(piece, ReasoningDelta):
        return f'{{"type":"reasoning","seq":{seq},"text":{json.dumps(piece.text, ensure_ascii=False)}}}'
    return _delta(seq, piece)


def _coalesced(pieces: list[_Piece]) -> list[_Piece]:
    """Runs of text, of reasoning, and of one tool call's argument fragments, each made one piece."""
    out: list[_Piece] = []
    for piece in pieces:
        last = out[-1] if out else None
        if isinstance(piece, str) and isinstance(last, str):
            out[-1] = last + piece
        elif isinstance(piece, ReasoningDelta) and isinstance(last, ReasoningDelta):
            out[-1] = ReasoningDelta(last.text + piece.text)
        elif (
            isinstance(piece, ToolCallDelta)
            and isinstance(last, ToolCallDelta)
            and piece.index == last.index
            and piece.id is None
            and piece.name is None
        ):
            out[-1] = ToolCallDelta(last.index, last.id, last.name, last.arguments + piece.arguments, last.signature)
        else:
            out.append(piece)
    return out


class EventRelay:
    """Sends the waiting events of every stream this worker runs, one script per send."""

    def __init__(self, queue: WorkerQueue, *, coalesce: bool = True, window_s: float = _WINDOW_S) -> None:
        self.queue = queue
        self.coalesce = coalesce
        self.window_s = window_s
        self._ready: dict[EventPublisher, None] = {}  # streams with tokens to send, in arrival order
        self._sending: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # a stream's first token, or a stream's end, is waiting: send now
        self._last_send = 0.0  # the loop's clock

    def publisher(self, request_id: str, *, seq: int = 0) -> EventPublisher:
        return EventPublisher(self, request_id, seq=seq)

    def ready(self, publisher: EventPublisher, *, hurry: bool = False) -> None:
        self._ready[publisher] = None
        if hurry:
            self.hurry()
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send())

    def hurry(self) -> None:
        """Send what waits without waiting out the window (a stream is ending)."""
        self._hurry.set()

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while self._ready:
            wait_s = self._last_send + self.window_s - loop.time()
            if wait_s > 0 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._hurry.wait()
            self._hurry.clear()
            self._last_send = loop.time()
            batch = [(p, p.take()) for p in self._ready]
            self._ready.clear()
            events = [(p.request_id, seq, event) for p, taken in batch for seq, event in taken]
            try:
                if events:
                    await self.queue.publish(events)
            except (RedisError, OSError) as exc:  # Redis away longer than the worker rides out: tokens lost
                log.warning("stream_events_lost", events=len(events), error=repr(exc))
                for p, _ in batch:
                    p.sent(None)
            else:
                for p, taken in batch:
                    p.sent(taken[-1][0] if taken else None)


class EventPublisher:
    """One stream's side of the relay: its waiting tokens and its sequence numbers."""

    def __init__(self, relay: EventRelay, request_id: str, *, seq: int = 0) -> None:
        self.request_id = request_id
        self.seq = seq
        self.tokens = 0
        self.first_token_s = 0.0  # from the provider call's start to its first token (0: none came)
        self._relay = relay
        self._pending: list[_Piece] = []
        self._mixed = False  # pieces other than text are waiting
        self._in_flight = False
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    def delta(self, text: str) -> None:
        """Queue a token: it leaves with the relay's next send."""
        if not text or self._closed:
            return
        self.tokens += 1
        self._pending.append(text)
        self._idle.clear()
        self._relay.ready(self, hurry=self.seq == 0)  # nothing kept yet: this is the stream's first token

    def piece(self, piece: ToolCallDelta | ReasoningDelta) -> None:
        """Queue a piece of a tool call or of reasoning: it leaves with the relay's next send, as a token does."""
        if self._closed:
            return
        self.tokens += 1
        self._mixed = True
        self._pending.append(piece)
        self._idle.clear()
        self._relay.ready(self, hurry=self.seq == 0)

    def take(self) -> list[tuple[int, str]]:
        """The waiting tokens as numbered events (the numbers become the stream's once `sent`)."""
        if self._mixed:
            many = self._relay.coalesce and len(self._pending) > 1
            pieces = _coalesced(self._pending) if many else list(self._pending)
            self._pending.clear()
            self._mixed = False
            self._in_flight = bool(pieces)
            return [(seq, _event(seq, piece)) for seq, piece in enumerate(pieces, self.seq + 1)]
        texts = cast("list[str]", self._pending)
        texts = ["".join(texts)] if self._relay.coalesce and texts else list(texts)
        self._pending.clear()
        self._in_flight = bool(texts)
        return [(seq, _delta(seq, text)) for seq, text in enumerate(texts, self.seq + 1)]

    def sent(self, last_seq: int | None) -> None:
        """The relay's send ended: kept up to `last_seq` (None: nothing kept)."""
        if last_seq is not None:
            self.seq = last_seq
        self._in_flight = False
        if not self._pending:
            self._idle.set()

    async def drain(self) -> None:
        """Wait until every queued token is kept (a terminal event must come after them)."""
        if not self._idle.is_set():
            self._relay.hurry()
        await self._idle.wait()

    async def close(self) -> None:
        """Stop publishing (the request ended): drop what has not left, wait for what is on its way."""
        self._closed = True
        self._pending.clear()
        self._mixed = False
        if not self._in_flight:
            self._idle.set()
        await self._idle.wait()

    def terminal(self, event: type[DoneEvent | ErrorEvent | CancelledEvent], **fields: object) -> str:
        """The terminal event's JSON, numbered after every delta (written by the finish script); the number
        is taken only once the event is written."""
        written = event.model_validate({"seq": self.seq + 1, **fields}).model_dump_json()
        self.seq += 1
        return written


async def relay(
    chunks: AsyncGenerator[StreamItem], publisher: EventPublisher, provider: Provider, settings: WorkerSettings
) -> LLMResponse:
    """Publish a provider stream's text (and pieces of tool calls and reasoning) as it comes (`chunks`: the
    adapter's deltas, then its final response);
    the final response once every delta is kept. A stream whose first token, or next one, is late fails
    (`LLM_STREAM_FIRST_TOKEN_TIMEOUT`, `LLM_STREAM_IDLE_TIMEOUT`)."""
    final: LLMResponse | None = None
    started = time.perf_counter()  # the provider call starts with the first chunk asked for
    loop = asyncio.get_running_loop()
    idle_s = settings.idle_timeout_s
    try:
        async with asyncio.timeout(settings.first_token_timeout_s) as gap:
            async for item in chunks:
                if isinstance(item, str):
                    publisher.delta(item)
                    if publisher.tokens == 1:  # let its send leave before the chunks read with it are parsed
                        publisher.first_token_s = time.perf_counter() - started
                        await asyncio.sleep(0)
                elif isinstance(item, LLMResponse):
                    final = item
                else:
                    publisher.piece(item)
                    if publisher.tokens == 1:
                        await asyncio.sleep(0)
                # the idle deadline moves when a chunk moves it by over 1 % (a timer rescheduled per
                # chunk costs more than the chunk's relay): silence fails the stream after 99-100 % of it
                deadline = loop.time() + idle_s
                if abs(deadline - (gap.when() or 0.0)) > idle_s / 100:
                    gap.reschedule(deadline)
    except TimeoutError:
        what = "first token" if publisher.tokens == 0 else "next token"
        raise ProviderTimeoutError(f"{provider} stream: no {what} in time", provider=provider) from None
    finally:
        await chunks.aclose()
    if final is None:
        raise ProviderUnavailableError(f"{provider} stream ended without a final response", provider=provider)
    await publisher.drain()
    return final
