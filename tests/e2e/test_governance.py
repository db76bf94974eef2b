"""The allowed-models policy with real worker processes, a real Redis and the emulator: changed at run time,
followed by every producer and worker, enforced at submit, at the start of a job and on every fallback."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from jobstore import Keys
from launcher.processes import Process, start_emulator, worker_env
from producer import LLMClient
from schemas.catalog import Provider, catalog
from schemas.errors import BudgetExceededError, InvalidRequestError, ModelNotAllowedError, ProviderUnavailableError
from schemas.policy import Policy
from schemas.request import LLMRequest
from schemas.response import LLMResponse
from schemas.settings import FleetSettings
from tests.e2e.conftest import Fleet, request
from tests.e2e.emulator_api import requests_for
from tests.servers import RedisServer

pytestmark = pytest.mark.e2e


def _policy_cli(settings: FleetSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix}
    return subprocess.run(
        [sys.executable, "-m", "llm_fleet", "policy", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _within(seconds: float, check: object) -> float:
    """How long `check()` took to become true (fails after `seconds`)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not check():  # type: ignore[operator]
        assert loop.time() - start < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.01)
    return loop.time() - start


async def test_a_policy_change_reaches_a_running_producer_and_worker_within_a_second(fleet: Fleet) -> None:
    settings, (worker,) = await fleet(Provider.OPENAI)
    async with LLMClient(settings=settings) as client:
        assert (await client.complete(request("gpt-4.1-mini", "before"), timeout=20)).content
        assert client.policy is not None
        denied = await asyncio.to_thread(_policy_cli, settings, "deny", "gpt-4.1*")
        assert denied.returncode == 0, denied.stderr
        assert "version 1" in denied.stdout and "gpt-4.1-mini-2025-04-14" not in denied.stdout.split("\n")[1]
        store = client.policy
        await _within(1.0, lambda: store.current.version == 1)  # the producer follows
        await _within(1.0, lambda: any('"policy_loaded"' in line and "version 1" in line for line in worker.lines))
        refused = request("gpt-4.1-mini", "after", source_agent="agent-7", session_id="s1")
        with pytest.raises(ModelNotAllowedError) as caught:
            await client.submit(refused)
        assert caught.value.details == {
            "model": "gpt-4.1-mini-2025-04-14",
            "policy_version": 1,
            "request_id": refused.request_id,
            "trace_id": refused.trace_id,
        }
        assert (await client.complete(request("gpt-6-luna", "another model"), timeout=20)).content
    violations = await asyncio.to_thread(_policy_cli, settings, "violations", "--json")
    assert json.loads(violations.stdout) == [
        {"model": "gpt-4.1-mini-2025-04-14", "source_agent": "agent-7", "refused": 1}
    ]
    reset = await asyncio.to_thread(_policy_cli, settings, "reset")
    assert reset.returncode == 0 and "every current and deprecated model" in reset.stdout
    typo = await asyncio.to_thread(_policy_cli, settings, "deny", "gtp-4*")
    assert typo.returncode == 1 and "InvalidRequestError" in typo.stderr and "gtp-4*" in typo.stderr


async def test_a_job_queued_before_a_deny_is_refused_without_a_provider_call(
    fleet: Fleet, emulator_url: str, redis_server: RedisServer
) -> None:
    settings = FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"g{uuid.uuid4().hex[:8]}")
    async with LLMClient(settings=settings) as client:
        queued = request("claude-haiku-4-5", f"{uuid.uuid4()} queued before the deny", source_agent="late")
        await client.submit(queued)  # no anthropic worker yet: it waits on the queue
        assert client.policy is not None
        await client.policy.change(allow=("gpt-*", "gemini-*"))
        await fleet(Provider.ANTHROPIC, prefix=settings.key_prefix)
        with pytest.raises(ModelNotAllowedError, match="claude-haiku-4-5-20251001"):
            await client.result(queued.request_id, timeout=20)
    assert await requests_for(emulator_url, queued.trace_id) == []
    redis = Redis.from_url(settings.redis_url)
    job = await redis.hgetall(Keys(settings.key_prefix).request(queued.request_id))
    counted = await redis.hgetall(Keys(settings.key_prefix).violations())
    await redis.aclose()
    assert int(job.get(b"attempts", b"0")) == 0
    assert counted == {b"claude-haiku-4-5-20251001 late": b"1"}


