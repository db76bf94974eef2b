"""A worker's Prometheus metrics, scraped from a real worker process over HTTP after real requests."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import AuthenticationError
from schemas.settings import FleetSettings
from tests.e2e.conftest import Fleet, request
from tests.servers import RedisServer

pytestmark = pytest.mark.e2e

MODEL = "gpt-4.1-mini-2025-04-14"
_BOUNDED = {"provider", "model", "status", "token_type", "error_type", "source_agent", "le"}


async def test_a_worker_counts_its_requests_tokens_errors_retries_and_cost(fleet: Fleet) -> None:
    settings, (worker,) = await fleet(Provider.OPENAI, LLM_METRICS_PORT="0")
    url = str(worker.ready_info["metrics"]).replace("0.0.0.0", "127.0.0.1")
    async with LLMClient(settings=settings) as client:
        await client.complete(request("gpt-4.1-mini", "one", source_agent="agent-m"), timeout=20)
        await client.complete(request("gpt-4.1-mini", f"{uuid.uuid4()} [[fault=503]] [[fail_times=1]]"), timeout=20)
        with pytest.raises(AuthenticationError):
            await client.complete(request("gpt-4.1-mini", f"{uuid.uuid4()} [[fault=keyshown]]"), timeout=20)
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("llm_")
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted({"provider": "openai", **labels}.items()))), 0.0)

    assert value("llm_requests_total", model=MODEL, status="ok") == 2
    assert value("llm_requests_total", model=MODEL, status="error") == 1
    assert value("llm_errors_total", model=MODEL, error_type="AuthenticationError") == 1
    assert value("llm_dead_letters_total", model=MODEL) == 1
    assert value("llm_retries_total", model=MODEL) == 1
    assert value("llm_tokens_total", model=MODEL, token_type="prompt") > 0
    assert value("llm_tokens_total", model=MODEL, token_type="completion") == 24  # 12 a reply
    assert value("llm_cost_usd_total", model=MODEL, source_agent="agent-m") > 0
    assert value("llm_requests_duration_seconds_count", model=MODEL) == 3
    assert value("llm_active_requests") == 0
    labels = {k for (_, items) in samples for k, _ in items}
    assert labels <= _BOUNDED, labels - _BOUNDED  # never a request_id or a trace_id


async def test_a_worker_times_the_queue_wait_and_a_streams_first_token(fleet: Fleet, redis_server: RedisServer) -> None:
    """Two requests queued while no worker runs, then served: their wait is at least that long; a stream whose
    provider answers after 300 ms: its first token no sooner."""
    settings = FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"w{uuid.uuid4().hex[:8]}")
    async with LLMClient(settings=settings) as client:
        waiting = [await client.submit(request("gpt-4.1-mini", f"queued {i}")) for i in range(2)]
        await asyncio.sleep(0.5)  # the time they wait, with no worker to claim them
        _, (worker,) = await fleet(Provider.OPENAI, prefix=settings.key_prefix, LLM_METRICS_PORT="0")
        for request_id in waiting:
            await client.result(request_id, timeout=20)
        tokens = client.stream(request("gpt-4.1-mini", "slow [[latency_ms=300]] [[tokens=5]]", stream=True), timeout=20)
        assert "".join([t async for t in tokens]).startswith("Echo:")
    url = str(worker.ready_info["metrics"]).replace("0.0.0.0", "127.0.0.1")
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    labels = {"provider": "openai", "model": MODEL}

    def sample(family: str, suffix: str, **extra: str) -> float:
        return next(
            s.value for s in families[family].samples if s.name == family + suffix and s.labels == {**labels, **extra}
        )

    assert sample("llm_queue_wait_seconds", "_count") == 3
    assert sample("llm_queue_wait_seconds", "_bucket", le="0.5") == 1  # the stream, claimed at once
    assert sample("llm_queue_wait_seconds", "_sum") >= 2 * 0.5
    assert sample("llm_time_to_first_token_seconds", "_count") == 1  # streams only
    assert sample("llm_time_to_first_token_seconds", "_bucket", le="0.25") == 0  # not before the provider answered
    assert sample("llm_time_to_first_token_seconds", "_bucket", le="5.0") == 1
