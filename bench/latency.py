"""Added latency and cost of the fleet: `LLMClient.complete()` through Redis and a worker process, against
a direct SDK call from one process to the same emulator with the same transport, in one run, interleaved.
Three paths besides LiteLLM: `sdk` (the official SDK as its docs show it, `bench/sdk.py`), `adapter` (the
worker's adapter called in the load generator's process: the SDK read raw) and `fleet`.

    python -m bench latency [--providers openai,anthropic,gemini] [--loads single,hundred,thousand,tail]
                            [--rounds 3] [--litellm] [--bare]

`thousand` runs 1000 in flight per provider, all three providers at once; `tail` 1000 in flight on each
provider in turn at 5 s (about 200 requests/s, 4000 requests a round: enough for a steady p99). `--litellm` adds LiteLLM's
Router (the peer users pick instead; `pip install litellm`, a benchmark-only extra) as a further path,
in the same process as the direct calls. `--bare` adds the least a Redis queue can do (`bench/bare.py`):
the floor under the fleet's cost on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import bare
from bench.harness import Clock, Fleet, delta, fleet, median, pct, redis_counters
from bench.sdk import DirectSDK
from producer import LLMClient
from schemas.catalog import Provider, resolve_model
from schemas.request import LLMRequest
from workers.providers import build_adapter
from workers.settings import WorkerSettings

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}


@dataclass(frozen=True)
class Load:
    name: str
    in_flight: int  # per provider
    latency_ms: int
    requests: int  # per provider and round
    together: bool = False  # every provider at once, not one after the other


LOADS = {
    "single": Load("1 in flight, 50 ms provider latency", 1, 50, 200),
    "hundred": Load("100 in flight, 1 s provider latency", 100, 1000, 1500),
    "thousand": Load("1000 in flight per provider, all three at once, 10 s", 1000, 10_000, 2000, together=True),
    "tail": Load("1000 in flight, 5 s provider latency", 1000, 5000, 4000),  # ~200 requests/s: the p99 tail
}


@dataclass
class Run:
    mode: str
    provider: str
    load: str
    p50_ms: float
    p99_ms: float
    rate: float
    cpu_ms_per_req: float
    cpu_parts: dict[str, float]
    wakeups: dict[str, float]  # per request: caller, and for a queued path worker and redis
    redis_cmds_per_req: float
    redis_calls_per_req: dict[str, float]
    redis_bytes_per_req: float


async def closed_loop(
    call: Callable[[int], Awaitable[object]], in_flight: int, total: int, spread_s: float = 0.0
) -> list[float]:
    """`in_flight` callers, each sending its next request when the last one returns; latencies in ms.
    Callers start at random moments over `spread_s` (one provider latency), so that requests arrive at a
    steady rate (Little's law: rate = in flight / latency) instead of in synchronized bursts."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def caller() -> None:
        await asyncio.sleep(random.uniform(0, spread_s))
        for i in counter:
            t0 = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(caller() for _ in range(in_flight)))
    return latencies


def _request(provider: Provider, load: Load, i: int) -> LLMRequest:
    return LLMRequest(
        model=MODELS[provider],
        max_tokens=64,
        messages=[{"role": "user", "content": f"request {i} [[latency_ms={load.latency_ms}]]"}],
    )