async def test_a_fallback_never_goes_to_a_model_the_policy_refuses(fleet: Fleet, emulator_url: str) -> None:
    settings, _ = await fleet(Provider.OPENAI, Provider.ANTHROPIC, Provider.GEMINI, LLM_MAX_RETRIES="0")
    async with LLMClient(settings=settings) as client:
        assert client.policy is not None
        slow = "[[latency_ms=600]] [[fault=500]] [[fail_times=1]]"  # the first call fails after the deny below
        failing = request("gpt-4.1-mini", f"{uuid.uuid4()} {slow}", fallbacks=["claude-haiku-4-5", "gemini-3.8-flash"])
        alone = request("gpt-4.1-mini", f"{uuid.uuid4()} {slow}", fallbacks=["claude-haiku-4-5"])
        calls = [asyncio.create_task(client.complete(r, timeout=20)) for r in (failing, alone)]
        await asyncio.sleep(0.2)
        await client.policy.change(deny=("claude-*",))
        served, refused = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(served, LLMResponse), repr(served)
        assert served.provider is Provider.GEMINI and served.fallback_from == "gpt-4.1-mini"
        assert isinstance(refused, ProviderUnavailableError)  # its one fallback is refused: the call's own error
        with pytest.raises(ModelNotAllowedError):  # a denied fallback is refused at submit too
            await client.submit(request("gpt-4.1-mini", "x", fallbacks=["claude-haiku-4-5"]))
    calls = await requests_for(emulator_url, failing.trace_id) + await requests_for(emulator_url, alone.trace_id)
    assert {c["provider"] for c in calls} == {"openai", "gemini"}  # the emulator never saw an anthropic call


async def test_the_starting_policy_comes_from_allowed_models(redis_server: RedisServer) -> None:
    settings = FleetSettings(
        REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"a{uuid.uuid4().hex[:8]}", ALLOWED_MODELS="claude-*"
    )
    async with LLMClient(settings=settings) as client:
        with pytest.raises(ModelNotAllowedError, match="version 0"):
            await client.submit(request("gpt-6-luna", "not a claude"))
        assert await client.submit(request("claude-haiku-5-5", "a claude"))


_NAMES = sorted({n for m in catalog().models for n in (m.id, *m.aliases)})
_PATTERNS = st.one_of(st.sampled_from(_NAMES), st.sampled_from(["gpt-*", "claude-*", "gemini-*", "*flash*", "*"]))


@given(
    allow=st.one_of(st.none(), st.lists(_PATTERNS, max_size=4).map(tuple)),
    deny=st.lists(_PATTERNS, max_size=3).map(tuple),
)
def test_a_policy_never_allows_a_retired_or_denied_model(allow: tuple[str, ...] | None, deny: tuple[str, ...]) -> None:
    allowed = Policy(allow=allow, deny=deny).allowed(catalog().models)
    for model in catalog().models:
        if model.id in allowed:
            assert model.status != "retired"
            names = (model.id, *model.aliases)
            assert not any(fnmatch.fnmatchcase(n, p) for n in names for p in deny)  # nothing a deny pattern matches


