"""The exporter and `top` in this process, against a real Redis server: every metric name of the contract
(/work's METRICS.md, README "Metrics"), served over HTTP and parsed with prometheus-client's own parser; a
Redis that cannot be reached; the frame `top` draws. The same, as real processes under a live fleet, are in
tests/e2e/test_monitor.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from rich.console import Console

from jobstore import Keys, Limits, WorkerQueue
from jobstore.fleet import Activity, FleetState, QueueState
from jobstore.keys import LATENCY_BOUNDS, latency_bin
from monitor import exporter, top
from producer import LLMClient
from schemas.request import LLMRequest
from schemas.settings import FleetSettings
from tests.servers import RedisServer

FLEET_METRICS = {
    "llm_queue_depth",
    "llm_queue_retrying",
    "llm_queue_oldest_age_seconds",
    "llm_workers_live",
    "llm_inflight",
    "llm_inflight_limit",
    "llm_circuit_state",
    "llm_cooldown_seconds",
    "llm_dropped_elements_total",
    "llm_dead_letters",
    "llm_policy_violations_total",
    "llm_policy_version",
    "llm_budget_limit_usd",
    "llm_budget_spent_usd",
    "llm_redis_memory_used_bytes",
    "llm_redis_maxmemory_bytes",
    "llm_exporter_scrape_errors_total",
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(redis_server: RedisServer) -> FleetSettings:
    return FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"m{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_server.url)
    yield r
    await r.aclose()


@contextlib.asynccontextmanager
async def serving(settings: FleetSettings) -> AsyncIterator[str]:
    """The exporter in this process (its HTTP server in a thread), on a free port: its /metrics URL."""
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(exporter.serve("127.0.0.1", port, settings, stop))
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        stop.set()
        await task


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):  # until its server thread listens
            try:
                async with session.get(url) as resp:
                    assert resp.status == 200
                    return samples_of(await resp.text())
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


async def test_every_fleet_metric_is_served_with_its_value(redis: Redis, settings: FleetSettings) -> None:
    keys = Keys(settings.key_prefix)
    queue = WorkerQueue(redis, keys, "openai", "w1", result_ttl_s=60, stream_ttl_s=60, limits=Limits(concurrency=3))
    await queue.size_slots()
    assert await queue.acquire_slot(1)
    await queue.heartbeat(10)
    async with LLMClient(settings=settings) as client:
        for _ in range(2):
            await client.submit(LLMRequest(model="gemini-3.5-flash-lite", messages=[{"role": "user", "content": "hi"}]))
    await redis.hset(keys.violations(), "gpt-4o planner", 2)  # type: ignore[misc]
    await redis.hset(keys.budgets(), "planner", 5)  # type: ignore[misc]
    await redis.hset(keys.spend(), "planner", 1.25)  # type: ignore[misc]
    await redis.hset(keys.policy(), "version", 3)  # type: ignore[misc]
    await redis.zadd(keys.dead(), {"r1": time.time()})
    await redis.set(keys.circuit("anthropic"), "open", px=10_000)
    async with serving(settings) as url:
        samples = await scrape(url)
    names = {name for name, _ in samples}
    assert names >= FLEET_METRICS, FLEET_METRICS - names

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("llm_queue_depth", provider="gemini") == 2 and value("llm_queue_depth", provider="openai") == 0
    assert value("llm_queue_oldest_age_seconds", provider="gemini") >= 0
    assert value("llm_workers_live", provider="openai") == 1 and value("llm_workers_live", provider="gemini") == 0
    assert value("llm_inflight", provider="openai") == 1 and value("llm_inflight_limit", provider="openai") == 3
    assert ("llm_inflight_limit", (("provider", "gemini"),)) not in samples  # unlimited: absent
    assert value("llm_circuit_state", provider="anthropic") == 2 and value("llm_circuit_state", provider="openai") == 0
    assert value("llm_policy_violations_total", model="gpt-4o", source_agent="planner") == 2
    assert value("llm_budget_limit_usd", source_agent="planner") == 5
    assert value("llm_budget_spent_usd", source_agent="planner") == 1.25
    assert value("llm_policy_version") == 3 and value("llm_dead_letters") == 1
    assert value("llm_redis_memory_used_bytes") > 0 and value("llm_exporter_scrape_errors_total") == 0


async def test_a_scrape_that_cannot_reach_redis_still_answers_and_counts_it() -> None:
    gone = FleetSettings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", LLM_KEY_PREFIX="gone")
    async with serving(gone) as url:
        first, second = await scrape(url), await scrape(url)
    assert first[("llm_exporter_scrape_errors_total", ())] == 1
    assert second[("llm_exporter_scrape_errors_total", ())] == 2
    assert {name for name, _ in second} == {"llm_exporter_scrape_errors_total"}  # nothing else, nothing stale


async def test_a_redis_that_refuses_info_leaves_out_its_memory_alone(
    redis: Redis, redis_server: RedisServer, settings: FleetSettings
) -> None:
    user = f"noinfo{uuid.uuid4().hex[:6]}"
    await redis.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-info")
    try:
        port = redis_server.url.rsplit(":", 1)[1].split("/")[0]
        limited = settings.model_copy(update={"redis_url": f"redis://{user}:pw@127.0.0.1:{port}/0"})
        async with serving(limited) as url:
            samples = await scrape(url)
        console = Console(record=True, width=200)
        await top.watch(limited, once=True, interval_s=1, console=console)
    finally:
        await redis.execute_command("ACL", "DELUSER", user)
    names = {name for name, _ in samples}
    assert names >= {
        "llm_queue_depth",
        "llm_workers_live",
        "llm_circuit_state",
        "llm_dead_letters",
        "llm_policy_version",
    }
    assert not names & {"llm_redis_memory_used_bytes", "llm_redis_maxmemory_bytes"}
    assert samples[("llm_exporter_scrape_errors_total", ())] == 0
    assert "Redis memory unknown (INFO refused)" in console.export_text()


def test_the_exporter_refuses_bad_arguments_and_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        exporter.main([])
    assert exited.value.code == 2 and "--port" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert exporter.main(["--port", str(taken.getsockname()[1]), "--host", "127.0.0.1"]) == 1
    assert "llm-fleet exporter: [Errno 98] Address already in use" in capsys.readouterr().err


def _state() -> FleetState:
    latency = [0] * (len(LATENCY_BOUNDS) + 1)
    latency[latency_bin(0.08)] = 40  # (0.05, 0.1]
    activity = Activity(window_s=20, latency=tuple(latency), errors=2, tokens=4000, cost_usd=0.01)
    queues = (
        QueueState("openai", depth=7, oldest_age_s=3.25, workers=2, inflight=3, limit=8, activity=activity),
        QueueState("gemini", circuit="open", open_for_s=4),
    )
    return FleetState(at=0, queues=queues, dead_letters=4, spent={"a": 0.5}, policy_version=2, memory_used=2**21)


def test_a_frame_shows_each_queue_and_the_fleet() -> None:
    console = Console(record=True, width=200)
    console.print(top.frame(_state()))
    lines = console.export_text().splitlines()
    openai = next(line.split() for line in lines if "openai" in line)
    assert openai == ["openai", "7", "3.2s", "3/8", "2.0", "0.1", "75ms", "98ms", "200", "$1.8000", "closed", "2"]
    gemini = next(line.split() for line in lines if "gemini" in line)
    assert gemini == ["gemini", "0", "-", "-", "0.0", "0.0", "-", "-", "0", "$0.0000", "open", "0"]
    assert "dead letters 4" in lines[-1] and "spent today $0.5000" in lines[-1] and "policy v2" in lines[-1]
    assert "2.0 MiB of no limit" in lines[-1]


async def test_top_once_prints_one_frame_from_redis(
    settings: FleetSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with LLMClient(settings=settings) as client:
        await client.submit(LLMRequest(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}]))
    await top.watch(settings, once=True, interval_s=1)
    anthropic = next(line.split() for line in capsys.readouterr().out.splitlines() if "anthropic" in line)
    assert anthropic[:2] == ["anthropic", "1"] and anthropic[2].endswith("ms")  # waiting for a few ms


async def test_top_live_says_when_it_cannot_read_redis_and_keeps_trying() -> None:
    gone = FleetSettings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", LLM_KEY_PREFIX="gone")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    watching = asyncio.create_task(top.watch(gone, once=False, interval_s=0.05, console=console))
    async with asyncio.timeout(10):
        while True:  # a frame saying so, and the next
            if screen.getvalue().count("cannot read Redis: ConnectionError") >= 2:
                break
            await asyncio.sleep(0.05)
    watching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watching


def test_top_once_from_the_environment(
    settings: FleetSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    assert top.main(["--once"]) == 0
    assert "openai" in capsys.readouterr().out


def test_top_says_why_it_cannot_start(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert top.main(["--once"]) == 1
    assert capsys.readouterr().err.startswith("llm-fleet top: ConnectionError")
    with pytest.raises(SystemExit) as exited:
        top.main(["--interval", "0"])
    assert exited.value.code == 2
