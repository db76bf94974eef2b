"""The soak: a steady request rate through the fleet for a long stretch (20 minutes by default), one worker
per provider, requests spread over the three; each minute's latency and the worker's and caller's RSS.

    python -m bench soak [--minutes 20] [--rate 100] [--latency-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from bench.harness import cpu_seconds, fleet, pct, rss_mb
from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import LLMError
from schemas.request import LLMRequest

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}


async def run(args: argparse.Namespace) -> None:
    w = sys.stdout.write
    async with fleet() as f:
        for provider in Provider:
            await f.add_workers(provider)
        pids = {"caller": os.getpid(), **{p.value: f.pids(p)[0] for p in Provider}}
        async with LLMClient(settings=f.settings) as client:
            minute: list[float] = []
            failures = 0

            async def one(i: int) -> None:
                nonlocal failures
                provider = list(Provider)[i % 3]
                request = LLMRequest(
                    model=MODELS[provider],
                    max_tokens=64,
                    messages=[{"role": "user", "content": f"soak {i} [[latency_ms={args.latency_ms}]]"}],
                )
                t0 = time.perf_counter()
                try:
                    await client.complete(request, timeout=60)
                except LLMError:
                    failures += 1
                    return
                minute.append((time.perf_counter() - t0) * 1000)

            w(f"{args.rate} requests/s for {args.minutes} min, {args.latency_ms} ms provider latency\n")
            w(
                "| minute | requests | failed | p50 ms | p99 ms | CPU ms/req (caller + 3 workers) | RSS MB caller | RSS MB workers |\n"
            )
            w("|---|---|---|---|---|---|---|---|\n")
            running: set[asyncio.Task[None]] = set()
            start = time.perf_counter()
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            i = 0
            for m in range(1, args.minutes + 1):
                while (now := time.perf_counter() - start) < m * 60:
                    due = int(now * args.rate)
                    while i < due:  # an open loop: arrivals keep their pace whatever the latency
                        task = asyncio.create_task(one(i))
                        running.add(task)
                        task.add_done_callback(running.discard)
                        i += 1
                    await asyncio.sleep(0.005)
                done, minute[:] = list(minute), []
                cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
                spent = sum(cpu.values()) - sum(cpu0.values())
                cpu0 = cpu
                workers_rss = " / ".join(f"{rss_mb(pids[p.value]):.0f}" for p in Provider)
                w(
                    f"| {m} | {len(done)} | {failures} | {pct(done, 50):.1f} | {pct(done, 99):.1f} | "
                    f"{1000 * spent / max(1, len(done)):.2f} | {rss_mb(pids['caller']):.0f} | {workers_rss} |\n"
                )
                sys.stdout.flush()
            await asyncio.gather(*running)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--latency-ms", type=int, default=1000)
    asyncio.run(run(parser.parse_args(argv)))
