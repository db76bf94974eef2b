"""Resilience with real worker processes, a real Redis and the emulator's faults: retries, deadlines,
fleet-wide limits, cooldowns, fallbacks, crashes, shutdown, Redis restarts, backpressure, dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import TypeVar

import aiohttp
import pytest
from redis.asyncio import Redis

from jobstore import Keys
from launcher.processes import Process, start_worker, worker_env
from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import (
    ContentFilteredError,
    DeadlineExceededError,
    FleetUnavailableError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    QueueFullError,
    RequestCancelledError,
    WorkerLostError,
)
from schemas.events import DeltaEvent, DoneEvent, StreamEvent
from schemas.request import LLMRequest
from schemas.settings import FleetSettings
from tests.e2e.conftest import Fleet
from tests.e2e.conftest import request as _request
from tests.e2e.emulator_api import requests_for, stats, wait_for_calls
from tests.servers import Proxy, RedisServer

pytestmark = pytest.mark.e2e

T = TypeVar("T")


async def test_retryable_failures_are_retried_then_succeed(fleet: Fleet, emulator_url: str) -> None:
    settings, _ = await fleet(Provider.ANTHROPIC)
    async with LLMClient(settings=settings) as client:
        flaky = _request("claude-haiku-4-5", f"{uuid.uuid4()} [[fault=529]] [[fail_times=2]]")
        assert (await client.complete(flaky, timeout=20)).finish_reason == "stop"
        assert len(await requests_for(emulator_url, flaky.trace_id)) == 3
        refused = _request("claude-haiku-4-5", f"{uuid.uuid4()} [[fault=503]] [[fail_times=10]]")
        with pytest.raises(ProviderUnavailableError):
            await client.complete(refused, timeout=20)
        assert len(await requests_for(emulator_url, refused.trace_id)) == 4  # LLM_MAX_RETRIES=3
    flagged = await _dead_letter_cli(settings, "list")
    assert refused.request_id in flagged.stdout and "ProviderUnavailableError" in flagged.stdout


async def test_non_retryable_failures_are_not_retried(fleet: Fleet, emulator_url: str) -> None:
    settings, _ = await fleet(Provider.GEMINI)
    async with LLMClient(settings=settings) as client:
        blocked = _request("gemini-3.8-flash", f"{uuid.uuid4()} [[block]]")
        with pytest.raises(ContentFilteredError):
            await client.complete(blocked, timeout=20)
    assert len(await requests_for(emulator_url, blocked.trace_id)) == 1


async def test_concurrency_limit_holds_across_workers(fleet: Fleet, emulator_url: str) -> None:
    settings, _ = await fleet(Provider.OPENAI, n=3, LLM_PROVIDER_CONCURRENCY="5")
    async with aiohttp.ClientSession() as session:
        await session.post(f"{emulator_url}/_emulator/reset")
    async with LLMClient(settings=settings) as client:
        requests = [_request("gpt-4.1-mini", f"{i} [[latency_ms=150]]") for i in range(40)]
        t0 = time.perf_counter()
        responses = await asyncio.gather(*(client.complete(r, timeout=30) for r in requests))
        elapsed = time.perf_counter() - t0
    assert len(responses) == 40
    max_open = (await stats(emulator_url))["max_open"]["openai"]
    assert max_open == 5  # the limit, reached and never exceeded, by three worker processes together
    assert elapsed >= 40 / 5 * 0.15 * 0.9


async def test_a_worker_runs_at_most_its_concurrency(fleet: Fleet) -> None:
    settings, [worker] = await fleet(Provider.OPENAI, LLM_WORKER_CONCURRENCY="3")
    claimed = Keys(settings.key_prefix).claimed(str(worker.ready_info["worker_id"]))
    redis = Redis.from_url(settings.redis_url)
    running: list[int] = []

    async def watch() -> None:
        while True:
            running.append(await redis.llen(claimed))  # type: ignore[misc]
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    async with LLMClient(settings=settings) as client:
        requests = [_request("gpt-4.1-mini", f"{i} [[latency_ms=150]]") for i in range(12)]
        responses = await asyncio.gather(*(client.complete(r, timeout=30) for r in requests))
    watcher.cancel()
    await redis.aclose()
    assert len(responses) == 12
    assert max(running) == 3  # the queue was longer: reached, never exceeded


async def test_a_429_pauses_every_worker_for_its_retry_after(fleet: Fleet, emulator_url: str) -> None:
    settings, _ = await fleet(Provider.OPENAI, n=2)
    async with LLMClient(settings=settings) as client:
        limited = _request("gpt-4.1-mini", f"{uuid.uuid4()} [[fault=429]] [[retry_after=1]] [[fail_times=1]]")
        first = asyncio.create_task(client.complete(limited, timeout=20))
        await wait_for_calls(emulator_url, limited.trace_id)
        await asyncio.sleep(0.1)
        other = _request("gpt-4.1-mini", "submitted during the cooldown")
        await client.complete(other, timeout=20)
        await first
    [hit] = [r for r in await requests_for(emulator_url, limited.trace_id)][:1]
    [sent] = await requests_for(emulator_url, other.trace_id)
    assert sent["at"] - hit["at"] >= 0.95  # the other worker waited out the retry-after too


async def test_a_cooldown_set_a_moment_ago_holds_back_the_call(fleet: Fleet, emulator_url: str) -> None:
    """Another worker's 429 has cooled the provider down a moment ago: the claim's start script (which runs
    as the job is claimed, before any call) says wait, so no call leaves during the cooldown, and the request
    runs once it is over."""
    settings, _ = await fleet(Provider.OPENAI)
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.set(Keys(settings.key_prefix).cooldown("openai"), "1", px=800)  # set behind the worker's back
    finally:
        await redis.aclose()
    request = _request("gpt-4.1-mini", f"{uuid.uuid4()} [[latency_ms=300]]")
    async with LLMClient(settings=settings) as client:
        started = time.monotonic()
        response = await client.complete(request, timeout=20)
    assert time.monotonic() - started >= 0.75  # it waited out the cooldown
    assert response.request_id == request.request_id
    assert len(await requests_for(emulator_url, request.trace_id)) == 1


async def test_fallback_after_retries_and_during_cooldown(fleet: Fleet, emulator_url: str) -> None:
    settings, _ = await fleet(Provider.ANTHROPIC, Provider.GEMINI, LLM_MAX_RETRIES="1")
    async with LLMClient(settings=settings) as client:
        failing = _request(
            "claude-haiku-4-5", f"{uuid.uuid4()} [[fault=500]] [[fail_times=2]]", fallbacks=["gemini-3.8-flash"]
        )
        response = await client.complete(failing, timeout=20)
        assert (response.provider, response.fallback_from) == (Provider.GEMINI, "claude-haiku-4-5")
        assert response.request_id == failing.request_id and response.trace_id == failing.trace_id
        calls = await requests_for(emulator_url, failing.trace_id)
        assert [c["provider"] for c in calls] == ["anthropic", "anthropic", "gemini"]
        limited = _request("claude-haiku-4-5", f"{uuid.uuid4()} [[fault=429]] [[retry_after=3]] [[fail_times=1]]")
        retried = asyncio.create_task(client.complete(limited, timeout=20))  # its 429 cools anthropic down
        await wait_for_calls(emulator_url, limited.trace_id)
        await asyncio.sleep(0.1)
        cooled = _request("claude-haiku-4-5", "anthropic is cooling down", fallbacks=["gemini-3.8-flash"])
        assert (await client.complete(cooled, timeout=20)).provider is Provider.GEMINI
        assert [c["provider"] for c in await requests_for(emulator_url, cooled.trace_id)] == ["gemini"]
        assert (await retried).provider is Provider.ANTHROPIC  # retried on anthropic once its cooldown ended


async def test_circuit_opens_and_is_visible(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.GEMINI, LLM_MAX_RETRIES="0", LLM_CIRCUIT_MIN_REQUESTS="5")
    async with LLMClient(settings=settings) as client:
        failing = [_request("gemini-3.8-flash", f"{i} {uuid.uuid4()} [[fault=500]]") for i in range(6)]
        # a short budget: one that starts after the circuit opened fails at once instead of waiting it out
        await asyncio.gather(*(client.complete(r, timeout=5) for r in failing), return_exceptions=True)
        health = await _cli(settings, ["health"])
        assert health.returncode == 0
        gemini = next(line for line in health.stdout.splitlines() if line.startswith("gemini"))
        assert "open" in gemini
        assert gemini.split()[-1] == "1"  # its one live worker, by the heartbeats on Redis's clock
        started = time.perf_counter()
        with pytest.raises(ProviderUnavailableError, match="circuit open") as caught:
            # no fallback, and the circuit stays open past the request's deadline: it fails at once
            await client.complete(_request("gemini-3.8-flash", "while open"), timeout=1.0)
        assert time.perf_counter() - started < 0.5 and caught.value.retry_after > 1


async def test_health_counts_a_worker_live_by_the_heartbeat_rule(fleet: Fleet) -> None:
    settings, [worker] = await fleet(Provider.GEMINI)  # beats every 0.5 s: presumed dead 2.5 s after its last

    async def live() -> str:
        health = await _cli(settings, ["health"], LLM_HEARTBEAT_INTERVAL="0.5")
        return next(line for line in health.stdout.splitlines() if line.startswith("gemini")).split()[-1]

    assert await live() == "1"
    await worker.stop(signal.SIGKILL)
    await asyncio.sleep(3)
    assert await live() == "0"


async def test_an_expired_request_never_reaches_the_provider(
    fleet: Fleet, redis_server: RedisServer, emulator_url: str
) -> None:
    settings = FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"x{uuid.uuid4().hex[:8]}")
    async with LLMClient(settings=settings) as client:
        request = _request("gpt-4.1-mini", "too late")
        await client._submit(request, 0.2)  # queued with a 0.2 s budget, and no worker yet
        await asyncio.sleep(0.3)
        env = worker_env(redis_server.url, emulator_url, LLM_KEY_PREFIX=settings.key_prefix)
        worker = await start_worker(Provider.OPENAI, env)
        try:
            with pytest.raises(DeadlineExceededError, match="before a provider was called"):
                await client.result(request.request_id, timeout=10)
        finally:
            await worker.stop()
    assert await requests_for(emulator_url, request.trace_id) == []


async def test_deadlines_and_stream_timeouts_fire_on_time(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.OPENAI, LLM_MAX_RETRIES="0", LLM_STREAM_FIRST_TOKEN_TIMEOUT="0.5")
    async with LLMClient(settings=settings) as client:
        t0 = time.perf_counter()
        with pytest.raises(DeadlineExceededError):
            await client.complete(_request("gpt-4.1-mini", "slow [[latency_ms=5000]]"), timeout=1.0)
        assert 1.0 <= time.perf_counter() - t0 < 1.1 + 0.1  # the budget, plus the reply's way back
        t0 = time.perf_counter()
        with pytest.raises(ProviderTimeoutError, match="first token"):
            async for _ in client.stream(_request("gpt-4.1-mini", "[[latency_ms=5000]]", stream=True), timeout=5):
                pass
        assert 0.5 <= time.perf_counter() - t0 < 0.7


async def test_sigkill_mid_request_is_rerun_by_another_worker(fleet: Fleet, emulator_url: str) -> None:
    settings, (first, _) = await fleet(Provider.ANTHROPIC, n=2)
    async with LLMClient(settings=settings) as client:
        requests = [_request("claude-haiku-4-5", f"{i} {uuid.uuid4()} [[latency_ms=1500]]") for i in range(6)]
        waiting = [asyncio.create_task(client.complete(r, timeout=30)) for r in requests]
        await asyncio.sleep(0.5)  # both workers are mid-call
        t_kill = time.perf_counter()
        first.proc.kill()
        responses = await asyncio.gather(*waiting)
        recovered_in = time.perf_counter() - t_kill
    assert [r.request_id for r in responses] == [r.request_id for r in requests]  # each ends, once
    calls = [len(await requests_for(emulator_url, r.trace_id)) for r in requests]
    assert set(calls) == {1, 2} and sum(calls) > len(requests)  # the killed worker's calls ran again
    redis = Redis.from_url(settings.redis_url)
    reruns = [await redis.hget(Keys(settings.key_prefix).request(r.request_id), "reruns") for r in requests]
    await redis.aclose()
    assert [int(x or 0) for x in reruns] == [c - 1 for c in calls]  # every second call is recorded
    assert recovered_in < 5 * 0.5 + 1 + 1.5 + 1  # presumed dead after 5 beats, then re-run


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_sigterm_requeues_what_outlives_the_grace_period(fleet: Fleet, emulator_url: str, loop: str) -> None:
    settings, (leaving,) = await fleet(Provider.GEMINI, LLM_SHUTDOWN_GRACE="1", LLM_EVENT_LOOP=loop)
    assert leaving.ready_info["event_loop"] == loop
    async with LLMClient(settings=settings) as client:
        await client.complete(_request("gemini-3.8-flash", "warm up"), timeout=20)
        quick = _request("gemini-3.8-flash", f"{uuid.uuid4()} [[latency_ms=300]]")
        slow = _request("gemini-3.8-flash", f"{uuid.uuid4()} [[latency_ms=3000]]")
        waiting = [asyncio.create_task(client.complete(r, timeout=30)) for r in (quick, slow)]
        await wait_for_calls(emulator_url, slow.trace_id)  # both calls are under way
        leaving.proc.send_signal(signal.SIGTERM)
        assert await leaving.stop() == 0
        env = worker_env(settings.redis_url, emulator_url, LLM_KEY_PREFIX=settings.key_prefix)
        successor = await start_worker(Provider.GEMINI, env)
        try:
            done = await asyncio.gather(*waiting)
        finally:
            await successor.stop()
    assert [r.request_id for r in done] == [quick.request_id, slow.request_id]
    assert len(await requests_for(emulator_url, quick.trace_id)) == 1  # finished within the grace period
    assert len(await requests_for(emulator_url, slow.trace_id)) == 2  # cancelled, requeued, run again


async def _restart_during(server: RedisServer, after_s: float, work: list[asyncio.Task[T]]) -> list[T]:
    await asyncio.sleep(after_s)
    server.kill()  # mid-flight, hard
    await asyncio.sleep(1.0)
    server.start()  # same port, same AOF file
    return await asyncio.gather(*work)


async def test_nothing_is_lost_across_a_redis_restart(fleet: Fleet, restartable_redis: RedisServer) -> None:
    settings, _ = await fleet(Provider.OPENAI, Provider.ANTHROPIC, redis_url=restartable_redis.url)
    async with LLMClient(settings=settings) as client:
        requests = [
            _request("gpt-4.1-mini" if i % 2 else "claude-haiku-4-5", f"{i} [[latency_ms=800]]") for i in range(40)
        ]
        waiting = [asyncio.create_task(client.complete(r, timeout=60)) for r in requests]
        responses = await _restart_during(restartable_redis, 0.4, waiting)
    assert sorted(r.request_id for r in responses) == sorted(r.request_id for r in requests)


async def test_streams_go_on_across_a_redis_restart(fleet: Fleet, restartable_redis: RedisServer) -> None:
    """Tokens that arrive while Redis is down are kept and sent once it is back: every stream ends with
    every token, numbered without a gap."""
    settings, _ = await fleet(Provider.OPENAI, Provider.GEMINI, redis_url=restartable_redis.url)
    async with LLMClient(settings=settings) as client:
        requests = [
            _request(
                "gpt-4.1-mini" if i % 2 else "gemini-3.8-flash", f"{i} [[tokens=30]] [[tokens_per_s=20]]", stream=True
            )
            for i in range(10)
        ]

        async def read(request: LLMRequest) -> list[StreamEvent]:
            return [event async for event in client.events(request, timeout=20)]

        streams = await _restart_during(restartable_redis, 0.5, [asyncio.create_task(read(r)) for r in requests])
    for events in streams:
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        done = events[-1]
        assert isinstance(done, DoneEvent)
        assert "".join(e.text for e in events if isinstance(e, DeltaEvent)) == done.response.content
        assert done.response.usage.completion_tokens == 30


async def test_backpressure_refuses_beyond_the_queue_bound(redis_server: RedisServer) -> None:
    settings = FleetSettings(
        REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"b{uuid.uuid4().hex[:8]}", LLM_MAX_QUEUE_DEPTH=3
    )
    async with LLMClient(settings=settings) as client:
        for i in range(3):
            await client.submit(_request("gemini-3.8-flash", f"{i}"))
        refused = _request("gemini-3.8-flash", "one too many")
        with pytest.raises(QueueFullError, match="gemini queue is full") as caught:
            await client.submit(refused)
    assert caught.value.retryable and caught.value.retry_after > 0
    redis = Redis.from_url(redis_server.url)
    queued = await redis.lrange(Keys(settings.key_prefix).queue("gemini"), 0, -1)  # type: ignore[misc]
    assert len(queued) == 3 and not any(refused.request_id.encode() in e for e in queued)
    assert not await redis.exists(Keys(settings.key_prefix).request(refused.request_id))  # nothing of it is left
    await redis.aclose()


async def test_dead_letters_can_be_shown_and_retried(fleet: Fleet, emulator_url: str) -> None:
    settings, _ = await fleet(Provider.OPENAI, LLM_MAX_RETRIES="0")
    async with LLMClient(settings=settings) as client:
        request = _request("gpt-4.1-mini", f"{uuid.uuid4()} [[fault=500]] [[fail_times=1]]")
        with pytest.raises(ProviderUnavailableError):
            await client.complete(request, timeout=20)
        shown = await _dead_letter_cli(settings, "show", request.request_id)
        assert '"state": "done"' in shown.stdout and "ProviderUnavailableError" in shown.stdout
        retried = await _dead_letter_cli(settings, "retry", request.request_id)
        assert retried.returncode == 0, retried.stderr
        assert (await client.result(request.request_id, timeout=20)).provider is Provider.OPENAI
        again = await _dead_letter_cli(settings, "retry", request.request_id)
        assert again.returncode == 1 and "not a dead letter" in again.stderr
        assert (await _dead_letter_cli(settings, "show", "nope")).returncode == 1


async def test_a_dead_letter_that_fell_back_starts_over_on_its_own_model(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.OPENAI, Provider.GEMINI, LLM_MAX_RETRIES="0")
    async with LLMClient(settings=settings) as client:
        request = _request(
            "gpt-4.1-mini", f"{uuid.uuid4()} [[fault=500]] [[fail_times=2]]", fallbacks=["gemini-3.8-flash"]
        )
        with pytest.raises(ProviderUnavailableError):  # OpenAI failed, then its fallback
            await client.complete(request, timeout=20)
        retried = await _dead_letter_cli(settings, "retry", request.request_id)
        assert retried.returncode == 0, retried.stderr
        response = await client.result(request.request_id, timeout=20)
    assert (response.provider, response.fallback_from) == (Provider.OPENAI, None)


async def _cli(settings: FleetSettings, args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix, **extra}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "llm_fleet", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _dead_letter_cli(settings: FleetSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return await _cli(settings, ["dlq", *args])


async def _lose_a_claim(settings: FleetSettings, worker: Process, request: LLMRequest) -> None:
    """What a claim whose reply was lost (Redis went away) leaves: the job started as the worker's (running,
    its attempt counted) in its hash, its element in the worker's claimed list, and the worker not knowing."""
    body, deadline = request.model_dump_json(), time.time() + 30
    element = f"{request.request_id}\n0\n{deadline}"
    worker_id = str(worker.ready_info["worker_id"])
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.hset(
            Keys(settings.key_prefix).request(request.request_id),
            mapping={
                "body": body,
                "digest": request.digest(),
                "provider": "openai",
                "state": "running",
                "worker": worker_id,
                "attempts": 1,
                "element": element,
                "deadline_at": deadline,
                "enqueued_at": time.time(),
            },
        )
        await redis.lpush(Keys(settings.key_prefix).claimed(worker_id), element)
    finally:
        await redis.aclose()


