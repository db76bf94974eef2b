"""The fleet as Redis holds it now, for the people and tools that watch it (`llm-fleet health`, `top`, the
exporter): per queue (each provider's, each self-hosted endpoint's) its depth, retries put aside, the oldest
waiting job's age, live workers, concurrency tokens in flight against the fleet-wide limit, circuit, cooldown,
dropped elements and recent activity (requests, errors, latency, tokens, cost); fleet-wide the dead letters,
the allowed-models policy's violations and version, budgets and today's spend, and Redis's memory.

One read is one pipeline, one round trip: `fleet.lua` per queue (a fixed number of O(1) commands, on Redis's
clock) and seven commands for the rest. The recent activity is what the workers' finish script counts per 10 s
bucket in the provider's activity hash of that bucket; it is read over the last two buckets and the current one.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from jobstore.keys import BUCKET_S, LATENCY_BOUNDS, Keys
from jobstore.lane import Lane
from jobstore.scripts import load
from schemas.catalog import Provider, catalog

__all__ = ["CIRCUIT_STATES", "Activity", "FleetReader", "FleetState", "QueueState", "fleet_queues"]

CIRCUIT_STATES = ("closed", "half-open", "open")
"""A circuit's states, in the order the exporter numbers them (0, 1, 2)."""


def fleet_queues() -> list[str]:
    """Every queue the catalog names: the providers', then each self-hosted endpoint's (by name)."""
    endpoints = {m.endpoint.name for m in catalog().models if m.endpoint is not None}
    return [p.value for p in Provider] + sorted(endpoints - {p.value for p in Provider})


@dataclass(frozen=True, slots=True)
class Activity:
    """A queue's requests finished over the last `window_s` seconds: counted per bin of latency
    (`LATENCY_BOUNDS`, and one past its last), failed, their tokens and cost; and the circuit's outcomes
    (provider calls that answered, `ok`, or failed retryably, `err`) over the same buckets."""

    window_s: float = float(BUCKET_S)
    latency: tuple[int, ...] = (0,) * (len(LATENCY_BOUNDS) + 1)
    errors: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    ok: int = 0
    err: int = 0

    @property
    def requests(self) -> int:
        return sum(self.latency)

    def per_s(self, count: float) -> float:
        """`count` over the window, per second."""
        return count / self.window_s

    def quantile(self, q: float) -> float | None:
        """The latency under which a share `q` (0 < q <= 1) of the requests finished, interpolated within its
        bin, as Prometheus's `histogram_quantile` does (past the last bound: that bound); None: no request."""
        total = self.requests
        if not total:
            return None
        rank = q * total
        cumulative = list(itertools.accumulate(self.latency))
        i = bisect.bisect_left(cumulative, rank)
        if i >= len(LATENCY_BOUNDS):
            return LATENCY_BOUNDS[-1]
        low, below = (LATENCY_BOUNDS[i - 1], cumulative[i - 1]) if i else (0.0, 0)
        return low + (LATENCY_BOUNDS[i] - low) * (rank - below) / self.latency[i]

    @classmethod
    def parse(cls, health: list[bytes], recent: list[list[bytes]], now: float) -> Activity:
        """From the health hash's fields and values (`HGETALL`'s flat reply) and the activity hashes of the last
        three buckets (the current one last), at `now` (unix seconds, the clock the workers count buckets by)."""
        bucket = int(now // BUCKET_S)
        ok = err = 0
        for name, value in _pairs(health):
            outcome, _, at = name.partition(b":")
            if int(at) >= bucket - 2:  # the buckets the circuit reads
                ok += int(value) if outcome == b"ok" else 0
                err += int(value) if outcome == b"err" else 0
        latency = [0] * (len(LATENCY_BOUNDS) + 1)
        counts = {b"fail": 0, b"tok": 0, b"nusd": 0}
        for flat in recent:
            for name, value in _pairs(flat):
                if name[:1] == b"l":
                    latency[int(name[1:])] += int(value)
                else:
                    counts[name] = counts.get(name, 0) + int(value)
        return cls(
            window_s=2 * BUCKET_S + now - bucket * BUCKET_S,
            latency=tuple(latency),
            errors=counts[b"fail"],
            tokens=counts[b"tok"],
            cost_usd=counts[b"nusd"] / 1e9,
            ok=ok,
            err=err,
        )


@dataclass(frozen=True, slots=True)
class QueueState:
    """One queue now. `limit`: the fleet-wide concurrency limit (0: none); `inflight`: its tokens taken, which
    are the calls in flight plus one held by each idle worker for its next claim (exact per worker would be
    O(workers))."""

    name: str
    depth: int = 0
    retrying: int = 0
    oldest_age_s: float = 0.0
    workers: int = 0
    inflight: int = 0
    limit: int = 0
    circuit: str = "closed"
    open_for_s: float = 0.0
    cooldown_s: float = 0.0
    dropped: int = 0
    activity: Activity = field(default_factory=Activity)


@dataclass(frozen=True, slots=True)
class FleetState:
    """The whole fleet now (`at`: Redis's clock, unix seconds). `violations`: (model, source_agent) → requests
    the policy refused; `budgets`, `spent`: per source_agent, USD, today (UTC); `maxmemory` 0: no limit; both
    memory figures None where Redis refuses INFO (an ACL without it)."""

    at: float
    queues: tuple[QueueState, ...]
    dead_letters: int = 0
    violations: dict[tuple[str, str], int] = field(default_factory=dict)
    policy_version: int = 0
    budgets: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)
    memory_used: int | None = None
    maxmemory: int | None = None


