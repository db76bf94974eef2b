"""`llm-fleet top [--once] [--interval S]`: the fleet, live in the terminal, from Redis alone (no Prometheus).

Per queue: depth and the oldest waiting job's age, calls in flight against the fleet-wide limit, requests and
errors per second, p50 and p95 latency, tokens per second, cost per hour, circuit and live workers; below, the
dead letters, today's spend, the policy's version and Redis's memory. The rates and percentiles are the
workers' own counts of the last 20-30 s (`jobstore.fleet.Activity`), refreshed every second. `--once` prints
one frame and exits (for scripts and tests).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from redis.exceptions import RedisError
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jobstore import Keys, connect
from jobstore.fleet import FleetReader, FleetState, QueueState, fleet_queues
from schemas.errors import LLMError
from schemas.settings import FleetSettings

__all__ = ["frame", "main"]

_READ_TIMEOUT_S = 5.0
_CIRCUIT_STYLE = {"closed": "green", "half-open": "yellow", "open": "bold red"}
_COLUMNS = (
    "queue",
    "queued",
    "oldest",
    "in flight",
    "req/s",
    "err/s",
    "p50",
    "p95",
    "tok/s",
    "$/h",
    "circuit",
    "workers",
)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def _row(queue: QueueState) -> list[str | Text]:
    activity = queue.activity
    return [
        queue.name,
        str(queue.depth),
        _seconds(queue.oldest_age_s) if queue.depth else "-",
        f"{queue.inflight}/{queue.limit}" if queue.limit else "-",
        f"{activity.per_s(activity.requests):.1f}",
        f"{activity.per_s(activity.errors):.1f}",
        _seconds(activity.quantile(0.5)),
        _seconds(activity.quantile(0.95)),
        f"{activity.per_s(activity.tokens):.0f}",
        f"${activity.per_s(activity.cost_usd) * 3600:.4f}",
        Text(queue.circuit, style=_CIRCUIT_STYLE[queue.circuit]),
        str(queue.workers),
    ]


def frame(fleet: FleetState) -> Group:
    """One screen of `top`: the table of queues and the fleet-wide line under it."""
    at = time.strftime("%H:%M:%S", time.gmtime(fleet.at))
    table = Table(title=f"llm-fleet top  {at} UTC", title_justify="left", box=box.SIMPLE_HEAD)
    for i, column in enumerate(_COLUMNS):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
    for queue in fleet.queues:
        table.add_row(*_row(queue))
    memory = "unknown (INFO refused)"
    if fleet.memory_used is not None:
        limit = f"{fleet.maxmemory / 2**20:.0f} MiB" if fleet.maxmemory else "no limit"
        memory = f"{fleet.memory_used / 2**20:.1f} MiB of {limit}"
    fleet_line = (
        f"dead letters {fleet.dead_letters}   spent today ${sum(fleet.spent.values()):.4f}   "
        f"policy v{fleet.policy_version}   Redis memory {memory}"
    )
    return Group(table, Text(fleet_line))


async def watch(settings: FleetSettings, *, once: bool, interval_s: float, console: Console | None = None) -> None:
    """Show the fleet on `console` (default: stdout's), one frame or one every `interval_s` until cancelled."""
    redis = connect(settings.redis_url, retries=0)
    reader = FleetReader(redis, Keys(settings.key_prefix), dead_after_s=settings.dead_after_s)
    queues = fleet_queues()
    if console is None:  # to a file or a pipe: wide enough that no column is cut short
        console = Console(width=None if sys.stdout.isatty() else 160)

    async def read() -> FleetState:
        async with asyncio.timeout(_READ_TIMEOUT_S):
            return await reader.read(queues)

    try:
        if once:
            console.print(frame(await read()))
            return
        with Live(console=console, auto_refresh=False) as live:
            while True:
                try:
                    shown: Group | Text = frame(await read())
                except (RedisError, OSError, TimeoutError) as exc:  # shown, and tried again
                    shown = Text(f"cannot read Redis: {type(exc).__name__}: {exc}", style="bold red")
                live.update(shown, refresh=True)
                await asyncio.sleep(interval_s)
    finally:
        await redis.aclose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="llm-fleet top", description="The fleet, live, from Redis alone.")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between frames (default 1)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be above 0")
    try:
        asyncio.run(watch(FleetSettings(), once=args.once, interval_s=args.interval))
    except KeyboardInterrupt:
        return 0
    except (LLMError, RedisError, OSError, TimeoutError, ValueError) as exc:
        sys.stderr.write(f"llm-fleet top: {type(exc).__name__}: {exc}\n")
        return 1
    return 0
