"""The fleet reader against a real Redis server: every figure it reports, set up by the real steps (submit,
claim, finish, defer, the worker's heartbeat and tokens) where there is one, by hand where an operator's
command writes it."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

import jobstore.fleet
from jobstore import Keys, Limits, WorkerQueue
from jobstore.fleet import Activity, FleetReader, fleet_queues
from jobstore.keys import LATENCY_BOUNDS, latency_bin
from producer import LLMClient
from schemas.catalog import Catalog, ModelInfo
from schemas.codec import encode_error, encode_response
from schemas.errors import UnknownModelError
from schemas.request import LLMRequest
from schemas.response import LLMResponse, Usage
from schemas.settings import FleetSettings
from tests.servers import RedisServer


@pytest.fixture
def settings(redis_server: RedisServer) -> FleetSettings:
    return FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"f{uuid.uuid4().hex[:8]}", LLM_RESULT_TTL=60)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_server.url)
    yield r
    await r.aclose()


def _request(**kw: object) -> LLMRequest:
    return LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], **kw)  # type: ignore[arg-type]


def _response(request: LLMRequest) -> LLMResponse:
    return LLMResponse(
        content="hello",
        usage=Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12),
        latency_ms=1.0,
        provider="openai",
        model="gpt-4.1-mini-2025-04-14",
        finish_reason="stop",
        request_id=request.request_id,
        trace_id=request.trace_id,
    )


async def test_an_idle_fleet_reads_as_zeros_with_redis_own_figures(redis: Redis, settings: FleetSettings) -> None:
    fleet = await FleetReader(redis, Keys(settings.key_prefix), dead_after_s=10).read(["openai", "gemini"])
    assert abs(fleet.at - time.time()) < 5
    assert [q.name for q in fleet.queues] == ["openai", "gemini"]
    for queue in fleet.queues:
        assert (queue.depth, queue.retrying, queue.oldest_age_s, queue.workers, queue.inflight, queue.limit) == (
            0,
            0,
            0.0,
            0,
            0,
            0,
        )
        assert queue.circuit == "closed" and queue.activity.requests == 0 and queue.activity.quantile(0.5) is None
    assert (fleet.dead_letters, fleet.policy_version, fleet.violations, fleet.budgets, fleet.spent) == (
        0,
        0,
        {},
        {},
        {},
    )
    assert fleet.memory_used > 0 and fleet.maxmemory >= 0


async def test_every_figure_of_a_busy_queue(redis: Redis, settings: FleetSettings) -> None:
    keys = Keys(settings.key_prefix)
    queue = WorkerQueue(redis, keys, "openai", "w1", result_ttl_s=60, stream_ttl_s=60, limits=Limits(concurrency=4))
    reader = FleetReader(redis, keys, dead_after_s=10)
    async with LLMClient(settings=settings) as client:
        served = _request(source_agent="planner")
        await client.submit(served)
        await queue.size_slots()
        assert await queue.acquire_slot(1)
        [job] = await queue.claim(timeout_s=5)
        assert job.kind == "run" and 0 <= job.queued_s < 5
        await client.submit(_request())  # claimed below, and failed
        waiting = await client.submit(_request())  # the one left waiting: the oldest, next to be claimed
        await redis.hset(keys.request(waiting), "enqueued_at", time.time() - 30)  # type: ignore[misc]
    await queue.heartbeat(10)
    await queue.finish(
        job.claimed,
        encode_response(_response(served)),
        health="ok",
        tokens=12,
        agent="planner",
        cost_usd=0.5,
        seconds=0.3,
    )
    assert await queue.acquire_slot(1)
    [failed] = await queue.claim(timeout_s=5)
    await queue.finish(failed.claimed, encode_error(UnknownModelError("x")), health="err", dead=True, seconds=400)
    await redis.set(keys.cooldown("openai"), "1", px=20_000)
    await redis.set(keys.probation("openai"), "1", px=20_000)
    await redis.incr(keys.dropped("openai"))
    await redis.hset(keys.violations(), "gpt-4o planner", 3)  # type: ignore[misc]
    await redis.hset(keys.policy(), "version", 7)  # type: ignore[misc]
    await redis.hset(keys.budgets(), "planner", 2.5)  # type: ignore[misc]

    fleet = await reader.read(["openai"])
    [openai] = fleet.queues
    assert openai.depth == 1 and openai.workers == 1
    assert 29 < openai.oldest_age_s < 40  # the one claimed next: its age on Redis's clock
    assert (openai.inflight, openai.limit) == (0, 4)  # both tokens back
    assert openai.circuit == "half-open" and 15 < openai.cooldown_s <= 20 and openai.dropped == 1
    activity = openai.activity
    assert activity.requests == 2 and activity.errors == 1 and (activity.ok, activity.err) == (1, 1)
    assert activity.latency[latency_bin(0.3)] == 1 and activity.latency[-1] == 1  # 400 s: past the last bound
    assert activity.tokens == 12 and activity.cost_usd == pytest.approx(0.5)
    assert 20 <= activity.window_s <= 30 and activity.per_s(activity.requests) == pytest.approx(2 / activity.window_s)
    assert fleet.dead_letters == 1 and fleet.violations == {("gpt-4o", "planner"): 3} and fleet.policy_version == 7
    assert fleet.budgets == {"planner": 2.5} and fleet.spent == {"planner": pytest.approx(0.5)}
    buckets = await redis.keys(f"{settings.key_prefix}:activity:openai:*")
    assert buckets and all(0 < ttl <= 60 for ttl in [await redis.ttl(b) for b in buckets])  # each expires whole

    await redis.set(keys.circuit("openai"), "open", px=5_000)
    assert await queue.acquire_slot(1)  # a token taken: in flight
    [openai] = (await reader.read(["openai"])).queues
    assert openai.circuit == "open" and 0 < openai.open_for_s <= 5 and openai.inflight == 1


async def test_a_retry_put_aside_counts_as_retrying_not_queued(redis: Redis, settings: FleetSettings) -> None:
    keys = Keys(settings.key_prefix)
    queue = WorkerQueue(redis, keys, "anthropic", "w2", result_ttl_s=60, stream_ttl_s=60)
    async with LLMClient(settings=settings) as client:
        await client.submit(LLMRequest(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}]))
    [job] = await queue.claim(timeout_s=5)
    await queue.defer(job.claimed, time.time() + 60, health="err")
    [anthropic] = (await FleetReader(redis, keys, dead_after_s=10).read(["anthropic"])).queues
    assert (anthropic.depth, anthropic.retrying, anthropic.oldest_age_s) == (0, 1, 0.0)
    assert anthropic.activity.err == 1 and anthropic.activity.requests == 0  # a retry is no finished request


async def test_the_script_is_loaded_again_after_redis_forgot_it(redis: Redis, settings: FleetSettings) -> None:
    reader = FleetReader(redis, Keys(settings.key_prefix), dead_after_s=10)
    await reader.read(["openai"])
    await redis.script_flush()
    assert [q.name for q in (await reader.read(["openai"])).queues] == ["openai"]


async def test_a_key_of_another_type_is_an_error_not_a_wrong_figure(redis: Redis, settings: FleetSettings) -> None:
    keys = Keys(settings.key_prefix)
    await redis.set(keys.dead(), "not a sorted set")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await FleetReader(redis, keys, dead_after_s=10).read(["openai"])


def test_percentiles_are_read_from_the_bins_as_prometheus_does() -> None:
    latency = [0] * (len(LATENCY_BOUNDS) + 1)
    latency[latency_bin(0.3)] = 90  # (0.25, 0.5]
    latency[latency_bin(2.0)] = 10  # (1.0, 2.5]
    activity = Activity(window_s=20, latency=tuple(latency))
    assert activity.quantile(0.5) == pytest.approx(0.25 + 0.25 * 50 / 90)
    assert activity.quantile(0.95) == pytest.approx(1.0 + 1.5 * 5 / 10)
    latency[-1] = 100  # past the last bound: reported as that bound
    assert Activity(latency=tuple(latency)).quantile(0.99) == LATENCY_BOUNDS[-1]
    assert latency_bin(LATENCY_BOUNDS[0]) == 0 and latency_bin(1e9) == len(LATENCY_BOUNDS)


def test_activity_is_read_over_the_last_two_buckets_and_the_current_one() -> None:
    now = 1000 * 10 + 4.0  # 4 s into bucket 1000
    health = [b"ok:1000", b"2", b"err:998", b"1", b"err:997", b"5"]  # 997: no longer read
    recent = [[b"l3", b"1", b"tok", b"30"], [], [b"l3", b"2", b"nusd", b"500000000", b"fail", b"1"]]
    activity = Activity.parse(health, recent, now)
    assert activity.window_s == 24 and activity.requests == 3 and activity.latency[3] == 3
    assert (activity.tokens, activity.cost_usd, activity.ok, activity.err, activity.errors) == (30, 0.5, 2, 1, 1)


def test_the_queues_are_the_providers_then_each_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    local = ModelInfo.model_validate(
        {"id": "llama-3", "provider": "openai", "endpoint": {"name": "vllm-a", "base_url": "http://h:8000/v1"}}
    )
    shipped = jobstore.fleet.catalog()
    monkeypatch.setattr(jobstore.fleet, "catalog", lambda: Catalog([*shipped.models, local]))
    assert fleet_queues() == ["openai", "anthropic", "gemini", "vllm-a"]
