"""What every benchmark needs: its own Redis server, the emulator and workers as processes, CPU accounting
from /proc, Redis command counts, and percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from launcher.processes import Process, start_emulator, start_worker, worker_env
from schemas.catalog import Provider
from schemas.settings import FleetSettings

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _status(pid: int, name: str) -> int:
    """A number from /proc/{pid}/status (0 when the field is missing)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


def wakeups(pid: int) -> int:
    """How often the process's main thread went to sleep and was woken (its voluntary context switches)."""
    return _status(pid, "voluntary_ctxt_switches")


def rss_mb(pid: int) -> float:
    return _status(pid, "VmRSS") / 1024


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class RedisProcess:
    port: int
    proc: subprocess.Popen[bytes]
    url: str = ""

    def __post_init__(self) -> None:
        self.url = f"redis://127.0.0.1:{self.port}/0"


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[RedisProcess]:
    """A redis-server of the benchmark's own (no persistence: we measure the queue, not the disk)."""
    from tests.servers import free_port, redis_binary

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
    )
    server = RedisProcess(port, proc)
    client = Redis.from_url(server.url)
    for _ in range(200):
        with contextlib.suppress(Exception):
            await client.ping()
            break
        await asyncio.sleep(0.02)
    await client.aclose()
    try:
        yield server
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Fleet:
    """Redis, the emulator and workers, each its own process, as a user would run them; the workers' log lines
    go to files in `logs`, as to a log collector (not to the load generator, whose CPU is the caller's)."""

    redis: RedisProcess
    emulator: Process
    emulator_url: str
    settings: FleetSettings
    logs: Path
    workers: dict[Provider, list[Process]] = field(default_factory=dict)

    def worker_env(self, **extra: str) -> dict[str, str]:
        return worker_env(self.redis.url, self.emulator_url, LLM_KEY_PREFIX=self.settings.key_prefix, **extra)

    async def add_workers(self, provider: Provider, n: int = 1, **extra: str) -> list[Process]:
        procs = []
        for _ in range(n):
            log = self.logs / f"{provider.value}-{sum(map(len, self.workers.values())) + len(procs)}.log"
            procs.append(await start_worker(provider, self.worker_env(**extra), log))
        self.workers.setdefault(provider, []).extend(procs)
        return procs

    async def stop_workers(self) -> None:
        for procs in self.workers.values():
            for p in procs:
                await p.stop()
        self.workers.clear()

    def pids(self, provider: Provider | None = None) -> list[int]:
        chosen = [provider] if provider else list(self.workers)
        return [p.proc.pid for prov in chosen for p in self.workers.get(prov, [])]


@contextlib.asynccontextmanager
async def fleet(*emulator_args: str) -> AsyncIterator[Fleet]:
    async with redis_server() as redis:
        emulator, url = await start_emulator(*emulator_args)
        settings = FleetSettings(REDIS_URL=redis.url, LLM_KEY_PREFIX=f"bench{uuid.uuid4().hex[:6]}")
        f = Fleet(redis, emulator, url, settings, Path(tempfile.mkdtemp(prefix="bench-logs-")))
        try:
            yield f
        finally:
            await f.stop_workers()
            await emulator.stop()
            shutil.rmtree(f.logs, ignore_errors=True)


async def redis_counters(url: str) -> dict[str, float]:
    """Redis's CPU seconds, commands by name (inside scripts too), and network bytes."""
    client = Redis.from_url(url)
    try:
        cpu = await client.info("cpu")
        stats = await client.info("commandstats")
        net = await client.info("stats")
    finally:
        await client.aclose()
    counters = {
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        "net_in": float(net["total_net_input_bytes"]),
        "net_out": float(net["total_net_output_bytes"]),
    }
    for name, value in stats.items():
        counters[name.removeprefix("cmdstat_")] = float(value["calls"])
    return counters


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0)}


class Clock:
    """Wall time, and the CPU and wake-ups of a set of processes, over a measured window."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.wakes = {pid: wakeups(pid) for pid in self.pids}
        self.wall = time.perf_counter()
        self.cpu = {pid: cpu_seconds(pid) for pid in self.pids}

    def stop(self) -> tuple[float, dict[int, float]]:
        return time.perf_counter() - self.wall, {pid: cpu_seconds(pid) - self.cpu[pid] for pid in self.pids}

    def woken(self) -> dict[int, int]:
        """Wake-ups per process since the start."""
        return {pid: wakeups(pid) - self.wakes[pid] for pid in self.pids}