async def test_a_claim_whose_reply_was_lost_is_adopted(fleet: Fleet, emulator_url: str) -> None:
    """The worker finds a lost claim at its next heartbeat and runs it."""
    settings, (worker,) = await fleet(Provider.OPENAI)
    request = _request("gpt-4.1-mini", "claimed, reply lost")
    await _lose_a_claim(settings, worker, request)
    async with LLMClient(settings=settings) as client:
        assert (await client.result(request.request_id, timeout=10)).request_id == request.request_id
    assert any("claim_adopted" in line for line in worker.lines)
    assert len(await requests_for(emulator_url, request.trace_id)) == 1
    redis = Redis.from_url(settings.redis_url)
    job = await redis.hmget(Keys(settings.key_prefix).request(request.request_id), ["attempts", "reruns"])
    await redis.aclose()
    assert job == [b"1", None]  # its one call is its first attempt, not a re-run
    assert not any("request_rerun" in line for line in worker.lines)


async def test_a_finished_job_redis_forgot_is_adopted_as_a_re_run(fleet: Fleet, emulator_url: str) -> None:
    """Redis crashed and came back without a finish it had acknowledged (AOF fsync'd every second): the
    job is running as the worker's again, in its claimed list. The worker ran it: adopted, it is a re-run
    (the provider was called), recorded and logged, not a silent second call."""
    settings, (worker,) = await fleet(Provider.OPENAI)
    request = _request("gpt-4.1-mini", f"{uuid.uuid4()} finished, then forgotten")
    async with LLMClient(settings=settings) as client:
        await client.complete(request, timeout=10)
    key, worker_id = Keys(settings.key_prefix).request(request.request_id), str(worker.ready_info["worker_id"])
    redis = Redis.from_url(settings.redis_url)
    try:
        element = f"{request.request_id}\n0\n{time.time() + 30}"
        await redis.hdel(key, "result", "finished_at")
        await redis.hset(key, mapping={"state": "running", "element": element, "deadline_at": time.time() + 30})
        await redis.lpush(Keys(settings.key_prefix).claimed(worker_id), element)
        for _ in range(100):
            if await redis.hget(key, "state") == b"done":
                break
            await asyncio.sleep(0.1)
        job = await redis.hmget(key, ["state", "attempts", "reruns"])
    finally:
        await redis.aclose()
    assert job == [b"done", b"2", b"1"]
    assert len(await requests_for(emulator_url, request.trace_id)) == 2
    assert any("request_rerun" in line for line in worker.lines)


