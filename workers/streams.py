"""Publishing a stream's events, coalescing tokens that arrive while a publish is in flight.

The first token goes out at once. While a publish is on its way to Redis, newer tokens gather and
leave together as one event as soon as it returns, so no token waits longer than one round trip and
a fast provider costs fewer events than it sends tokens.
"""

from __future__ import annotations

import asyncio

from schemas.events import CancelledEvent, DeltaEvent, DoneEvent, ErrorEvent
from workers.queue import Started, WorkerQueue

__all__ = ["EventPublisher"]


class EventPublisher:
    def __init__(
        self,
        queue: WorkerQueue,
        request_id: str,
        *,
        seq: int = 0,
        coalesce: bool = True,
    ) -> None:
        self._coalesce = coalesce
        self.gate: asyncio.Future[Started] | None = None  # the start script: nothing leaves before it says 'run'
        self._queue = queue
        self._request_id = request_id
        self._pending: list[str] = []
        self._flushing: asyncio.Task[None] | None = None
        self.seq = seq
        self.tokens = 0

    def delta(self, text: str) -> None:
        """Queue a token; it is published now, or with the next event if a publish is in flight."""
        if not text:
            return
        self.tokens += 1
        self._pending.append(text)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        if self.gate is not None:
            if (await asyncio.shield(self.gate)).kind != "run":
                self._pending.clear()  # the job must not run: what it streamed goes nowhere
                return
            self.gate = None
        while self._pending:
            if self._coalesce:
                text = "".join(self._pending)
                self._pending.clear()
            else:
                text = self._pending.pop(0)
            seq = self.seq + 1
            event = DeltaEvent(seq=seq, text=text).model_dump_json()
            await self._queue.publish(self._request_id, event, first=seq == 1)
            self.seq = seq  # only once kept: a terminal event never follows a gap

    async def drain(self) -> None:
        """Wait until every queued token is published (a terminal event must come after them)."""
        if self._flushing is not None:
            await self._flushing

    async def close(self) -> None:
        """Stop publishing (the request was cancelled or failed): drop what has not left yet."""
        self._pending.clear()
        if self._flushing is not None and not self._flushing.done():
            await asyncio.wait([self._flushing])

    def terminal(self, event: type[DoneEvent | ErrorEvent | CancelledEvent], **fields: object) -> str:
        """The terminal event's JSON, numbered after every delta (written by the finish script)."""
        self.seq += 1
        return event.model_validate({"seq": self.seq, **fields}).model_dump_json()