async def measure(
    f: Fleet,
    providers: list[Provider],
    load: Load,
    client: LLMClient,
    direct_settings: WorkerSettings,
    rounds: int,
    litellm: bool,
    floor: dict[Provider, tuple[bare.BareQueue, int]],
) -> list[Run]:
    """Interleaved rounds of each path under `load`; requests go round-robin over `providers`. `floor`: the
    bare queue's caller and worker pid per provider, when it is measured too."""
    adapters = {p: build_adapter(p, direct_settings) for p in providers}
    for adapter in adapters.values():
        await adapter.open()
    sdks = {p: DirectSDK(p, direct_settings) for p in providers}

    def pick(i: int) -> tuple[Provider, LLMRequest]:
        provider = providers[i % len(providers)]
        return provider, _request(provider, load, i)

    async def sdk(i: int) -> object:
        provider, request = pick(i)
        return await sdks[provider].complete(request)

    async def adapter(i: int) -> object:
        provider, request = pick(i)
        return await adapters[provider].complete(request, resolve_model(request.model))

    calls: dict[str, Callable[[int], Awaitable[object]]] = {
        "sdk": sdk,
        "adapter": adapter,
        "fleet": lambda i: client.complete(pick(i)[1], timeout=60),
    }
    if litellm:
        from bench.peer import litellm_caller

        calls["litellm"] = litellm_caller(f.emulator_url, MODELS, pick)
    if floor:

        async def bare_queue(i: int) -> object:
            provider, request = pick(i)
            return await floor[provider][0].complete(request)

        calls["bare"] = bare_queue
    in_flight, total = load.in_flight * len(providers), load.requests * len(providers)
    for call in calls.values():  # warm every path: connections, pools, scripts
        await closed_loop(call, min(in_flight, 20), 40)
    runs = []
    name = "all three" if len(providers) > 1 else providers[0].value
    for _ in range(rounds):
        for mode, call in calls.items():
            workers = (
                [floor[p][1] for p in providers] if mode == "bare" else [pid for p in providers for pid in f.pids(p)]
            )
            latencies, wall, parts, woken, redis = await _timed(
                f, call, in_flight, total, load, workers if mode in _QUEUED else []
            )
            n = len(latencies)
            queued = {k: round(v / n, 2) for k, v in redis.items() if k not in ("cpu_s", "net_in", "net_out")}
            runs.append(
                Run(
                    mode,
                    name,
                    load.name,
                    round(pct(latencies, 50), 2),
                    round(pct(latencies, 99), 2),
                    round(n / wall, 1),
                    round(sum(parts.values()), 3),
                    {k: round(v, 3) for k, v in parts.items()},
                    {k: round(v / n, 2) for k, v in woken.items()},
                    round(sum(queued.values()), 2) if mode in _QUEUED else 0.0,
                    queued if mode in _QUEUED else {},
                    round((redis.get("net_in", 0) + redis.get("net_out", 0)) / n) if mode in _QUEUED else 0.0,
                )
            )
    for each in [*adapters.values(), *sdks.values()]:
        await each.aclose()
    return runs


_QUEUED = ("fleet", "bare")  # the paths through Redis and a worker process


async def _timed(
    f: Fleet, call: Callable[[int], Awaitable[object]], in_flight: int, total: int, load: Load, workers: list[int]
) -> tuple[list[float], float, dict[str, float], dict[str, int], dict[str, float]]:
    """One round of one path: its latencies, its wall time, its CPU ms per request (the caller's, and for a
    queued path its workers' and Redis's), the wake-ups of those processes, and Redis's counters."""
    me, server = os.getpid(), f.redis.proc.pid
    before = await redis_counters(f.redis.url)
    clock = Clock([me, *workers, server])
    latencies = await closed_loop(call, in_flight, total, load.latency_ms / 1000)
    wall, cpu = clock.stop()
    woken = clock.woken()
    redis = delta(await redis_counters(f.redis.url), before)
    n = len(latencies)
    parts = {"caller": cpu.pop(me) * 1000 / n}
    wakes = {"caller": woken.pop(me)}
    if workers:
        parts["worker"] = sum(cpu[pid] for pid in workers) * 1000 / n
        parts["redis"] = redis.get("cpu_s", 0.0) * 1000 / n
        wakes |= {"worker": sum(woken[pid] for pid in workers), "redis": woken[server]}
    return latencies, wall, parts, wakes, redis


