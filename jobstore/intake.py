"""The callers' half of the job model: submit, attach, cancel, and a dead letter's retry; each one script (one
round trip).

A request is a hash `{prefix}:req:{id}` (fields in `Field`) and, on its provider's queue, an element
`{id}\\n{route}\\n{deadline}` (the body stays in the hash, once: the claim's script returns it). A client
names its reply channel in the hash; the worker that finishes the request publishes the outcome there, so
waiting is pushed, never polled. Because a client subscribes to its reply channel once, before it submits
anything, and attaching is atomic with reading the result, a result written at any moment is either
returned by the script or published to a channel already listened to.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis

from jobstore.keys import Keys
from jobstore.lane import Lane
from jobstore.scripts import Script, load

__all__ = ["Intake"]


class Intake:
    """The scripts a caller runs, on the lean command path (`Lane`)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.lane = Lane(redis)
        self.keys = keys
        self._submit, self._attach, self._cancel = load("submit"), load("attach"), load("cancel")

    def _run(self, script: Script, keys: dict[str, Any], args: dict[str, Any]) -> Awaitable[Any]:
        return self.lane.run(script, *script.bind(keys, args))  # awaited by the caller: no coroutine between

    async def submit(
        self,
        *,
        request_id: str,
        provider: str,
        model: str,
        agent: str | None,
        reply: str,
        body: str,
        digest: str,
        now: float,
        ttl_s: int,
        deadline_at: float,
        max_depth: int,
    ) -> list[Any]:
        """['queued'] | ['conflict'] | ['full', depth] | ['budget', spent, budget] | ['done', outcome] |
        ['waiting', state, deadline_at]"""
        keys = {
            "request": self.keys.request(request_id),
            "queue": self.keys.queue(provider),
            "budgets": self.keys.budgets(),
            "spend": self.keys.spend(),
        }
        args = {
            "reply": reply,
            "request_id": request_id,
            "body": body,
            "digest": digest,
            "provider": provider,
            "model": model,
            "agent": agent or "",
            "now": now,
            "ttl": ttl_s,
            "deadline": deadline_at,
            "max_depth": max_depth,
        }
        answer: list[Any] = await self._run(self._submit, keys, args)
        return answer

    async def attach(self, *, request_id: str, reply: str) -> list[Any]:
        """Add our reply channel to a submitted request: ['missing'] | ['done', outcome] |
        ['waiting', state, deadline_at]"""
        answer: list[Any] = await self._run(self._attach, {"request": self.keys.request(request_id)}, {"reply": reply})
        return answer

    async def cancel(
        self, *, request_id: str, provider: str, now: float, ttl_s: int, outcome: str, stream_ttl_s: int
    ) -> str:
        """'missing' | 'done' | 'cancelled' (it was queued) | 'cancelling' (a worker is told to stop it)"""
        keys = {
            "request": self.keys.request(request_id),
            "queue": self.keys.queue(provider),
            "events": self.keys.events(request_id),
        }
        args = {
            "request_id": request_id,
            "now": now,
            "ttl": ttl_s,
            "outcome": outcome,
            "control_channel": self.keys.control(provider),
            "tokens_channel": self.keys.tokens(request_id),
            "stream_ttl": stream_ttl_s,
        }
        reply: bytes = await self._run(self._cancel, keys, args)
        return reply.decode()

    async def ready(self, providers: list[str], dead_after_s: float) -> list[str]:
        """Those of `providers` with a live worker and a closed circuit."""
        pairs = [k for p in providers for k in (self.keys.workers(p), self.keys.circuit(p))]
        flags = await self._run(load("ready"), {"pairs": pairs}, {"dead_after": dead_after_s})
        return [p for p, flag in zip(providers, flags, strict=True) if flag]

    async def retry_dead(self, *, request_id: str, provider: str, model: str, deadline_at: float, ttl_s: int) -> bool:
        """Queue a dead letter again on `provider`'s queue (its own model's), with a fresh deadline; False if it
        is not a dead letter (any more)."""
        keys = {
            "request": self.keys.request(request_id),
            "dead": self.keys.dead(),
            "queue": self.keys.queue(provider),
            "events": self.keys.events(request_id),
        }
        args = {"request_id": request_id, "deadline": deadline_at, "ttl": ttl_s, "provider": provider, "model": model}
        return bool(await self._run(load("retry_dead"), keys, args))