async def test_an_adopted_claim_waits_for_a_token_of_its_own(fleet: Fleet, emulator_url: str) -> None:
    """With a fleet-wide limit of 1: a lost claim is found while the worker's token is in use by another job
    (the worker claimed that job with the token the lost claim had taken). The orphan must wait for a token,
    not run beside it."""
    settings, (worker,) = await fleet(Provider.OPENAI, LLM_PROVIDER_CONCURRENCY="1")
    async with aiohttp.ClientSession() as session:
        await session.post(f"{emulator_url}/_emulator/reset")
    orphan = _request("gpt-4.1-mini", f"{uuid.uuid4()} orphan [[latency_ms=100]]")
    async with LLMClient(settings=settings) as client:
        running = _request("gpt-4.1-mini", f"{uuid.uuid4()} holds the token [[latency_ms=2500]]")
        first = asyncio.create_task(client.complete(running, timeout=20))
        await wait_for_calls(emulator_url, running.trace_id)
        await _lose_a_claim(settings, worker, orphan)
        assert (await client.result(orphan.request_id, timeout=15)).request_id == orphan.request_id
        await first
    redis = Redis.from_url(settings.redis_url)
    held = Keys(settings.key_prefix).held(str(worker.ready_info["worker_id"]))
    tokens = await redis.llen(Keys(settings.key_prefix).slots("openai")) + await redis.llen(held)
    await redis.aclose()
    assert any("claim_adopted" in line for line in worker.lines)
    assert (await stats(emulator_url))["max_open"]["openai"] == 1
    assert tokens == 1  # the one token: free or held by the idle worker, neither lost nor doubled


