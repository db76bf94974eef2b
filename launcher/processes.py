"""The fleet's processes, started as `python -m llm_fleet ...` and read line by line: the provider emulator and
a worker per provider (`start_emulator`, `start_worker`, `worker_env`), for the demo, the tests and the
benchmarks. A worker started here gets its provider keys in its own environment, never in ours."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from schemas.catalog import Provider

__all__ = ["Process", "start_emulator", "start_worker", "worker_env"]

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