def report(runs: list[Run], mode: str = "fleet", base: str = "sdk") -> str:
    """`mode` (the fleet, the bare queue, the adapter, or LiteLLM) next to `base` in the same rounds."""
    queued = mode in _QUEUED
    lines = [
        (
            f"| provider | load | {base} p50 / p99 ms | {mode} p50 / p99 ms | **added p50 / p99 ms** | req/s | "
            f"CPU ms/req {base} | CPU ms/req {mode}"
            + (" (caller + worker + redis) | Redis cmds/req |" if queued else " |")
            + f" wake-ups/req {base} / {mode} |"
        ),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if queued else ""),
    ]
    keys = sorted({(r.provider, r.load) for r in runs if r.mode == mode}, key=lambda k: (k[1], k[0]))
    for provider, load in keys:
        direct = [r for r in runs if (r.provider, r.load, r.mode) == (provider, load, base)]
        other = [r for r in runs if (r.provider, r.load, r.mode) == (provider, load, mode)]
        added50 = median([o.p50_ms - d.p50_ms for o, d in zip(other, direct, strict=True)])
        added99 = median([o.p99_ms - d.p99_ms for o, d in zip(other, direct, strict=True)])
        parts = {k: median([r.cpu_parts[k] for r in other]) for k in other[0].cpu_parts}
        woken = {k: median([r.wakeups[k] for r in other]) for k in other[0].wakeups}
        woken_base = sum(median([r.wakeups[k] for r in direct]) for k in direct[0].wakeups)
        row = (
            f"| {provider} | {load} | {median([r.p50_ms for r in direct]):.2f} / {median([r.p99_ms for r in direct]):.2f}"
            f" | {median([r.p50_ms for r in other]):.2f} / {median([r.p99_ms for r in other]):.2f}"
            f" | **{added50:.2f} / {added99:.2f}** | {median([r.rate for r in other]):.0f}"
            f" | {median([r.cpu_ms_per_req for r in direct]):.3f} | {sum(parts.values()):.3f}"
        )
        if queued:
            row += f" ({' + '.join(f'{v:.3f}' for v in parts.values())}) | {median([r.redis_cmds_per_req for r in other]):.1f}"
        row += f" | {woken_base:.2f} / {sum(woken.values()):.2f}"
        if len(woken) > 1:
            row += f" ({' + '.join(f'{v:.2f}' for v in woken.values())})"
        lines.append(row + " |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    providers = [Provider(p) for p in args.providers.split(",")]
    all_runs: list[Run] = []
    async with fleet() as f:
        direct_settings = WorkerSettings(**{k: v for k, v in f.worker_env().items()})  # type: ignore[arg-type]
        floor: dict[Provider, tuple[bare.BareQueue, int]] = {}
        for provider in providers:
            await f.add_workers(provider)
            if args.bare:
                queue = f"{f.settings.key_prefix}:bare:{provider.value}"
                worker = await bare.start_worker(provider, queue, {**os.environ, **f.worker_env()})
                floor[provider] = (bare.BareQueue(f.redis.url, queue), worker.pid)
                await floor[provider][0].open()
        async with LLMClient(settings=f.settings) as client:
            for load_name in args.loads.split(","):
                load = LOADS[load_name]
                for group in [providers] if load.together else [[p] for p in providers]:
                    all_runs += await measure(f, group, load, client, direct_settings, args.rounds, args.litellm, floor)
                    sys.stderr.write(f"done: {'+'.join(p.value for p in group)} {load_name}\n")
        for queue_, pid in floor.values():
            await queue_.aclose()
            os.kill(pid, signal.SIGTERM)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"latency-{int(time.time())}.json").write_text(json.dumps([asdict(r) for r in all_runs], indent=1))
    sys.stdout.write(report(all_runs) + "\n\n")
    sys.stdout.write(report(all_runs, "fleet", "adapter") + "\n\n")
    sys.stdout.write(report(all_runs, "adapter") + "\n\n")
    if args.litellm:
        sys.stdout.write(report(all_runs, "litellm") + "\n\n")
    if args.bare:
        sys.stdout.write(report(all_runs, "bare") + "\n\n")
        sys.stdout.write(report(all_runs, "fleet", "bare") + "\n\n")
    for r in all_runs:
        if r.mode == "fleet":
            sys.stdout.write(
                f"{r.provider} {r.load}: redis calls/req {r.redis_calls_per_req}, "
                f"bytes/req {r.redis_bytes_per_req:.0f}\n"
            )
            break


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench latency")
    parser.add_argument("--providers", default="openai,anthropic,gemini")
    parser.add_argument("--loads", default="single,hundred")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--litellm", action="store_true", help="add LiteLLM's Router as a further path")
    parser.add_argument("--bare", action="store_true", help="add the least a Redis queue can do (the floor)")
    asyncio.run(main_async(parser.parse_args(argv)))
