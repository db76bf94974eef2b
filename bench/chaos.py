"""The chaos run: thousands of requests over three providers while faults are injected, a worker is
SIGKILLed and Redis is killed and restarted (with AOF), then an account of every request.

    python -m bench chaos [--requests 2000] [--limit 20]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from jobstore import Keys
from launcher.processes import start_emulator, start_worker, worker_env
from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import LLMError
from schemas.request import LLMRequest
from schemas.settings import FleetSettings
from tests.servers import RedisServer

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}
# fault tag -> share of requests; each clears after one failure (fail_times=1), except the mid-stream cut,
# which cannot be retried once tokens went out and must end as a typed error
FAULTS = {
    "[[fault=429]] [[retry_after=1]]": 0.08,
    "[[fault=500]]": 0.08,
    "[[fault=529]]": 0.04,
    "[[fault=cut]]": 0.04,
    "[[fault=malformed]]": 0.04,
    "[[fault=stall]]": 0.02,
}
STREAM_CUT = 0.04
STREAMS = 0.10


def plan(i: int, rng: random.Random) -> tuple[LLMRequest, str]:
    provider = list(Provider)[i % 3]
    roll = rng.random()
    tag, kind = "", "plain"
    for fault, share in FAULTS.items():
        if roll < share:
            tag, kind = f"{fault} [[fail_times=1]]", fault.split("=")[1].split("]")[0]
            break
        roll -= share
    stream = rng.random() < STREAMS + STREAM_CUT
    if stream and rng.random() < STREAM_CUT / (STREAMS + STREAM_CUT):
        tag, kind = "[[fault=cut]]", "stream-cut"
    request = LLMRequest(
        model=MODELS[provider],
        stream=stream,
        max_tokens=64,
        messages=[{"role": "user", "content": f"chaos {i} {tag} [[latency_ms=200]] [[tokens=8]]"}],
    )
    return request, kind


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    server = RedisServer(Path(tempfile.mkdtemp(prefix="chaos-redis-")))
    server.start()
    emulator, url = await start_emulator()
    settings = FleetSettings(REDIS_URL=server.url, LLM_KEY_PREFIX="chaos", LLM_REQUEST_TIMEOUT=60)
    env = worker_env(
        server.url,
        url,
        LLM_KEY_PREFIX="chaos",
        LLM_PROVIDER_CONCURRENCY=str(args.limit),
        LLM_HEARTBEAT_INTERVAL="1",
        LLM_PROVIDER_TIMEOUT="3",
        LLM_RETRY_BASE="0.2",
    )
    workers = {p: [await start_worker(p, env), await start_worker(p, env)] for p in Provider}
    outcomes: dict[str, str] = {}
    kinds: dict[str, str] = {}
    t0 = time.monotonic()
    try:
        async with LLMClient(settings=settings) as client:
            gate = asyncio.Semaphore(args.in_flight)

            async def one(i: int) -> None:
                request, kind = plan(i, rng)
                kinds[request.request_id] = kind
                async with gate:
                    try:
                        if request.stream:
                            events = [e async for e in client.events(request, timeout=60)]
                            last = events[-1]
                            outcome = (
                                "ok" if last.type == "done" else f"{last.type}:{getattr(last, 'error', {}).get('type')}"
                            )
                        else:
                            await client.complete(request, timeout=60)
                            outcome = "ok"
                    except LLMError as exc:
                        outcome = type(exc).__name__
                    except Exception as exc:  # noqa: BLE001 (anything untyped is a finding)
                        outcome = f"UNTYPED {type(exc).__name__}: {exc}"
                    if request.request_id in outcomes:
                        outcome = "DUPLICATE OUTCOME"
                    outcomes[request.request_id] = outcome

            async def chaos() -> None:
                await asyncio.sleep(3)
                victim = workers[Provider.ANTHROPIC][0]
                victim.proc.send_signal(signal.SIGKILL)
                sys.stderr.write(f"t={time.monotonic() - t0:.1f}s SIGKILL anthropic worker {victim.proc.pid}\n")
                await asyncio.sleep(3)
                server.kill()
                sys.stderr.write(f"t={time.monotonic() - t0:.1f}s Redis killed at {time.time():.3f}\n")
                await asyncio.sleep(1)
                server.start()
                sys.stderr.write(f"t={time.monotonic() - t0:.1f}s Redis restarted (AOF) at {time.time():.3f}\n")

            await asyncio.gather(chaos(), *(one(i) for i in range(args.requests)))
        elapsed = time.monotonic() - t0
        async with aiohttp.ClientSession() as session, session.get(f"{url}/_emulator/stats") as resp:
            stats = await resp.json()
        redis = Redis.from_url(server.url)
        reruns = retries = 0
        calls = collections.Counter()
        for request_id in outcomes:
            job = await redis.hmget(Keys(settings.key_prefix).request(request_id), ["reruns", "attempts"])
            reruns += int(job[0] or 0)
            calls[int(job[1] or 0)] += 1
            retries += max(0, int(job[1] or 0) - 1)
        unfinished = {
            r: await redis.hgetall(Keys(settings.key_prefix).request(r))
            for r, o in outcomes.items()
            if o == "ResultTimeoutError"
        }
        for r, job in unfinished.items():  # a stream's kept events, by sequence number
            kept = await redis.xrange(Keys(settings.key_prefix).events(r))
            job[b"kept_seqs"] = str([json.loads(f[b"e"])["seq"] for _, f in kept]).encode()
        await redis.aclose()
        lines = [line for procs in workers.values() for p in procs for line in p.lines]
        recovered = [line for line in lines if "worker_presumed_dead" in line]
        rerun_lines = sum("request_rerun" in line for line in lines)
    finally:
        for procs in workers.values():
            for p in procs:
                await p.stop(signal.SIGKILL)
        await emulator.stop()
        server.stop()
    report(args, outcomes, kinds, stats, calls, (reruns, rerun_lines), recovered, unfinished, elapsed)


def report(
    args: argparse.Namespace,
    outcomes: dict[str, str],
    kinds: dict[str, str],
    stats: dict[str, Any],
    calls: collections.Counter[int],
    reruns: tuple[int, int],
    recovered: list[str],
    unfinished: dict[str, dict[bytes, bytes]],
    elapsed: float,
) -> None:
    by_outcome = collections.Counter(outcomes.values())
    by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for request_id, outcome in outcomes.items():
        by_kind[kinds[request_id]][outcome] += 1
    provider_calls = stats["requests"]["total"]
    w = sys.stdout.write
    w(f"requests: {args.requests}, ended: {len(outcomes)}, lost: {args.requests - len(outcomes)}, in {elapsed:.1f} s\n")
    w(f"outcomes: {dict(by_outcome)}\n")
    w("by injected fault:\n")
    for kind, counter in sorted(by_kind.items()):
        w(f"  {kind:<12} {dict(counter)}\n")
    w(
        f"provider calls: {provider_calls} for {len(outcomes)} requests; calls per request (the job's attempts): "
        f"{dict(sorted(calls.items()))}; re-runs after the SIGKILL: {reruns[0]} recorded, {reruns[1]} logged; calls the client closed before "
        f"the answer (stalls timed out, or cancelled): "
        f"{stats['disconnects']['total']}\n"
    )
    w(f"dead worker detected and its jobs requeued: {recovered}\n")
    for request_id, job in unfinished.items():
        fields = {k.decode(): v.decode()[:200] for k, v in job.items() if k not in (b"body", b"element", b"result")}
        w(f"gave up waiting on {request_id}: {fields}\n")
    w(
        f"max concurrent calls seen by the emulator per provider (limit {args.limit}): "
        f"{ {p.value: stats['max_open'].get(p.value, 0) for p in Provider} }\n"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench chaos")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=20, help="fleet-wide concurrency per provider")
    parser.add_argument("--in-flight", type=int, default=300)
    parser.add_argument("--without", action="append", default=[], help="leave a fault out (e.g. stall)")
    args = parser.parse_args(argv)
    for fault in args.without:
        FAULTS.update({tag: 0.0 for tag in FAULTS if f"fault={fault}]" in tag})
    asyncio.run(run(args))
