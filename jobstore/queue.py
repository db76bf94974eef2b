"""The worker's half of the job model: claim, start, finish, retry later, fall back, recover.

Push-based: a worker blocks on its provider's queue (BLMOVE into its own inbox) with `claim.lua` sent in the
same write, so Redis runs the script the moment a job arrives: it moves the job on to the worker's `claimed`
list (a crash loses nothing), checks the job's deadline and the provider's shared state (cooldown, circuit,
rate limits) and records that the provider call starts. The job and that verdict come back in one reply. One
script ends it: `finish.lua` stores the result and pushes it to every waiting client; `defer.lua` puts it aside
to be retried; `reroute.lua` moves it to a fallback model's queue. A running job is never rescanned. Per
request, two round trips: claim-and-start, finish (plus one BLMOVE for a token when the fleet-wide concurrency
limit is on). Under load, when the last claim says jobs are waiting, `claim_queued.lua` claims and starts as
many as the worker has room for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from jobstore.keys import BUCKET_S, Element, Field, Keys, latency_bin, today
from jobstore.lane import AWAY, Lane
from jobstore.outage import ride_out
from jobstore.scripts import Script, load
from jobstore.verdict import Started, verdict

__all__ = ["Circuit", "Limits", "WorkerQueue"]

T = TypeVar("T")

log = structlog.get_logger("llm_fleet.worker")

# What a worker's Redis step waits out: a restart or failover, and a full Redis (memory frees as results expire)
_WAITED_OUT: tuple[type[Exception], ...] = (*AWAY, OutOfMemoryError)


@dataclass(frozen=True, slots=True)
class Limits:
    """The provider's fleet-wide limits and circuit settings (0 turns a limit off)."""

    concurrency: int = 0
    rpm: int = 0
    tpm: int = 0
    max_reruns: int = 2  # re-runs after a worker died mid-call (0: none); then it is lost (a poison pill)
    circuit_min_requests: int = 20
    circuit_error_rate: float = 0.5
    circuit_open_s: float = 15.0


class Circuit(StrEnum):
    """Outcomes for the circuit breaker: counted on every finish, defer and reroute."""

    OK = "ok"
    ERROR = "err"
    NONE = ""


