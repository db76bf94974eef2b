"""`llm-fleet exporter --port P [--host H]`: what belongs to the whole fleet, exported once for Prometheus (not
once per worker replica), read from Redis at each scrape.

Per queue (`provider`: each provider's, each self-hosted endpoint's): depth, retries put aside, the oldest
waiting job's age, live workers, calls in flight against the fleet-wide limit, circuit, cooldown, dropped
elements; fleet-wide: dead letters, the allowed-models policy's violations and version, budgets and today's
spend, Redis's memory. One read per scrape (`jobstore.fleet`: one round trip, O(1) per queue). A scrape that
cannot read Redis still answers, with `llm_exporter_scrape_errors_total` counting it.

The HTTP server is prometheus-client's, in a thread of its own; each scrape hands the read to the asyncio loop
of the main thread, where the Redis connection lives, and waits for it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from jobstore import Keys, connect
from jobstore.fleet import CIRCUIT_STATES, FleetReader, FleetState, QueueState, fleet_queues
from schemas.errors import LLMError
from schemas.settings import FleetSettings

__all__ = ["FleetCollector", "main"]

log = structlog.get_logger("llm_fleet.exporter")

_SCRAPE_TIMEOUT_S = 5.0
_QUEUE_GAUGES: tuple[tuple[str, str, Callable[[QueueState], float]], ...] = (
    ("llm_queue_depth", "Jobs waiting on the queue", lambda q: q.depth),
    ("llm_queue_retrying", "Jobs put aside to retry later", lambda q: q.retrying),
    ("llm_queue_oldest_age_seconds", "Age of the oldest waiting job (0 when none)", lambda q: q.oldest_age_s),
    ("llm_workers_live", "Workers whose heartbeat is fresh", lambda q: q.workers),
    ("llm_circuit_state", "0 closed, 1 half-open, 2 open", lambda q: CIRCUIT_STATES.index(q.circuit)),
    ("llm_cooldown_seconds", "Seconds left of a 429 cooldown (0 when none)", lambda q: q.cooldown_s),
)


class FleetCollector(Collector):
    """The fleet's metrics, from `read()` (a `FleetState`) at each collection; a read that raises is counted
    and the scrape answers with that count alone."""

    def __init__(self, read: Callable[[], FleetState]) -> None:
        self.read = read
        self.errors = 0
        self._counting = threading.Lock()  # scrapes may overlap (one server thread each)

    def collect(self) -> Iterator[Metric]:
        try:
            fleet = self.read()
        except (RedisError, OSError, TimeoutError, LLMError) as exc:
            with self._counting:
                self.errors += 1
            log.warning("scrape_failed", error=f"{type(exc).__name__}: {exc}")
        else:
            yield from _fleet_metrics(fleet)
        errors = CounterMetricFamily("llm_exporter_scrape_errors", "Scrapes that could not read Redis")
        errors.add_metric([], self.errors)
        yield errors


def _fleet_metrics(fleet: FleetState) -> Iterable[Metric]:
    for name, text, value in _QUEUE_GAUGES:
        gauge = GaugeMetricFamily(name, text, labels=["provider"])
        for queue in fleet.queues:
            gauge.add_metric([queue.name], value(queue))
        yield gauge
    inflight = GaugeMetricFamily("llm_inflight", "Calls in flight against the fleet-wide limit", labels=["provider"])
    limit = GaugeMetricFamily("llm_inflight_limit", "The fleet-wide concurrency limit", labels=["provider"])
    dropped = CounterMetricFamily("llm_dropped_elements", "Queue elements with no job behind them", labels=["provider"])
    for queue in fleet.queues:
        if queue.limit:  # absent when unlimited
            inflight.add_metric([queue.name], queue.inflight)
            limit.add_metric([queue.name], queue.limit)
        dropped.add_metric([queue.name], queue.dropped)
    yield from (inflight, limit, dropped)
    yield GaugeMetricFamily("llm_dead_letters", "Dead letters held", value=fleet.dead_letters)
    violations = CounterMetricFamily(
        "llm_policy_violations", "Requests the allowed-models policy refused", labels=["model", "source_agent"]
    )
    for (model, agent), count in sorted(fleet.violations.items()):
        violations.add_metric([model, agent], count)
    yield violations
    yield GaugeMetricFamily("llm_policy_version", "The allowed-models policy's version", value=fleet.policy_version)
    budget = GaugeMetricFamily("llm_budget_limit_usd", "Today's budget (UTC day)", labels=["source_agent"])
    for agent, usd in sorted(fleet.budgets.items()):
        budget.add_metric([agent], usd)
    spent = GaugeMetricFamily("llm_budget_spent_usd", "Spent today (UTC day)", labels=["source_agent"])
    for agent, usd in sorted(fleet.spent.items()):
        spent.add_metric([agent], usd)
    yield from (budget, spent)
    if fleet.memory_used is not None:  # absent where Redis refuses INFO
        yield GaugeMetricFamily("llm_redis_memory_used_bytes", "Redis's used_memory", value=fleet.memory_used)
    if fleet.maxmemory is not None:
        yield GaugeMetricFamily("llm_redis_maxmemory_bytes", "Redis's maxmemory (0: no limit)", value=fleet.maxmemory)


async def serve(host: str, port: int, settings: FleetSettings, stop: asyncio.Event) -> None:
    """Serve `/metrics` until `stop` is set."""
    loop = asyncio.get_running_loop()
    redis = connect(settings.redis_url, retries=0)  # a scrape fails fast, and the next one tries again
    reader = FleetReader(redis, Keys(settings.key_prefix), dead_after_s=settings.dead_after_s)
    queues = fleet_queues()

    async def read() -> FleetState:
        async with asyncio.timeout(_SCRAPE_TIMEOUT_S):
            return await reader.read(queues)

    def scrape() -> FleetState:  # in the HTTP server's thread
        return asyncio.run_coroutine_threadsafe(read(), loop).result()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(scrape))
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("exporter_ready", metrics=f"http://{host}:{server.server_port}/metrics", queues=queues)
    try:
        await stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        await redis.aclose()


async def _until_signalled(host: str, port: int, settings: FleetSettings) -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await serve(host, port, settings, stop)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="llm-fleet exporter", description="Serve the fleet's state (queues, workers, circuits) for Prometheus."
    )
    parser.add_argument("--port", type=int, required=True, help="the port of /metrics (0: a free one)")
    parser.add_argument("--host", default="0.0.0.0", help="the address to listen on (default: every interface)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_until_signalled(args.host, args.port, FleetSettings()))
    except (LLMError, OSError, ValueError) as exc:
        sys.stderr.write(f"llm-fleet exporter: {exc}\n")
        return 1
    return 0