async def test_a_failover_mid_call_loses_nothing_and_calls_the_provider_once(
    fleet: Fleet, emulator_url: str, restartable_redis: RedisServer
) -> None:
    """While a call is under way Redis turns into a read-only replica (a failover), then into a primary again:
    the worker waits it out like a restart, stores the answer once Redis takes writes, and the provider was
    called once (before: the refused finish killed the job's task and the next heartbeat re-ran the job)."""
    settings, _ = await fleet(Provider.OPENAI, redis_url=restartable_redis.url)
    admin = Redis.from_url(restartable_redis.url)
    async with LLMClient(settings=settings) as client:
        request = _request("gpt-4.1-mini", f"{uuid.uuid4()} [[latency_ms=500]]")
        waiting = asyncio.create_task(client.complete(request, timeout=30))
        await wait_for_calls(emulator_url, request.trace_id)
        await admin.execute_command("REPLICAOF", "127.0.0.1", "1")  # writes refused: READONLY
        await asyncio.sleep(3)  # the call ends meanwhile, and six heartbeats go by
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        response = await asyncio.wait_for(waiting, 20)
        during = _request("gpt-4.1-mini", "submitted while Redis is read-only")
        await admin.execute_command("REPLICAOF", "127.0.0.1", "1")
        submitting = asyncio.create_task(client.complete(during, timeout=30))
        await asyncio.sleep(1)
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        after = await asyncio.wait_for(submitting, 20)
    await admin.aclose()
    assert response.request_id == request.request_id
    assert len(await requests_for(emulator_url, request.trace_id)) == 1
    assert after.request_id == during.request_id  # the client's submit waited the failover out too