class FleetReader:
    """Reads the fleet, over a lane of its own (hold one reader per client, not one per read)."""

    def __init__(self, redis: Redis, keys: Keys, *, dead_after_s: float) -> None:
        self.lane = Lane(redis)
        self.keys = keys
        self.dead_after_s = dead_after_s
        self._script = load("fleet")

    def _queue_command(self, name: str, bucket: int) -> tuple[Any, ...]:
        k = self.keys
        keys, args = self._script.bind(
            {
                "queue": k.queue(name),
                "delayed": k.delayed(name),
                "workers": k.workers(name),
                "slots": k.slots(name),
                "size": k.size(name),
                "circuit": k.circuit(name),
                "probation": k.probation(name),
                "cooldown": k.cooldown(name),
                "dropped": k.dropped(name),
                "health": k.health(name),
                "recent": [k.activity(name, b) for b in range(bucket - 2, bucket + 1)],
            },
            {"request_prefix": k.request(""), "dead_after": self.dead_after_s},
        )
        return ("EVALSHA", self._script.sha, len(keys), *keys, *args)

    async def read(self, queues: Sequence[str]) -> FleetState:
        """The state of `queues` (e.g. `fleet_queues()`) and of the fleet, in one round trip."""
        k = self.keys
        now = time.time()  # the activity's buckets are the workers' clocks', as this one
        commands = [self._queue_command(name, int(now // BUCKET_S)) for name in queues]
        commands += [
            ("TIME",),
            ("ZCARD", k.dead()),
            ("HGETALL", k.violations()),
            ("HGET", k.policy(), "version"),
            ("HGETALL", k.budgets()),
            ("HGETALL", k.spend()),
            ("INFO", "memory"),
        ]
        replies = await self.lane.pipeline(*commands)
        if any(isinstance(r, NoScriptError) for r in replies):  # Redis restarted: its script cache is empty
            await self.lane.execute("SCRIPT", "LOAD", self._script.source)
            replies = await self.lane.pipeline(*commands)
        for reply in replies[:-1]:  # INFO may be refused (an ACL): the rest still stands
            if isinstance(reply, ResponseError):
                raise reply
        states = [_queue_state(name, reply, now) for name, reply in zip(queues, replies, strict=False)]
        (seconds, micros), dead, violations, version, budgets, spent, memory = replies[len(queues) :]
        info = {} if isinstance(memory, ResponseError) else _info(memory)
        return FleetState(
            at=int(seconds) + int(micros) / 1e6,
            queues=tuple(states),
            dead_letters=dead,
            violations={_violation(key): int(count) for key, count in _pairs(violations)},
            policy_version=int(version or 0),
            budgets={agent.decode(): float(usd) for agent, usd in _pairs(budgets)},
            spent={agent.decode(): float(usd) for agent, usd in _pairs(spent)},
            memory_used=int(info["used_memory"]) if "used_memory" in info else None,
            maxmemory=int(info["maxmemory"]) if "maxmemory" in info else None,
        )


def _pairs(flat: list[bytes]) -> zip[tuple[bytes, bytes]]:
    """A hash's fields and values, from HGETALL's flat reply."""
    return zip(flat[::2], flat[1::2], strict=True)


def _info(reply: bytes) -> dict[str, str]:
    """INFO's `name:value` lines."""
    return dict(line.partition(":")[::2] for line in reply.decode().splitlines() if ":" in line)


def _violation(key: bytes) -> tuple[str, str]:
    """`{model} {source_agent}`, as the policy counts a refusal."""
    model, _, agent = key.decode().partition(" ")
    return model, agent


def _queue_state(name: str, reply: list[Any], now: float) -> QueueState:
    depth, retrying, age, workers, size, free, circuit_ms, probation, cooldown_ms, dropped, health, recent = reply
    circuit = 2 if circuit_ms > 0 else 1 if probation else 0
    return QueueState(
        name=name,
        depth=depth,
        retrying=retrying,
        oldest_age_s=float(age),
        workers=workers,
        inflight=max(size - free, 0),
        limit=size,
        circuit=CIRCUIT_STATES[circuit],
        open_for_s=max(circuit_ms, 0) / 1000,
        cooldown_s=max(cooldown_ms, 0) / 1000,
        dropped=dropped,
        activity=Activity.parse(health, recent, now),
    )