async def test_a_request_with_a_tier_runs_on_the_model_chosen_for_it_and_says_why(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.OPENAI, Provider.ANTHROPIC, Provider.GEMINI)
    env = {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix}
    run = [sys.executable, "-m", "llm_fleet"]
    cli = await asyncio.to_thread(
        subprocess.run, [*run, "complete", "--tier", "fast", "--json", "hi"], env=env, capture_output=True, text=True
    )
    answered = json.loads(cli.stdout)
    assert answered["selection"]["tier"] == "fast" and answered["model"] == answered["selection"]["model"]
    assert answered["cost_usd"] is not None and answered["cost_usd"] > 0
    chosen = await asyncio.to_thread(
        subprocess.run,
        [*run, "select", "--tier", "balanced", "--prefer", "gemini", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    selection = json.loads(chosen.stdout)
    assert selection["model"] == "gemini-3.8-flash" and len(selection["fallbacks"]) == 2
    async with LLMClient(settings=settings) as client:
        low = await client.complete(LLMRequest(messages=[{"role": "user", "content": "x"}], task_complexity="low"))
        assert low.selection is not None and low.selection.tier == "fast"
        with pytest.raises(InvalidRequestError, match="LLM_DEFAULT_MODEL"):
            await client.submit(LLMRequest(messages=[{"role": "user", "content": "no model"}]))
    defaulted = settings.model_copy(update={"default_model": "claude-haiku-5-5"})
    async with LLMClient(settings=defaulted) as client:
        served = await client.complete(LLMRequest(messages=[{"role": "user", "content": "x"}]), timeout=20)
        assert served.provider is Provider.ANTHROPIC and served.selection is None


async def test_a_daily_budget_holds_fleet_wide_overshooting_by_at_most_the_requests_in_flight(fleet: Fleet) -> None:
    """Two producers race eight requests at a time through three workers against one source_agent's budget:
    once its spend reaches the budget, its next request is refused before any provider call; the spend
    overshoots by at most what the requests in flight at the crossing cost."""
    settings, _ = await fleet(Provider.OPENAI, n=3)
    in_flight = 4  # per producer
    async with LLMClient(settings=settings) as first, LLMClient(settings=settings) as second:
        probe = await first.complete(request("gpt-6-luna", "a b c [[latency_ms=100]]"), timeout=20)
        cost = probe.cost_usd
        assert cost is not None and cost > 0
        assert first.budgets is not None
        budget = cost * 10.5
        await first.budgets.set("racer", budget)

        async def race(client: LLMClient, count: int) -> list[object]:
            outcomes: list[object] = []
            gate = asyncio.Semaphore(in_flight)

            async def one() -> None:
                async with gate:
                    ask = request("gpt-6-luna", "a b c [[latency_ms=100]]", source_agent="racer")
                    try:
                        outcomes.append(await client.complete(ask, timeout=20))
                    except BudgetExceededError as exc:
                        outcomes.append(exc)

            await asyncio.gather(*(one() for _ in range(count)))
            return outcomes

        results = [o for batch in await asyncio.gather(race(first, 20), race(second, 20)) for o in batch]
        rows = {r["source_agent"]: r for r in await first.budgets.show()}
    served = [r for r in results if isinstance(r, LLMResponse)]
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    spent = rows["racer"]["spent_usd"]
    overshoot = spent - budget
    print(f"budget ${budget:.8f}, spent ${spent:.8f}: overshoot {overshoot / cost:.2f} requests' cost")
    assert len(served) + len(refused) == 40 and refused and len(served) >= 10
    assert spent == pytest.approx(len(served) * cost)
    assert 0 <= overshoot <= 2 * in_flight * cost + 1e-12  # at most the requests in flight at the crossing
    assert refused[0].details["source_agent"] == "racer" and refused[0].details["budget_usd"] == pytest.approx(budget)


async def test_a_self_hosted_endpoint_is_served_by_a_worker_of_its_own(
    redis_server: RedisServer, emulator_url: str, tmp_path: Path
) -> None:
    """A catalog entry naming an OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp's server): its requests wait
    on a queue of their own, which `llm-fleet worker --endpoint NAME` serves. A second emulator's OpenAI face, on
    another port, stands in for the endpoint."""
    local, local_url = await start_emulator()
    catalog_file = tmp_path / "catalog.json"
    entry = {
        "id": "llama-3.3-70b",
        "provider": "openai",
        "aliases": ["llama"],
        "tier": "balanced",
        "price": {"input": 0.0, "output": 0.0},
        "endpoint": {"name": "local-vllm", "base_url": f"{local_url}/v1", "key_env": "LOCAL_VLLM_KEY"},
    }
    catalog_file.write_text(json.dumps({"models": [entry]}))
    prefix = f"e{uuid.uuid4().hex[:8]}"
    shared = {"LLM_KEY_PREFIX": prefix, "LLM_CATALOG_FILE": str(catalog_file)}
    env = {**worker_env(redis_server.url, emulator_url, **shared), "LOCAL_VLLM_KEY": "a-local-key"}
    worker = await Process.start(
        ["worker", "--endpoint", "local-vllm"], name="endpoint worker", ready_event="worker_ready", env=env
    )
    try:
        assert worker.ready_info["queue"] == f"{prefix}:queue:local-vllm"
        caller = {**os.environ, "REDIS_URL": redis_server.url, **shared}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "llm_fleet", "complete", "--model", "llama", "--json", "hello there"],
            env=caller,
            capture_output=True,
            text=True,
        )
        answer = json.loads(done.stdout)
        assert answer["model"] == "llama-3.3-70b" and answer["cost_usd"] == 0.0, done.stderr
        assert len(await requests_for(local_url, answer["trace_id"])) == 1  # the endpoint answered
        assert await requests_for(emulator_url, answer["trace_id"]) == []  # not OpenAI's own API
    finally:
        await worker.stop()
        await local.stop()
    unknown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "llm_fleet", "worker", "--endpoint", "nowhere"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert (
        unknown.returncode == 1 and "no model in the catalog is served by an endpoint named 'nowhere'" in unknown.stderr
    )


async def test_a_job_queued_before_its_agent_ran_out_of_budget_is_refused_at_its_start(
    fleet: Fleet, emulator_url: str, redis_server: RedisServer
) -> None:
    settings = FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"b{uuid.uuid4().hex[:8]}")
    async with LLMClient(settings=settings) as client:
        queued = request("gpt-6-luna", f"{uuid.uuid4()} queued before the budget", source_agent="spender")
        await client.submit(queued)  # no worker yet: it waits on the queue
        assert client.budgets is not None
        await client.budgets.set("spender", 0.0)  # spent (0) has reached it
        await fleet(Provider.OPENAI, prefix=settings.key_prefix)
        with pytest.raises(BudgetExceededError) as refused:
            await client.result(queued.request_id, timeout=20)
    assert refused.value.details == {"source_agent": "spender", "spent_usd": 0.0, "budget_usd": 0.0}
    assert await requests_for(emulator_url, queued.trace_id) == []
