"""Capacity: the most requests/s through the fleet (one, then two worker processes for one provider) and
through direct SDK calls, against an emulator that answers at once; each process's share of a core says
what limits it.

    python -m bench capacity [--provider openai] [--in-flight 200] [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from bench.harness import Clock, delta, fleet, redis_counters
from bench.latency import MODELS, closed_loop
from bench.sdk import DirectSDK
from producer import LLMClient
from schemas.catalog import Provider, resolve_model
from schemas.request import LLMRequest
from workers.providers import build_adapter
from workers.settings import WorkerSettings


def _request(provider: Provider, i: int) -> LLMRequest:
    return LLMRequest(model=MODELS[provider], max_tokens=16, messages=[{"role": "user", "content": f"cap {i}"}])


async def run(args: argparse.Namespace) -> None:
    w = sys.stdout.write
    provider = Provider(args.provider)
    w(f"{provider.value}, emulator latency 0, {args.in_flight} in flight, {args.requests} requests per run\n\n")
    w(
        "| path | requests/s | CPU, % of a core: caller / workers / redis / emulator | machine busy (of 200 %) "
        "| CPU ms/request, the emulator's left out |\n"
    )
    w("|---|---|---|---|---|\n")
    async with fleet() as f:
        me, emulator = os.getpid(), f.emulator.proc.pid
        settings = WorkerSettings(**f.worker_env())  # type: ignore[arg-type]
        adapter = build_adapter(provider, settings)
        await adapter.open()
        model = resolve_model(MODELS[provider])
        sdk = DirectSDK(provider, settings)
        direct: dict[str, Callable[[int], Awaitable[object]]] = {
            "direct SDK calls (typed, as its docs show)": lambda i: sdk.complete(_request(provider, i)),
            "direct calls of the worker's adapter": lambda i: adapter.complete(_request(provider, i), model),
        }
        for name, call in direct.items():
            await closed_loop(call, 50, 500)  # warm
            clock = Clock([me, emulator])
            await closed_loop(call, args.in_flight, args.requests)
            wall, cpu = clock.stop()
            w(_row(name, args.requests, wall, cpu[me], [], 0.0, cpu[emulator]))
        await adapter.aclose()
        await sdk.aclose()
        async with LLMClient(settings=f.settings) as client:
            for n in (1, 2):
                await f.add_workers(provider, n - len(f.workers.get(provider, [])))
                call = lambda i: client.complete(_request(provider, i), timeout=120)
                await closed_loop(call, 50, 500)  # warm
                workers = f.pids(provider)
                before = await redis_counters(f.redis.url)
                clock = Clock([me, emulator, *workers])
                await closed_loop(call, args.in_flight, args.requests)
                wall, cpu = clock.stop()
                redis_s = delta(await redis_counters(f.redis.url), before).get("cpu_s", 0.0)
                w(
                    _row(
                        f"fleet, {n} worker{'s' if n > 1 else ''}",
                        args.requests,
                        wall,
                        cpu[me],
                        [cpu[p] for p in workers],
                        redis_s,
                        cpu[emulator],
                    )
                )


def _row(
    name: str, requests: int, wall: float, caller: float, workers: list[float], redis: float, emulator: float
) -> str:
    def share(s: float) -> str:
        return f"{100 * s / wall:.0f}"

    ours = caller + sum(workers) + redis
    busy = 100 * (ours + emulator) / wall
    worker_shares = " + ".join(share(s) for s in workers) or "–"
    return (
        f"| {name} | {requests / wall:.0f} | {share(caller)} / {worker_shares} / {share(redis)} / {share(emulator)} "
        f"| {busy:.0f} | {1000 * ours / requests:.2f} |\n"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench capacity")
    parser.add_argument("--provider", default="openai")
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--requests", type=int, default=4000)
    asyncio.run(run(parser.parse_args(argv)))