async def test_a_worker_refused_its_channels_does_not_start(redis_server: RedisServer, emulator_url: str) -> None:
    """An ACL user without channel rights (Redis 7's default for a new user): the worker could not hear
    cancels and pauses, and each finish script would stop at its PUBLISH; it exits saying why."""
    user = f"nochannels-{uuid.uuid4().hex[:8]}"
    direct = Redis.from_url(redis_server.url)
    await direct.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"], reset_channels=True)
    url = f"redis://{user}:pw@127.0.0.1:{redis_server.port}/0"
    try:
        with pytest.raises(RuntimeError, match="exited") as refused:
            await start_worker(Provider.OPENAI, worker_env(url, emulator_url, LLM_KEY_PREFIX=uuid.uuid4().hex[:8]))
    finally:
        await direct.acl_deluser(user)
        await direct.aclose()
    assert "NoPermissionError" in str(refused.value)  # Redis and Valkey word the refusal differently


async def test_a_worker_says_when_redis_may_evict_its_jobs(restartable_redis: RedisServer, emulator_url: str) -> None:
    """A Redis that evicts keys under memory pressure (managed services often default to volatile-lru) may
    drop a queued job's hash: the worker starts, and warns in its log."""
    direct = Redis.from_url(restartable_redis.url)
    await direct.config_set("maxmemory-policy", "volatile-lru")
    env = worker_env(restartable_redis.url, emulator_url, LLM_KEY_PREFIX=uuid.uuid4().hex[:8])
    worker = await start_worker(Provider.OPENAI, env)
    await direct.config_set("maxmemory-policy", "noeviction")
    calm = await start_worker(Provider.OPENAI, env)
    await direct.aclose()
    warned = [json.loads(line) for line in worker.lines if "redis_may_evict" in line]
    calm_warned = [line for line in calm.lines if "redis_may_evict" in line]
    await worker.stop()
    await calm.stop()
    assert [w["maxmemory_policy"] for w in warned] == ["volatile-lru"]
    assert calm_warned == []


