"""Scaling: a backlog queued before any worker starts (`--requests` per provider, every provider at once),
drained by 1, 2 and 4 worker processes per provider. Per worker count: the throughput, the CPU per request of
the workers and Redis, Redis's share of a core, and how busy the machine was (ours, the emulator's, the
caller's and everything else's), so the table shows where the curve bends and whether CPU or Redis bends it.

    python -m bench scaling [--requests 2000] [--workers 1,2,4] [--latency-ms 0] [--worker-concurrency 1000]
                            [--providers openai,anthropic,gemini] [--rounds 1]

The queues are set aside (RENAME) while the workers start and handed back in one MULTI once every worker is
ready, so each drain is timed from all its workers at once, their start-up CPU left out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from bench.harness import Clock, Fleet, fleet
from bench.latency import MODELS
from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import LLMError
from schemas.request import LLMRequest

_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used since boot (all cores; idle and iowait left out)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / _TICK  # user..steal, less idle and iowait


@dataclass(frozen=True)
class Drain:
    workers: int  # per provider
    requests: int
    failed: int
    wall: float
    worker_cpu: float
    redis_cpu: float
    emulator_cpu: float
    caller_cpu: float
    machine_cpu: float

    def row(self, base: float, bound: float) -> str:
        def core(seconds: float) -> str:
            return f"{100 * seconds / self.wall:.0f}"

        rate = self.requests / self.wall
        fleet_cpu = self.worker_cpu + self.redis_cpu
        others = self.machine_cpu - fleet_cpu - self.emulator_cpu - self.caller_cpu
        return (
            f"| {self.workers} | {rate:,.0f} | {rate / base:.2f}× | {f'{bound * self.workers:,.0f}' if bound else '–'} "
            f"| {1000 * fleet_cpu / self.requests:.2f} "
            f"| {1000 * self.redis_cpu / self.requests:.3f} | {core(self.worker_cpu)} | {core(self.redis_cpu)} "
            f"| {core(self.emulator_cpu)} / {core(self.caller_cpu)} / {core(max(others, 0.0))} "
            f"| {core(self.machine_cpu)} | {self.failed} |\n"
        )


async def _queued(redis: Redis, queues: list[str]) -> int:
    async with redis.pipeline(transaction=False) as lengths:
        for q in queues:
            lengths.llen(q)
        return sum(await lengths.execute())


async def _drain(
    f: Fleet, redis: Redis, client: LLMClient, providers: list[Provider], n: int, args: argparse.Namespace
) -> Drain:
    tag = uuid.uuid4().hex[:6]
    asks = [
        LLMRequest(model=MODELS[p], max_tokens=16, messages=[{"role": "user", "content": f"{tag} {p.value} {i}"}])
        for p in providers
        for i in range(args.requests)
    ]
    calls = [asyncio.create_task(client.complete(ask, timeout=900)) for ask in asks]
    queues = [client.keys.queue(p.value) for p in providers]
    while await _queued(redis, queues) < len(asks):  # every request queued, none taken
        if ended := [c for c in calls if c.done()]:
            raise SystemExit(f"{len(ended)} requests ended before any worker started: {ended[0].exception()!r}")
        await asyncio.sleep(0.05)
    for q in queues:
        await redis.rename(q, f"{q}:aside")
    concurrency = str(args.worker_concurrency)
    await asyncio.gather(*(f.add_workers(p, n, LLM_WORKER_CONCURRENCY=concurrency) for p in providers))
    workers, others = f.pids(), [f.redis.proc.pid, f.emulator.proc.pid, os.getpid()]
    clock, machine = Clock([*workers, *others]), _machine_busy_s()
    async with redis.pipeline(transaction=True) as back:
        for q in queues:
            back.rename(f"{q}:aside", q)
        await back.execute()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    wall, cpu = clock.stop()
    machine = _machine_busy_s() - machine
    await f.stop_workers()
    redis_pid, emulator_pid, me = others
    return Drain(
        workers=n,
        requests=len(asks),
        failed=sum(isinstance(o, LLMError) for o in outcomes),
        wall=wall,
        worker_cpu=sum(cpu[p] for p in workers),
        redis_cpu=cpu[redis_pid],
        emulator_cpu=cpu[emulator_pid],
        caller_cpu=cpu[me],
        machine_cpu=machine,
    )


async def run(args: argparse.Namespace) -> None:
    w = sys.stdout.write
    providers = [Provider(p) for p in args.providers.split(",")]
    counts = [int(n) for n in args.workers.split(",")]
    w(
        f"{len(providers)} provider(s) at once, {args.requests} requests each queued before any worker starts; "
        f"emulator latency {args.latency_ms:g} ms; worker concurrency {args.worker_concurrency}; "
        f"{os.cpu_count()} CPUs (shared); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
    )
    w(
        "| workers per provider | requests/s | × the round's first | requests/s the workers' concurrency allows "
        "| CPU ms/request, workers + Redis "
        "| of which Redis | workers, % of a core (sum) | Redis, % of a core "
        "| emulator / caller / others, % of a core | machine busy (of 200 %) | failed |\n"
    )
    w("|---|---|---|---|---|---|---|---|---|---|---|\n")
    # Little's law: a worker holds at most its concurrency in flight, each for one emulator latency
    bound = len(providers) * args.worker_concurrency * 1000 / args.latency_ms if args.latency_ms else 0.0
    async with fleet("--latency-ms", str(args.latency_ms)) as f, LLMClient(settings=f.settings) as client:
        redis = Redis.from_url(f.redis.url)
        for _ in range(args.rounds):
            base = 0.0  # the round's first drain: its fewest workers
            for n in counts:
                drained = await _drain(f, redis, client, providers, n, args)
                base = base or drained.requests / drained.wall
                w(drained.row(base, bound))
                sys.stdout.flush()
        await redis.aclose()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scaling")
    parser.add_argument("--requests", type=int, default=2000, help="queued per provider")
    parser.add_argument("--workers", default="1,2,4", help="worker processes per provider, a drain each")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the emulator's delay before each answer")
    parser.add_argument("--worker-concurrency", type=int, default=1000, help="LLM_WORKER_CONCURRENCY (its default)")
    parser.add_argument("--providers", default=",".join(p.value for p in Provider))
    parser.add_argument("--rounds", type=int, default=1, help="times to go through the worker counts")
    asyncio.run(run(parser.parse_args(argv)))
