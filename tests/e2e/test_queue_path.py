"""The queue path end to end: real Redis, real worker processes, the real SDKs against the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from jobstore import Keys
from launcher.processes import Process, start_worker, worker_env
from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import (
    ContentFilteredError,
    MalformedJobError,
    MalformedResponseError,
    OverloadedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from schemas.request import LLMRequest
from schemas.settings import FleetSettings
from tests.e2e.conftest import job_fields
from tests.e2e.emulator_api import requests_for
from tests.servers import RedisServer

pytestmark = pytest.mark.e2e

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}


def _request(model: str, text: str = "hello there", **kw: object) -> LLMRequest:
    return LLMRequest(model=model, messages=[{"role": "user", "content": text}], **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("provider", list(Provider))
async def test_each_provider_answers_through_redis(
    provider: Provider, client: LLMClient, workers: dict[Provider, Process], emulator: str
) -> None:
    request = LLMRequest(
        model=MODELS[provider],
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "tell me [[tokens=7]]"}],
        source_agent="planner",
        session_id="s-1",
    )
    response = await client.complete(request, timeout=20)
    assert workers[provider].ready_info["event_loop"] == "uvloop"  # the default
    assert response.provider is provider
    assert response.usage.completion_tokens == 7
    assert response.usage.total_tokens == response.usage.prompt_tokens + 7
    assert response.finish_reason == "stop"
    assert response.content.startswith("Echo:")
    assert (response.request_id, response.trace_id) == (request.request_id, request.request_id)
    assert (response.source_agent, response.session_id) == ("planner", "s-1")
    [seen] = await requests_for(emulator, request.trace_id)
    assert seen["headers"]["x-source-agent"] == "planner" and seen["headers"]["x-session-id"] == "s-1"
    assert "emulator-key" not in response.model_dump_json()


async def test_duplicate_request_id_calls_the_provider_once(
    client: LLMClient, workers: dict[Provider, Process], emulator: str, fleet_settings: FleetSettings
) -> None:
    request = _request(MODELS[Provider.OPENAI], "once please [[latency_ms=200]]")
    async with LLMClient(settings=fleet_settings) as other:
        first, second = await asyncio.gather(
            client.complete(request, timeout=20), other.complete(request.model_copy(), timeout=20)
        )
    again = await client.complete(request.model_copy(), timeout=20)
    assert first.content == second.content == again.content
    assert len(await requests_for(emulator, request.trace_id)) == 1


async def test_calls_sharing_a_trace_get_their_own_answers(
    client: LLMClient, workers: dict[Provider, Process], emulator: str
) -> None:
    trace = uuid.uuid4().hex
    one = _request(MODELS[Provider.ANTHROPIC], "first question", trace_id=trace)
    two = _request(MODELS[Provider.GEMINI], "second question", trace_id=trace)
    a, b = await asyncio.gather(client.complete(one, timeout=20), client.complete(two, timeout=20))
    assert "first" in a.content and "second" in b.content
    assert a.trace_id == b.trace_id == trace and a.request_id != b.request_id
    assert len(await requests_for(emulator, trace)) == 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", RateLimitedError),
        ("529", OverloadedError),
        ("500", ProviderUnavailableError),
        ("malformed", MalformedResponseError),
    ],
)
async def test_provider_failures_reach_the_caller_typed(
    fault: str, error: type[Exception], client: LLMClient, workers: dict[Provider, Process]
) -> None:
    model = MODELS[Provider.ANTHROPIC]
    with pytest.raises(error) as caught:
        await client.complete(_request(model, f"x [[fault={fault}]] [[retry_after=2]]"), timeout=20)
    if fault == "429":
        assert caught.value.retry_after == 2.0  # type: ignore[attr-defined]
        assert caught.value.retryable  # type: ignore[attr-defined]
    assert "emulator-key" not in str(caught.value)


async def test_a_blocked_prompt_is_a_typed_error_and_a_filtered_answer_a_response(
    client: LLMClient, workers: dict[Provider, Process]
) -> None:
    with pytest.raises(ContentFilteredError):
        await client.complete(_request(MODELS[Provider.GEMINI], "bad [[block]]"), timeout=20)
    response = await client.complete(_request(MODELS[Provider.OPENAI], "bad [[block]]"), timeout=20)
    assert response.finish_reason == "content_filter"


async def test_provider_rules_are_applied_before_the_call(
    client: LLMClient, workers: dict[Provider, Process], emulator: str
) -> None:
    """The emulator refuses what the real APIs refuse: a reasoning model given max_tokens, an Anthropic call
    without max_tokens. The adapters translate, so both succeed."""
    reasoning = _request("gpt-5-mini", "think [[tokens=30]]", max_tokens=10)
    response = await client.complete(reasoning, timeout=20)
    assert response.finish_reason == "length" and response.usage.completion_tokens == 10
    [sent] = await requests_for(emulator, reasoning.trace_id)
    assert sent["body"]["max_completion_tokens"] == 10 and "max_tokens" not in sent["body"]
    plain = _request(MODELS[Provider.ANTHROPIC], "no max tokens given")
    assert (await client.complete(plain, timeout=20)).finish_reason == "stop"
    [sent] = await requests_for(emulator, plain.trace_id)
    assert sent["body"]["max_tokens"] == 4096 and sent["body"]["model"] == "claude-haiku-4-5-20251001"


async def test_a_malformed_job_fails_alone_and_the_worker_keeps_serving(
    client: LLMClient, workers: dict[Provider, Process], fleet_settings: FleetSettings
) -> None:
    keys = Keys(fleet_settings.key_prefix)
    redis = Redis.from_url(fleet_settings.redis_url)
    try:
        for bad_id, body in (("bad-json", "{not json"), ("bad-request", json.dumps({"model": "gpt-4.1-mini"}))):
            element = f"{bad_id}\n0\n0"
            await redis.hset(
                keys.request(bad_id),
                mapping={"body": body, "digest": "x", "provider": "openai", "state": "queued", "element": element},
            )
            await redis.lpush(keys.queue("openai"), element)
        for bad_id in ("bad-json", "bad-request"):
            with pytest.raises(MalformedJobError, match="not a valid request"):
                await client.result(bad_id, timeout=20)
    finally:
        await redis.aclose()
    assert (await client.complete(_request(MODELS[Provider.OPENAI]), timeout=20)).provider is Provider.OPENAI


async def test_cli_complete_json_and_errors(workers: dict[Provider, Process], fleet_settings: FleetSettings) -> None:
    env = {**os.environ, "REDIS_URL": fleet_settings.redis_url, "LLM_KEY_PREFIX": fleet_settings.key_prefix}
    run = [sys.executable, "-m", "llm_fleet", "complete"]
    ok = await asyncio.to_thread(
        subprocess.run,
        [*run, "--model", "gemini-3.8-flash", "--json", "hi [[tokens=3]]"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["usage"]["completion_tokens"] == 3
    piped = await asyncio.to_thread(
        subprocess.run,
        [*run, "--model", "gpt-4.1-mini", "--system", "terse"],
        input="from stdin",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0 and "from stdin" in piped.stdout
    unknown = await asyncio.to_thread(
        subprocess.run,
        [*run, "--model", "gpt-4.1-mni", "--json", "hi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert json.loads(unknown.stdout)["error"]["type"] == "UnknownModelError"
    assert "gpt-4.1-mni" in unknown.stderr
    usage = await asyncio.to_thread(
        subprocess.run, [*run, "--temperature", "hot"], env=env, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2


async def test_a_backlog_is_claimed_many_jobs_per_round_trip(tmp_path: Path, emulator: str) -> None:
    """200 jobs queued before their worker starts: its first claim waits (BLMOVE), its first start script
    says 199 are behind it, and one script claims them."""
    server = RedisServer(tmp_path)  # our own, so that no other worker's claims are counted
    server.start()
    try:
        settings = FleetSettings(REDIS_URL=server.url, LLM_KEY_PREFIX="backlog")
        async with LLMClient(settings=settings) as client:
            requests = [_request(MODELS[Provider.OPENAI], f"backlog {i}") for i in range(200)]
            for request in requests:
                await client.submit(request)
            worker = await start_worker(Provider.OPENAI, worker_env(server.url, emulator, LLM_KEY_PREFIX="backlog"))
            try:
                done = await asyncio.gather(*(client.result(r.request_id, timeout=30) for r in requests))
            finally:
                await worker.stop()
        redis = Redis.from_url(server.url)
        claims = (await redis.info("commandstats"))["cmdstat_blmove"]["calls"]
        await redis.aclose()
    finally:
        server.stop()
    assert [r.request_id for r in done] == [r.request_id for r in requests]
    assert claims < 20  # 200 jobs; the rest of the BLMOVEs are the idle worker's, one per heartbeat


async def test_a_worker_without_its_key_refuses_to_start(fleet_settings: FleetSettings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["REDIS_URL"] = fleet_settings.redis_url
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "llm_fleet", "worker", "--provider", "anthropic"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "ANTHROPIC_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_worker_refuses_a_concurrency_below_one(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(["--provider", "openai", "--concurrency", value]) == 1
    assert "greater than 0" in capsys.readouterr().err


async def test_a_job_and_a_stream_written_by_the_previous_version_are_served_and_replayed(
    client: LLMClient, workers: dict[Provider, Process], fleet_settings: FleetSettings
) -> None:
    """The wire and the keys did not change when the job model moved to `jobstore`: a job queued as the version
    before wrote it (its hash's fields, its element) is served, and a stream it kept is replayed whole."""
    keys = Keys(fleet_settings.key_prefix)
    redis = Redis.from_url(fleet_settings.redis_url)
    try:
        old = _request(MODELS[Provider.ANTHROPIC], "queued by the version before")
        deadline = f"{time.time() + 30:.6f}"
        element = f"{old.request_id}\n0\n{deadline}"
        fields = job_fields(
            old, "anthropic", state="queued", reply="", enqueued_at=f"{time.time():.6f}", deadline_at=deadline
        )
        await redis.hset(keys.request(old.request_id), mapping={**fields, "element": element})
        await redis.expire(keys.request(old.request_id), 3600)
        await redis.lpush(keys.queue("anthropic"), element)
        served = await client.result(old.request_id, timeout=20)
        assert served.request_id == old.request_id and served.content.startswith("Echo:")

        kept = _request(MODELS[Provider.OPENAI], "streamed by the version before", stream=True)
        response = served.model_copy(update={"request_id": kept.request_id, "content": "Hello there"})
        for event in (
            {"type": "delta", "seq": 1, "text": "Hello"},
            {"type": "delta", "seq": 2, "text": " there"},
            {"type": "done", "seq": 3, "response": json.loads(response.model_dump_json())},
        ):
            await redis.xadd(keys.events(kept.request_id), {"e": json.dumps(event)})
        await redis.hset(
            keys.request(kept.request_id),
            mapping=job_fields(kept, "openai", state="done", result='{"ok":' + response.model_dump_json() + "}"),
        )
        replayed = [event async for event in client.subscribe(kept.request_id, timeout=5)]
    finally:
        await redis.aclose()
    assert [e.seq for e in replayed] == [1, 2, 3]
    assert "".join(e.text for e in replayed if e.type == "delta") == "Hello there"
