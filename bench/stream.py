"""Streaming through the fleet against direct SDK streaming, one provider at a time, in one run:
time to first token added (at 1 and 20 concurrent streams), then 100 concurrent streams at 50 tokens/s
each: every token delivered once and in order, and what the relay costs per token, with and without
coalescing.

    python -m bench stream [--providers openai,anthropic,gemini] [--rounds 3]

`--cases tools` streams tool calls instead of text (the relay runs only): each stream one call whose arguments
come in ~`--tokens` pieces (the emulator's 8-character fragments), every piece a `tool_call` event, the
assembled arguments checked against the done event's call; the SDK reads the same stream (its typed chunks'
argument fragments) for the baseline. `--cases text,tools` runs the relay for both, interleaved per provider
(and no TTFT runs): a tool-call piece's cost beside a text token's, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import Clock, Fleet, delta, fleet, median, pct, redis_counters
from bench.sdk import DirectSDK
from producer import LLMClient
from schemas.agents import Tool
from schemas.catalog import Provider, resolve_model
from schemas.request import LLMRequest
from schemas.response import LLMResponse
from workers.providers import build_adapter
from workers.settings import WorkerSettings

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}


@dataclass
class Relay:
    provider: str
    coalesce: bool
    streams: int
    tokens: int
    lost_or_disordered: int
    events: int
    cpu_us_per_token: dict[str, float]
    redis_cmds_per_token: float
    redis_bytes_per_token: float


def _request(provider: Provider, text: str, tools: list[Tool] | None = None) -> LLMRequest:
    return LLMRequest(
        model=MODELS[provider],
        messages=[{"role": "user", "content": text}],
        stream=True,
        max_tokens=500,
        tools=tools,
    )


def _big_tool(tokens: int) -> Tool:
    """A tool whose example arguments come in about `tokens` 8-character pieces: `"p000": "p000", ` is 14."""
    names = [f"p{i:03d}" for i in range(max(1, tokens * 8 // 14))]
    return Tool(name="big", parameters={"type": "object", "properties": {n: {"type": "string"} for n in names}})


@dataclass(frozen=True)
class Case:
    """What the relay runs stream: text tokens, or the pieces of one tool call."""

    prompt: str
    tools: list[Tool] | None

    def request(self, provider: Provider) -> LLMRequest:
        return _request(provider, self.prompt, self.tools)

    def check(self, events: list[Any]) -> tuple[bool, int]:
        """Whether the stream came whole and in order, and its tokens (pieces)."""
        *pieces, done = events
        if done.type != "done" or [e.seq for e in events] != list(range(1, len(events) + 1)):
            return False, 0
        response = done.response
        if self.tools is None:
            whole = "".join(e.text for e in pieces if e.type == "delta") == response.content
        else:
            arguments = "".join(e.arguments for e in pieces if e.type == "tool_call")
            whole = len(response.tool_calls) == 1 and arguments == response.tool_calls[0].arguments
        return whole, response.usage.completion_tokens


def _case(kind: str, tokens: int) -> Case:
    if kind == "tools":
        return Case("relay [[tool=big]] [[tokens_per_s=50]]", [_big_tool(tokens)])
    if kind == "text":
        return Case(f"relay [[tokens={tokens}]] [[tokens_per_s=50]]", None)
    raise SystemExit(f"--cases: {kind!r} is not text or tools")


async def closed_loop(
    run: Callable[[], Awaitable[float]], concurrency: int, total: int, spread_s: float
) -> list[float]:
    """`concurrency` readers, each opening its next stream when the last ends, starting at random moments
    over `spread_s` (one stream's length) so that streams begin at a steady rate, not in bursts."""
    samples: list[float] = []
    left = iter(range(total))

    async def reader() -> None:
        await asyncio.sleep(random.uniform(0, spread_s))
        for _ in left:
            samples.append(await run())

    await asyncio.gather(*(reader() for _ in range(concurrency)))
    return samples


async def _first_token(items: AsyncIterator[Any], is_token: Callable[[Any], bool]) -> float:
    """Milliseconds from now to the first token of `items`, which is read to its end."""
    t0 = time.perf_counter()
    first = None
    async for item in items:
        if first is None and is_token(item):
            first = time.perf_counter() - t0
    return (first or 0.0) * 1000


async def ttft(f: Fleet, provider: Provider, concurrency: int, rounds: int, per_run: int) -> dict[str, list[float]]:
    """First-token latency, fleet and direct, interleaved; the emulator answers after 20 ms. With 20 concurrent
    streams each streams 20 tokens at 50/s, ~50 streams/s in all: within what this machine carries."""
    settings = WorkerSettings(**f.worker_env())  # type: ignore[arg-type]
    adapter, sdk = build_adapter(provider, settings), DirectSDK(provider, settings)
    await adapter.open()
    model = resolve_model(MODELS[provider])
    # one stream: short; 20 streams: 20 tokens at 50/s (~0.4 s each, ~50 streams/s in all)
    prompt = "ttft [[latency_ms=20]] " + ("[[tokens=5]]" if concurrency == 1 else "[[tokens=20]] [[tokens_per_s=50]]")

    def by_adapter() -> Awaitable[float]:
        return _first_token(adapter.stream(_request(provider, prompt), model), lambda item: isinstance(item, str))

    def plain_sdk() -> Awaitable[float]:
        return _first_token(sdk.stream(_request(provider, prompt)), lambda _: True)

    def through_fleet(client: LLMClient) -> Awaitable[float]:
        return _first_token(client.events(_request(provider, prompt), timeout=30), lambda e: e.type == "delta")

    spread_s = 0.0 if concurrency == 1 else 0.42
    results: dict[str, list[float]] = {f"{m}_{q}": [] for m in ("sdk", "adapter", "fleet") for q in ("p50", "p99")}
    async with LLMClient(settings=f.settings) as client:
        runners = {"sdk": plain_sdk, "adapter": by_adapter, "fleet": lambda: through_fleet(client)}
        for run in runners.values():  # warm up
            await closed_loop(run, concurrency, 2 * concurrency, spread_s)
        for _ in range(rounds):
            for mode, run in runners.items():
                samples = await closed_loop(run, concurrency, per_run, spread_s)
                results[f"{mode}_p50"].append(pct(samples, 50))
                results[f"{mode}_p99"].append(pct(samples, 99))
    await adapter.aclose()
    await sdk.aclose()
    return results


async def relay(f: Fleet, provider: Provider, coalesce: bool, streams: int, case: Case) -> Relay:
    """`streams` concurrent streams of `case` at 50 tokens/s; checks every token, counts the cost."""
    await f.stop_workers()
    [worker] = await f.add_workers(provider, LLM_STREAM_COALESCE=str(coalesce).lower())
    me = os.getpid()
    async with LLMClient(settings=f.settings) as client:

        async def one() -> tuple[int, int, int]:
            events = [e async for e in client.events(case.request(provider), timeout=60)]
            ok, tokens = case.check(events)
            return (0 if ok else 1), len(events), tokens

        await asyncio.gather(*(one() for _ in range(10)))  # warm up
        before = await redis_counters(f.redis.url)
        clock = Clock([me, worker.proc.pid])
        results = await asyncio.gather(*(one() for _ in range(streams)))
        _, cpu = clock.stop()
        redis = delta(await redis_counters(f.redis.url), before)
    total = sum(r[2] for r in results)
    cmds = sum(v for k, v in redis.items() if k not in ("cpu_s", "net_in", "net_out"))
    return Relay(
        provider.value,
        coalesce,
        streams,
        total,
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        {
            "client": cpu[me] * 1e6 / total,
            "worker": cpu[worker.proc.pid] * 1e6 / total,
            "redis": redis.get("cpu_s", 0.0) * 1e6 / total,
        },
        cmds / total,
        (redis.get("net_in", 0) + redis.get("net_out", 0)) / total,
    )


async def direct_stream_cpu(f: Fleet, provider: Provider, streams: int, case: Case) -> tuple[float, float]:
    """CPU µs per token for the same streams read in one process: by the plain SDK, and by our adapter."""
    settings = WorkerSettings(**f.worker_env())  # type: ignore[arg-type]
    adapter, sdk = build_adapter(provider, settings), DirectSDK(provider, settings)
    await adapter.open()
    model = resolve_model(MODELS[provider])

    async def by_sdk() -> int:
        return sum([1 async for _ in sdk.stream(case.request(provider))])

    async def by_adapter() -> int:
        return sum(
            [1 async for item in adapter.stream(case.request(provider), model) if not isinstance(item, LLMResponse)]
        )

    costs = []
    for one in (by_sdk, by_adapter):
        await asyncio.gather(*(one() for _ in range(10)))
        clock = Clock([os.getpid()])
        tokens = sum(await asyncio.gather(*(one() for _ in range(streams))))
        _, cpu = clock.stop()
        costs.append(cpu[os.getpid()] * 1e6 / tokens)
    await adapter.aclose()
    await sdk.aclose()
    return costs[0], costs[1]


async def main_async(args: argparse.Namespace) -> None:
    out = sys.stdout
    out.write(
        "| provider | streams | SDK TTFT p50 / p99 ms | adapter TTFT p50 / p99 ms | fleet TTFT p50 / p99 ms | "
        "**added to the SDK p50 / p99 ms** | added to the adapter p50 / p99 ms |\n|---|---|---|---|---|---|---|\n"
    )
    relays: list[tuple[str, Relay, tuple[float, float]]] = []
    kinds = args.cases.split(",")
    async with fleet() as f:
        for provider in [Provider(p) for p in args.providers.split(",")]:
            await f.stop_workers()
            await f.add_workers(provider)
            for concurrency in (1, 20) if kinds == ["text"] else ():
                r = await ttft(f, provider, concurrency, args.rounds, 100 if concurrency == 1 else 200)

                def added(base: str, q: str, r: dict[str, list[float]] = r) -> float:
                    return median([a - b for a, b in zip(r[f"fleet_{q}"], r[f"{base}_{q}"], strict=True)])

                cells = " | ".join(
                    f"{median(r[f'{m}_p50']):.2f} / {median(r[f'{m}_p99']):.2f}" for m in ("sdk", "adapter", "fleet")
                )
                out.write(
                    f"| {provider.value} | {concurrency} | {cells} | **{added('sdk', 'p50'):.2f} / "
                    f"{added('sdk', 'p99'):.2f}** | {added('adapter', 'p50'):.2f} / {added('adapter', 'p99'):.2f} |\n"
                )
                out.flush()
            for kind in kinds:
                case = _case(kind, args.tokens)
                alone = await direct_stream_cpu(f, provider, 100, case)
                for coalesce in (True, False):
                    relays.append((kind, await relay(f, provider, coalesce, 100, case), alone))
    out.write(
        "\n| provider | case | coalescing | streams × tokens | lost, duplicated or out of order | events per token | "
        "CPU µs/token: client + worker + redis | SDK alone µs/token | adapter alone µs/token | "
        "**fleet minus SDK µs/token** | relay (fleet minus adapter) µs/token | Redis cmds/token | Redis bytes/token |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for kind, r, (sdk, adapter) in relays:
        total = sum(r.cpu_us_per_token.values())
        out.write(
            f"| {r.provider} | {kind} | {'on' if r.coalesce else 'off'} | {r.streams} × {r.tokens // r.streams} | "
            f"{r.lost_or_disordered} | {r.events / r.tokens:.2f} | "
            f"{' + '.join(f'{v:.1f}' for v in r.cpu_us_per_token.values())} = {total:.1f} | {sdk:.1f} | "
            f"{adapter:.1f} | **{total - sdk:.1f}** | {total - adapter:.1f} | {r.redis_cmds_per_token:.2f} | "
            f"{r.redis_bytes_per_token:.0f} |\n"
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench stream")
    parser.add_argument("--providers", default="openai,anthropic,gemini")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per stream in the relay runs")
    parser.add_argument("--cases", default="text", help="what the relay runs stream: text, tools, or text,tools")
    asyncio.run(main_async(parser.parse_args(argv)))
