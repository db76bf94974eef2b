"""A worker's footprint: RSS with 1000 requests in flight, an idle worker's CPU and Redis commands per
second, and the time from starting a worker to its first finished job.

    python -m bench footprint [--provider openai] [--in-flight 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.harness import cpu_seconds, delta, fleet, redis_counters, rss_mb
from launcher.processes import start_worker
from producer import LLMClient
from schemas.catalog import Provider
from schemas.request import LLMRequest

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}


async def run(provider: Provider, in_flight: int) -> None:
    w = sys.stdout.write
    # time to first job: the request is waiting when the worker starts
    async with fleet() as f, LLMClient(settings=f.settings) as client:
        request = LLMRequest(model=MODELS[provider], messages=[{"role": "user", "content": "first"}])
        await client.submit(request)
        t0 = time.perf_counter()
        worker = await start_worker(provider, f.worker_env())
        f.workers[provider] = [worker]
        ready = time.perf_counter() - t0
        await client.result(request.request_id, timeout=30)
        first = time.perf_counter() - t0
        w(f"start to ready: {ready:.2f} s; start to first finished job: {first:.2f} s\n")
        await asyncio.sleep(3)
        pid = worker.proc.pid
        c0, r0, t = cpu_seconds(pid), await redis_counters(f.redis.url), time.perf_counter()
        await asyncio.sleep(20)
        idle_s = time.perf_counter() - t
        counts = delta(await redis_counters(f.redis.url), r0)
        commands = sum(v for k, v in counts.items() if k not in ("cpu_s", "net_in", "net_out", "info"))
        top_level = sum(counts.get(k, 0) for k in ("blmove", "evalsha", "psetex", "zcard", "publish"))
        w(
            f"idle worker: {100 * (cpu_seconds(pid) - c0) / idle_s:.2f} % of a core; Redis commands/s: "
            f"{top_level / idle_s:.2f} sent ({commands / idle_s:.2f} counting those run inside scripts)\n"
        )
        rss_idle = rss_mb(pid)
        prompt = "hold [[latency_ms=10000]]"
        waiting = [
            asyncio.create_task(
                client.complete(
                    LLMRequest(model=MODELS[provider], messages=[{"role": "user", "content": f"{i} {prompt}"}]),
                    timeout=60,
                )
            )
            for i in range(in_flight)
        ]
        await asyncio.sleep(6)
        stats = await _stats(f.emulator_url)
        w(
            f"RSS idle {rss_idle:.0f} MB; with {stats['open'].get(provider.value, 0)} calls in flight "
            f"{rss_mb(pid):.0f} MB\n"
        )
        await asyncio.gather(*waiting)


async def _stats(url: str) -> dict[str, dict[str, int]]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{url}/_emulator/stats") as resp:
        return await resp.json()  # type: ignore[no-any-return]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench footprint")
    parser.add_argument("--provider", default="openai")
    parser.add_argument("--in-flight", type=int, default=1000)
    args = parser.parse_args(argv)
    asyncio.run(run(Provider(args.provider), args.in_flight))