async def test_a_redis_gone_silent_is_left_for_new_connections(redis_server: RedisServer, emulator_url: str) -> None:
    """Every connection a worker has to Redis goes silent, open but answering nothing (a failover that moved
    the server's address, a proxy whose backend vanished): the worker drops them once a command is overdue
    and goes on over new ones. Before, its claim waited on the silent connection for as long as TCP would."""
    async with Proxy(redis_server.port) as proxy:
        prefix = uuid.uuid4().hex[:8]
        env = worker_env(f"redis://127.0.0.1:{proxy.port}/0", emulator_url, LLM_KEY_PREFIX=prefix)
        worker = await start_worker(Provider.OPENAI, {**env, "LLM_HEARTBEAT_INTERVAL": "0.5"})
        settings = FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=prefix)
        try:
            async with LLMClient(settings=settings) as client:
                await client.complete(_request("gpt-4.1-mini", "warm up"), timeout=20)
                proxy.silence()
                silenced = time.perf_counter()
                response = await client.complete(_request("gpt-4.1-mini", "after the silence"), timeout=30)
                served_in = time.perf_counter() - silenced
        finally:
            await worker.stop()
    assert response.content
    assert 5 < served_in < 15  # a command overdue after 5 s (beyond its blocking time), seen within a second
    assert any("redis_silent" in line for line in worker.lines)


