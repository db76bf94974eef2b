"""Faults found by probing the fleet from outside, as a new user and an operator would: each one here as it was
found, with real worker processes, a real Redis server and the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from jobstore import Keys
from launcher.processes import worker_env
from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import (
    AuthenticationError,
    FleetAccessDeniedError,
    InvalidRequestError,
    MalformedJobError,
    ResultTimeoutError,
    WorkerLostError,
)
from schemas.events import ErrorEvent, StreamEvent
from schemas.response import LLMResponse
from schemas.settings import FleetSettings
from tests.e2e.conftest import Fleet, job_fields, request
from tests.e2e.emulator_api import wait_for_calls
from tests.servers import RedisServer

pytestmark = pytest.mark.e2e


def _cli(args: list[str], env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "llm_fleet", *args], env=env, input=stdin, capture_output=True, timeout=60, check=False
    )


async def test_a_request_submitted_while_redis_restarts_ends_with_its_outcome(
    fleet: Fleet, restartable_redis: RedisServer
) -> None:
    """Found: 17 of 20 callers told `RequestNotFoundError` although their jobs ran and stored `ok`: the
    channel's re-read after the reconnect found no job yet and ended the wait while the submit was still
    riding out the restart."""
    settings, _ = await fleet(Provider.OPENAI, redis_url=restartable_redis.url)
    async with LLMClient(settings=settings) as client:
        restartable_redis.kill()
        calls = []
        for i in range(30):  # spread over the gap, so their retries and the channel's fall at every moment
            calls.append(asyncio.create_task(client.complete(request("gpt-4.1-mini", f"{i} in the gap"), timeout=30)))
            await asyncio.sleep(0.1)
        restartable_redis.start()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    failed = [repr(o) for o in outcomes if not isinstance(o, LLMResponse)]
    assert not failed, failed


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password="s3cret-pass")
    server.start()
    yield server
    server.stop()


async def test_a_redis_that_wants_a_password_is_refused_at_once_typed(locked_redis: RedisServer) -> None:
    """Found: without the password `LLMClient()` was still connecting after 45 s; a wrong one took 16 s and
    said "no answer in time". A refusal of our credentials is final."""
    for url in (
        f"redis://127.0.0.1:{locked_redis.port}/0",  # no password
        f"redis://:wrong@127.0.0.1:{locked_redis.port}/0",  # a wrong one
    ):
        t0 = time.perf_counter()
        with pytest.raises(FleetAccessDeniedError, match="refused") as refused:
            async with LLMClient(redis_url=url):
                pass
        assert time.perf_counter() - t0 < 2, url
        assert not refused.value.retryable and "wrong" not in str(refused.value)


async def test_the_cli_and_a_worker_stop_at_once_on_a_refused_password(
    locked_redis: RedisServer, emulator_url: str
) -> None:
    """Found: `llm-fleet complete` never returned (19 `channels_lost` lines a second); a worker exited after
    36 s with a 70-line traceback. Both now stop at once, with one line saying why."""
    url = f"redis://127.0.0.1:{locked_redis.port}/0"
    t0 = time.perf_counter()
    done = await asyncio.to_thread(
        _cli, ["complete", "--json", "--model", "gpt-4.1-mini", "hi"], {**os.environ, "REDIS_URL": url}
    )
    assert time.perf_counter() - t0 < 10
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["type"] == "FleetAccessDeniedError"
    assert len(done.stderr.decode().strip().splitlines()) == 1, done.stderr

    env = {**os.environ, **worker_env(url, emulator_url)}
    t0 = time.perf_counter()
    worker = await asyncio.to_thread(_cli, ["worker", "--provider", "openai"], env)
    assert time.perf_counter() - t0 < 10
    lines = worker.stderr.decode().strip().splitlines()
    assert worker.returncode != 0
    assert len(lines) == 1 and "redis_refused" in lines[0] and "Traceback" not in lines[0], lines


async def test_text_that_is_not_unicode_is_refused_typed_before_queueing(
    redis_server: RedisServer, fleet_settings: FleetSettings
) -> None:
    """Found: invalid UTF-8 on the CLI's stdin, or a lone surrogate through the API, raised a raw
    `PydanticSerializationError` (a traceback, no JSON error object)."""
    env = {**os.environ, "REDIS_URL": redis_server.url, "LLM_KEY_PREFIX": fleet_settings.key_prefix, "LC_ALL": "C"}
    done = await asyncio.to_thread(_cli, ["complete", "--json", "--model", "gpt-4.1-mini"], env, b"hi \xff")
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert json.loads(done.stdout)["error"]["type"] == "InvalidRequestError"
    async with LLMClient(settings=fleet_settings) as client:
        with pytest.raises(InvalidRequestError, match="not valid Unicode"):
            await client.submit(request("gpt-4.1-mini", "hi \ud800"))
    redis = Redis.from_url(redis_server.url)
    assert await redis.llen(Keys(fleet_settings.key_prefix).queue("openai")) == 0  # nothing was queued
    await redis.aclose()


async def test_a_stalled_stream_past_its_deadline_ends_with_its_outcome(fleet: Fleet) -> None:
    """Found: `events(timeout=5)` on a stalled stream ended with the reader's own `ResultTimeoutError` 17 times
    in 20, where `complete(timeout=5)` got the stored `DeadlineExceededError` 20 in 20."""
    settings, _ = await fleet(Provider.OPENAI)
    async with LLMClient(settings=settings.model_copy(update={"request_timeout_s": 2.0})) as client:
        stalled = [request("gpt-4.1-mini", f"{i} {uuid.uuid4()} [[fault=stall]]", stream=True) for i in range(8)]

        async def read(events: object) -> list[StreamEvent]:
            return [event async for event in events]  # type: ignore[attr-defined]

        await client.submit(stalled[0])  # with the same 2 s, so that a second reader can attach (events() attaches)
        readers = [read(client.events(r, timeout=2)) for r in stalled]
        readers.append(read(client.subscribe(stalled[0].request_id, timeout=2)))  # a second reader, attached
        ended = await asyncio.gather(*readers, return_exceptions=True)
    for events in ended:
        assert not isinstance(events, BaseException), repr(events)
        assert isinstance(events[-1], ErrorEvent) and events[-1].error["type"] == "DeadlineExceededError"


async def test_a_key_shown_in_part_is_redacted_everywhere(fleet: Fleet, restartable_redis: RedisServer) -> None:
    """Found: a provider error that echoed the key as `sk-SENTI...bc123xyz` reached results, dead letters,
    `dlq list`, worker logs and the AOF."""
    key = "sk-SENTINEL-0123456789bc123xyz"
    settings, (worker,) = await fleet(Provider.OPENAI, redis_url=restartable_redis.url, OPENAI_API_KEY=key)
    async with LLMClient(settings=settings) as client:
        refused = request("gpt-4.1-mini", f"{uuid.uuid4()} [[fault=keyshown]]")
        with pytest.raises(AuthenticationError) as caught:
            await client.complete(refused, timeout=20)
    env = {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix}
    listed = await asyncio.to_thread(_cli, ["dlq", "list"], env)
    shown = await asyncio.to_thread(_cli, ["dlq", "show", refused.request_id], env)
    assert refused.request_id in listed.stdout.decode() and b"AuthenticationError" in shown.stdout
    redis = Redis.from_url(settings.redis_url)
    await redis.bgrewriteaof()
    await asyncio.sleep(0.5)
    await redis.aclose()
    aof = b"".join(p.read_bytes() for p in restartable_redis.workdir.rglob("*.aof*") if p.is_file())
    assert b"[redacted]" in aof  # the error is in the AOF, redacted
    for fragment in (key[:8], key[-8:]):
        for where, text in (
            ("error", str(caught.value)),
            ("dlq list", listed.stdout.decode()),
            ("dlq show", shown.stdout.decode()),
            ("worker log", "\n".join(worker.lines)),
            ("aof", aof.decode(errors="replace")),
        ):
            assert fragment not in text, where


async def test_a_queue_element_the_worker_cannot_route_ends_as_a_dead_letter(fleet: Fleet) -> None:
    """Found: a valid job whose queue element names a route that does not exist (`id\\n7\\n0`) looped forever,
    `IndexError` and `claim_adopted` every heartbeat; and a malformed job's dead letter counted a call never
    made."""
    settings, (worker,) = await fleet(Provider.OPENAI)
    keys = Keys(settings.key_prefix)
    redis = Redis.from_url(settings.redis_url)
    async with LLMClient(settings=settings) as client:
        body = request("gpt-4.1-mini", "routed nowhere")
        element = f"{body.request_id}\n7\n0"
        await redis.hset(
            keys.request(body.request_id),
            mapping=job_fields(body, "openai", state="queued", element=element),
        )
        await redis.lpush(keys.queue("openai"), element)
        with pytest.raises(MalformedJobError, match="route 7"):
            await client.result(body.request_id, timeout=10)
    job = await redis.hgetall(keys.request(body.request_id))
    dead = await redis.zscore(keys.dead(), body.request_id)
    claimed = await redis.keys(f"{keys.prefix}:claimed:*")
    held = [await redis.llen(k) for k in claimed]
    await redis.aclose()
    assert dead is not None and job[b"state"] == b"done"
    assert int(job.get(b"attempts", b"0")) == 0  # no provider call was made
    assert sum(held) == 0  # nothing left claimed
    assert not any("request_task_failed" in line for line in worker.lines)


async def test_garbage_on_a_queue_is_logged_once_and_counted(fleet: Fleet) -> None:
    """Found: garbage pushed onto a queue was dropped without a trace."""
    settings, (worker,) = await fleet(Provider.GEMINI)
    redis = Redis.from_url(settings.redis_url)
    await redis.lpush(Keys(settings.key_prefix).queue("gemini"), b"no-such-job\n0\n0", b"\xff\xfe junk")
    async with LLMClient(settings=settings) as client:  # and the worker goes on serving
        assert (await client.complete(request("gemini-3.8-flash", "after the garbage"), timeout=20)).content
    dropped = await redis.get(Keys(settings.key_prefix).dropped("gemini"))
    await redis.aclose()
    assert dropped == b"2"
    logged = [line for line in worker.lines if "queue_element_dropped" in line]
    assert len(logged) == 2 and "no-such-job" in logged[0] + logged[1]
    env = {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix}
    health = (await asyncio.to_thread(_cli, ["health"], env)).stdout.decode().splitlines()
    assert "dropped" in health[0] and health[3].split()[-2] == "2"  # the gemini row, before its workers


async def test_a_killed_stream_counts_the_one_call_it_made(fleet: Fleet, emulator_url: str) -> None:
    """Found: a SIGKILLed stream recorded attempts 2 / reruns 1 for 1 provider call (a stream is never re-run)."""
    settings, workers = await fleet(Provider.ANTHROPIC, n=2)
    async with LLMClient(settings=settings) as client:
        streamed = request("claude-haiku-4-5", f"{uuid.uuid4()} [[tokens=60]] [[tokens_per_s=10]]", stream=True)
        reading = asyncio.create_task(_drain(client.events(streamed, timeout=20)))
        await wait_for_calls(emulator_url, streamed.trace_id)
        redis = Redis.from_url(settings.redis_url)
        running_on = (await redis.hget(Keys(settings.key_prefix).request(streamed.request_id), "worker")).decode()
        victim = next(w for w in workers if w.ready_info["worker_id"] == running_on)
        victim.proc.send_signal(signal.SIGKILL)
        events = await reading
    job = await redis.hgetall(Keys(settings.key_prefix).request(streamed.request_id))
    await redis.aclose()
    assert isinstance(events[-1], ErrorEvent) and events[-1].error["type"] == WorkerLostError.__name__
    assert (int(job[b"attempts"]), int(job.get(b"reruns", b"0"))) == (1, 0)


async def _drain(events: object) -> list[StreamEvent]:
    return [event async for event in events]  # type: ignore[attr-defined]


async def test_max_tokens_beyond_the_models_limit_is_refused_before_queueing(
    redis_server: RedisServer, fleet_settings: FleetSettings
) -> None:
    """Found: `max_tokens` of 10⁹ (or 2⁶³) went to the provider."""
    async with LLMClient(settings=fleet_settings) as client:
        for max_tokens in (10**9, 2**63):
            with pytest.raises(InvalidRequestError, match="more than model 'gpt-4.1-mini-2025-04-14' writes"):
                await client.submit(request("gpt-4.1-mini", "long", max_tokens=max_tokens))


async def test_a_wait_with_no_live_worker_names_the_redis_it_used(redis_server: RedisServer) -> None:
    """The default REDIS_URL may be another team's Redis: a caller whose request waits with no worker is told
    which Redis it used (without its password)."""
    settings = FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"w{uuid.uuid4().hex[:8]}")
    async with LLMClient(settings=settings) as client:
        with pytest.raises(ResultTimeoutError, match=f"redis://127.0.0.1:{redis_server.port}/0"):
            await client.complete(request("gpt-4.1-mini", "nobody serves this"), timeout=0.3)