class WorkerQueue:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        provider: str,
        worker_id: str,
        *,
        result_ttl_s: int,
        stream_ttl_s: int,
        dead_letter_ttl_s: int = 7 * 86400,
        limits: Limits | None = None,
        outage_s: float = 60.0,
    ) -> None:
        self.redis = redis
        self.lane = Lane(redis)  # the hot path's commands: claims and scripts
        self.keys = keys
        self.provider = provider
        self.worker_id = worker_id
        self.result_ttl_s = result_ttl_s
        self.stream_ttl_s = stream_ttl_s
        self.dead_letter_ttl_s = dead_letter_ttl_s
        self.limits = limits or Limits()
        self.outage_s = outage_s
        self.queue_key = keys.queue(provider)
        self.claimed_key = keys.claimed(worker_id)
        self.workers_key = keys.workers(provider)
        self.held_key = keys.held(worker_id)
        self.slots_key = keys.slots(provider)
        self.inbox_key = keys.inbox(worker_id)
        self._release_flag = "1" if self.limits.concurrency else "0"
        self.backlog = 0  # jobs still queued, as the last claim saw them
        self._claim, self._claim_queued, self._start = load("claim"), load("claim_queued"), load("start")
        self._finish, self._defer, self._reroute = load("finish"), load("defer"), load("reroute")
        self._promote, self._publish = load("promote"), load("publish")
        self._heartbeat, self._release, self._size_slots = load("heartbeat"), load("release"), load("size_slots")
        # what every start step reads (`start_job.lua`), bound once: the claims add their own names
        self._start_keys = {
            "claimed": self.claimed_key,
            "held": self.held_key,
            "slots": self.slots_key,
            "cooldown": keys.cooldown(provider),
            "circuit": keys.circuit(provider),
            "rate": keys.rate(provider),
            "dropped": keys.dropped(provider),
            "policy": keys.policy(),
            "policy_models": keys.policy_models(),
            "budgets": keys.budgets(),
            "queue": self.queue_key,
        }
        self._start_args = {
            "request_prefix": keys.request(""),
            "worker": worker_id,
            "release": self._release_flag,
            "max_reruns": self.limits.max_reruns,
            "rpm": self.limits.rpm,
            "tpm": self.limits.tpm,
        }
        self._day = -1  # the day (since the epoch, UTC) the claim's names and `_spend_key` were made for
        self._spend_key = ""
        self._claim_keys: list[Any] = []
        self._claim_args: list[Any] = []

    async def _run(self, script: Script, keys: dict[str, Any], args: dict[str, Any]) -> Any:
        """Run a script, with its named keys and arguments, through a Redis restart (see `_riding_out`)."""
        ordered_keys, ordered_args = script.bind(keys, args)
        return await ride_out(
            lambda: self.lane.run(script, ordered_keys, ordered_args),
            self.outage_s,
            waits_out=_WAITED_OUT,
            bounded=False,  # a silent connection is the watchdog's (`jobstore.watchdog.watch_commands`)
        )

    async def _riding_out(self, step: Callable[[], Awaitable[T]]) -> T:
        """A Redis step, riding out a Redis restart or failover, or a full Redis, for up to `outage_s`."""
        return await ride_out(step, self.outage_s, waits_out=_WAITED_OUT, bounded=False)  # see watch_commands

    async def size_slots(self) -> int:
        """Create the fleet's concurrency tokens (once; a larger limit adds tokens). Returns the fleet's size."""
        if not self.limits.concurrency:
            return 0
        keys = {"slots": self.slots_key, "size": self.keys.size(self.provider)}
        return int(await self._run(self._size_slots, keys, {"limit": self.limits.concurrency}))

    async def acquire_slot(self, timeout_s: float) -> bool:
        """Take one of the fleet's concurrency tokens (blocking up to `timeout_s`); True when unlimited."""
        if not self.limits.concurrency:
            return True
        token = await self.lane.execute(
            "BLMOVE", self.slots_key, self.held_key, "RIGHT", "LEFT", timeout_s, blocking_s=timeout_s
        )
        return token is not None

    async def claim(self, timeout_s: float) -> list[Started]:
        """Block until a job is on the queue (or `timeout_s` passes), take it and start it, in one round trip:
        BLMOVE moves it into our inbox, and the start script sent with it moves it on to our claimed list."""
        self._spend()  # the claim's names, bound for today
        _, reply = await self.lane.run_after(
            ("BLMOVE", self.queue_key, self.inbox_key, "RIGHT", "LEFT", timeout_s),
            self._claim,
            self._claim_keys,
            self._claim_args,
            blocking_s=timeout_s,
        )
        return self._verdicts(reply)

    def _spend(self) -> str:
        """Today's spend key, and the claim's names bound anew when the day changed (the start reads that day's
        spend): once a day, not per request."""
        if (day := int(time.time() // 86400)) != self._day:
            self._day, self._spend_key = day, self.keys.spend(today())
            keys = {**self._start_keys, "spend": self._spend_key, "inbox": self.inbox_key}
            self._claim_keys, self._claim_args = self._claim.bind(keys, {**self._start_args, "again": 0})
        return self._spend_key

    async def claim_queued(self, most: int) -> list[Started]:
        """Take up to `most` queued jobs at once, oldest first, and start them, without waiting (none: the
        queue is empty)."""
        keys, args = self._claim_queued.bind(
            {**self._start_keys, "spend": self._spend()}, {**self._start_args, "again": 0, "most": most}
        )
        return self._verdicts(await self.lane.run(self._claim_queued, keys, args))

    async def start(self, claimed: Element, *, again: bool = False) -> Started:
        """Start a job already in our claimed list; `again`: this process never ran it, so if it is running
        as ours, its verdict was lost on the way (no call was made for it: not a re-run)."""
        args = {**self._start_args, "again": int(again), "element": claimed.element}
        keys = {**self._start_keys, "spend": self._spend()}
        [job] = self._verdicts(await self._run(self._start, keys, args))
        return job

    def _verdicts(self, reply: list[Any]) -> list[Started]:
        jobs, backlog = reply
        self.backlog = int(backlog)
        return [verdict(Element.parse(element, body), said) for element, said, body in jobs]

    def _settle(self, claimed: Element, health: str, uncount: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """What `settle.lua` reads, for finish, defer and reroute. `uncount`: 1 when the job's start counted a
        provider call that was never made, 2 when it also counted a re-run."""
        p, limits = self.provider, self.limits
        keys = {
            "request": self.keys.request(claimed.request_id),
            "claimed": self.claimed_key,
            "held": self.held_key,
            "slots": self.slots_key,
            "health": self.keys.health(p),
            "circuit": self.keys.circuit(p),
            "probation": self.keys.probation(p),
        }
        args = {
            "element": claimed.element,
            "release": self._release_flag,
            "health": health,
            "bucket": int(time.time() // BUCKET_S),
            "circuit_min": limits.circuit_min_requests,
            "circuit_rate": limits.circuit_error_rate,
            "open_ms": int(limits.circuit_open_s * 1000),
            "uncount": uncount,
        }
        return keys, args

    async def finish(
        self,
        claimed: Element,
        outcome: str,
        *,
        health: str = "",
        terminal_event: str | None = None,
        dead: bool = False,
        tokens: int = 0,
        uncount: int = 0,
        agent: str | None = None,
        cost_usd: float = 0.0,
        seconds: float = 0.0,
    ) -> bool:
        """Store the outcome and push it to the waiting clients (and, for a stream, its terminal event);
        a request that failed for good is kept as a dead letter (`uncount`: see `_settle`); what it cost counts
        against its source_agent's daily budget (`agent`, `cost_usd`); its latency (`seconds`), tokens, cost and
        failure in the provider's recent activity. False if it already had an outcome."""
        keys, args = self._settle(claimed, health, uncount)
        request_id = claimed.request_id
        keys.update(
            events=self.keys.events(request_id),
            dead=self.keys.dead(),
            rate=self.keys.rate(self.provider),
            spend=self._spend(),
            activity=self.keys.activity(self.provider, args["bucket"]),
        )
        args.update(
            request_id=request_id,
            outcome=outcome,
            now=time.time(),
            ttl=self.result_ttl_s,
            terminal=terminal_event or "",
            tokens_channel=self.keys.tokens(request_id),
            stream_ttl=self.stream_ttl_s,
            dead=int(dead),
            dead_ttl=self.dead_letter_ttl_s,
            tokens=tokens,
            tpm=self.limits.tpm,
            agent=agent or "",
            cost=cost_usd,
            took=f"l{latency_bin(seconds)}",
        )
        return self._settled(await self._run(self._finish, keys, args))

    async def defer(
        self, claimed: Element, run_at: float, *, health: str, cooldown_s: float = 0.0, retried: bool = True
    ) -> bool:
        """Put the job aside until `run_at` (without holding a concurrency slot); a `cooldown_s` pauses the
        whole provider, for every worker."""
        keys, args = self._settle(claimed, health, 0)
        keys.update(delayed=self.keys.delayed(self.provider), cooldown=self.keys.cooldown(self.provider))
        args.update(run_at=run_at, cooldown_ms=int(cooldown_s * 1000), retried=int(retried))
        return self._settled(await self._run(self._defer, keys, args))

    async def reroute(
        self, claimed: Element, route: int, provider: str, model: str, *, health: str, uncount: int = 0
    ) -> bool:
        """Move the job to a fallback model's provider queue (same request_id, same trace); `model`: the
        catalog id of the fallback (`uncount`: see `_settle`)."""
        keys, args = self._settle(claimed, health, uncount)
        keys.update(fallback_queue=self.keys.queue(provider))
        args.update(request_id=claimed.request_id, route=route, provider=provider, model=model)
        return self._settled(await self._run(self._reroute, keys, args))

    def _settled(self, reply: int) -> bool:
        """True when the job was changed; says so when this outcome opened the provider's circuit."""
        if reply & 2:
            log.warning("circuit_opened", provider=self.provider, open_s=self.limits.circuit_open_s)
        return bool(reply & 1)

    async def promote(self) -> float | None:
        """Queue the retries that are due; return when the next one is (unix seconds), if any."""
        keys = {"delayed": self.keys.delayed(self.provider), "queue": self.queue_key}
        next_at = float(await self._run(self._promote, keys, {"now": time.time()}))
        return None if next_at < 0 else next_at

    async def publish(self, events: list[tuple[str, int, str]]) -> None:
        """Stream events `(request_id, seq, event)`: each kept (XADD, capped), then sent live (PUBLISH); one
        script for all, through a Redis restart (sent twice, an event is kept twice: readers drop the copy
        by its sequence number). Per token: the lists are built once, no copy."""
        sent: list[str | int] = []
        ttl = self.stream_ttl_s
        for request_id, seq, event in events:
            sent += [self.keys.tokens(request_id), event, ttl if seq == 1 else 0]
        await self._run(self._publish, {"streams": [self.keys.events(r) for r, _, _ in events]}, {"events": sent})

    async def last_seq(self, claimed: Element) -> int:
        """The sequence number of a stream's last kept event (0: none yet)."""
        key = self.keys.events(claimed.request_id)
        last = await self._riding_out(lambda: self.redis.xrevrange(key, count=1))
        return int(json.loads(last[0][1][b"e"])["seq"]) if last else 0

    async def heartbeat(self, dead_after_s: float) -> tuple[int, list[str], int]:
        """Say this worker is alive, queue the retries that are due, give back tokens held for nothing;
        return how many jobs our claimed list holds, the ids of workers presumed dead, and the tokens given
        back."""
        keys = {
            "workers": self.workers_key,
            "delayed": self.keys.delayed(self.provider),
            "queue": self.queue_key,
            "claimed": self.claimed_key,
            "held": self.held_key,
            "slots": self.slots_key,
            "inbox": self.inbox_key,
        }
        args = {"worker": self.worker_id, "now": time.time(), "dead_after": dead_after_s}
        claimed, dead, returned = await self._run(self._heartbeat, keys, args)
        return int(claimed), [d.decode() for d in dead if d.decode() != self.worker_id], int(returned)

    async def claimed(self) -> list[Element]:
        """Every job in our claimed list (to find one a lost reply left there)."""
        elements: list[bytes] = await self._riding_out(lambda: self.redis.lrange(self.claimed_key, 0, -1))  # type: ignore[arg-type,return-value]
        return [Element.parse(e) for e in elements]

    async def cancelled(self, request_ids: list[str]) -> list[str]:
        """Those of `request_ids` a caller has asked to stop (the flag the cancel script sets with its
        broadcast): what a worker that could not hear the broadcast missed."""
        if not request_ids:
            return []
        asks = [("HEXISTS", self.keys.request(request_id), Field.CANCEL) for request_id in request_ids]
        flags = await self._riding_out(lambda: self.lane.pipeline(*asks))
        return [request_id for request_id, flag in zip(request_ids, flags, strict=True) if flag == 1]

    async def release(self, worker_id: str) -> int:
        """Requeue every job `worker_id` holds and return its tokens (a dead worker's, or ours at shutdown)."""
        keys = {
            "claimed": self.keys.claimed(worker_id),
            "queue": self.queue_key,
            "workers": self.workers_key,
            "held": self.keys.held(worker_id),
            "slots": self.slots_key,
            "inbox": self.keys.inbox(worker_id),
        }
        return int(await self._run(self._release, keys, {"worker": worker_id}))