async def test_a_cancel_sent_while_a_worker_lost_its_channel_still_stops_the_call(
    redis_server: RedisServer, emulator_url: str
) -> None:
    """The worker's connections to Redis are cut mid-call and the cancel is broadcast before it has
    subscribed again: it finds the cancel in the job's flag once it has, and closes the call."""
    async with Proxy(redis_server.port) as proxy:
        prefix = uuid.uuid4().hex[:8]
        env = worker_env(f"redis://127.0.0.1:{proxy.port}/0", emulator_url, LLM_KEY_PREFIX=prefix)
        worker = await start_worker(Provider.OPENAI, env)
        settings = FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=prefix)
        try:
            async with LLMClient(settings=settings) as client:
                request = _request("gpt-4.1-mini", f"{uuid.uuid4()} [[latency_ms=20000]]")
                await client.submit(request)
                await wait_for_calls(emulator_url, request.trace_id)
                proxy.delay_s = 0.3  # what the worker sends on its new connections reaches Redis late
                proxy.cut()
                await asyncio.sleep(0.05)  # Redis has dropped the worker's subscription, and not yet renewed it
                assert await client.cancel(request.request_id)
                started = time.perf_counter()
                with pytest.raises(RequestCancelledError):
                    await client.result(request.request_id, timeout=20)
                stopped_in = time.perf_counter() - started
        finally:
            await worker.stop()
    assert stopped_in < 5  # not the call's 20 s
    assert any('"missed": true' in line and "request_cancelling" in line for line in worker.lines)


async def test_a_request_that_kills_every_worker_it_reaches_stops_being_rerun(fleet: Fleet, emulator_url: str) -> None:
    """Its worker dies mid-call, and the next one too (a poison pill, as an answer that exhausts a worker's
    memory would be): after `LLM_MAX_RERUNS` re-runs the request fails, typed and not retryable, instead of
    taking the remaining workers down one after another."""
    settings, workers = await fleet(Provider.OPENAI, n=3, LLM_MAX_RERUNS="1")
    by_id = {str(w.ready_info["worker_id"]): w for w in workers}
    redis = Redis.from_url(settings.redis_url)
    async with LLMClient(settings=settings) as client:
        request = _request("gpt-4.1-mini", f"{uuid.uuid4()} [[latency_ms=4000]]")
        waiting = asyncio.create_task(client.complete(request, timeout=60))
        killed: set[str] = set()
        for calls in (1, 2):  # kill whichever worker runs it, twice
            await wait_for_calls(emulator_url, request.trace_id, calls)
            for _ in range(200):  # its start script names the worker (the call leaves just before it)
                holder = (
                    await redis.hget(Keys(settings.key_prefix).request(request.request_id), "worker") or b""
                ).decode()
                if holder in by_id and holder not in killed:
                    break
                await asyncio.sleep(0.01)
            killed.add(holder)
            by_id[holder].proc.kill()
        with pytest.raises(WorkerLostError, match="LLM_MAX_RERUNS=1") as lost:
            await waiting
    await redis.aclose()
    assert not lost.value.retryable
    assert len(await requests_for(emulator_url, request.trace_id)) == 2  # no third call


async def test_a_full_redis_pushes_back_and_loses_nothing(
    fleet: Fleet, emulator_url: str, restartable_redis: RedisServer
) -> None:
    """Redis reaches its maxmemory (noeviction) while a call runs: a new request fails at once, typed and
    retryable (back pressure); the running call's answer is stored; the workers' heartbeats go on, so none
    is presumed dead; once Redis has room again, requests flow."""
    settings, workers = await fleet(Provider.OPENAI, n=2, redis_url=restartable_redis.url)
    admin = Redis.from_url(restartable_redis.url)
    async with LLMClient(settings=settings) as client:
        running = _request("gpt-4.1-mini", f"{uuid.uuid4()} [[latency_ms=1000]]")
        waiting = asyncio.create_task(client.complete(running, timeout=30))
        await wait_for_calls(emulator_url, running.trace_id)
        await admin.config_set("maxmemory", 1)  # full: every command that adds to it is refused
        with pytest.raises(FleetUnavailableError, match="out of memory") as full:
            await client.complete(_request("gpt-4.1-mini", "while Redis is full"), timeout=10)
        answered = await asyncio.wait_for(waiting, 10)
        await asyncio.sleep(3.5)  # seven heartbeats: a worker whose beats were refused would be presumed dead
        await admin.config_set("maxmemory", 0)
        after = await client.complete(_request("gpt-4.1-mini", "once there is room"), timeout=20)
        await asyncio.sleep(1.5)  # three heartbeats with room: each would find the other's last beat stale
    await admin.aclose()
    assert full.value.retryable
    assert answered.request_id == running.request_id
    assert len(await requests_for(emulator_url, running.trace_id)) == 1
    assert after.content
    assert not [line for w in workers for line in w.lines if "worker_presumed_dead" in line]
    # the refused claims were asked again less and less often (0.2, 0.4, then each heartbeat: 0.5 s here),
    # not every 0.2 s (some 22 times per worker while Redis was full)
    assert all(sum("claim_failed" in line for line in w.lines) <= 12 for w in workers)
