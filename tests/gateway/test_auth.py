"""Bearer tokens: refusals that tell nothing, each token's source_agent (budgets count per token), tokens stored
hashed in Redis (`llm-fleet tokens`), and the loopback-only default when no token is configured."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import pytest
from redis.asyncio import Redis

from jobstore import Keys
from jobstore.budgets import Budgets
from schemas.catalog import Provider
from schemas.settings import FleetSettings
from tests.gateway.conftest import MODELS, OTHER_TOKEN, start_gateway

pytestmark = pytest.mark.e2e

HELLO = {"model": MODELS[Provider.OPENAI], "messages": [{"role": "user", "content": "auth [[tokens=2]]"}]}


async def _cli(settings: FleetSettings, *args: str, **extra: str) -> tuple[int, str, str]:
    env = {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix, **extra}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "llm_fleet", *args, env=env, stdout=-1, stderr=-1)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdDp0ZXN0"}, {"Authorization": "Bearer"}],
)
async def test_no_valid_token_is_a_401_that_tells_nothing_else(gateway_url: str, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers) as anonymous:
        answers = [
            await anonymous.post("/v1/chat/completions", json=HELLO),
            await anonymous.post("/rpc", content=b"{not json"),
            await anonymous.get("/v1/requests/anything"),
            await anonymous.get("/no/such/route"),
            await anonymous.post("/v1/requests", content=b"x" * 100_000),  # over the body limit: still 401
        ]
    assert {a.status_code for a in answers} == {401}
    assert len({a.content for a in answers}) == 1  # the same words whatever was asked
    assert answers[0].headers["www-authenticate"].startswith("Bearer")
    assert "x-request-id" not in answers[0].headers


async def test_the_token_agent_overrides_what_the_body_and_headers_say(gateway_url: str) -> None:
    headers = {"Authorization": f"Bearer {OTHER_TOKEN}", "X-Source-Agent": "someone-else"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=20) as http:
        answer = await http.post(
            "/rpc",
            json={
                "jsonrpc": "2.0",
                "method": "llm.complete",
                "id": 1,
                "params": {**HELLO, "source_agent": "claimed-agent"},
            },
        )
    assert answer.json()["result"]["source_agent"] == "agent-b"
    assert answer.headers["x-source-agent"] == "agent-b"


async def test_budgets_count_per_token(gateway_url: str, fleet_settings: FleetSettings) -> None:
    redis = Redis.from_url(fleet_settings.redis_url)
    try:
        await Budgets(redis, Keys(fleet_settings.key_prefix)).set("agent-broke", 0.0)
        token_of = await _cli(fleet_settings, "tokens", "add", "agent-broke", "--label", "budget test")
        token = token_of[1].strip()
        async with httpx.AsyncClient(base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}) as http:
            answer = await http.post("/v1/chat/completions", json={**HELLO})
        assert answer.status_code == 402
        error = answer.json()["error"]
        assert (error["code"], error["type"], error["source_agent"]) == (
            "BudgetExceededError",
            "insufficient_quota",
            "agent-broke",
        )
    finally:
        await redis.aclose()


async def test_tokens_in_redis_add_list_revoke(gateway_url: str, fleet_settings: FleetSettings) -> None:
    code, out, err = await _cli(fleet_settings, "tokens", "add", "agent-stored", "--label", "ci")
    token = out.strip()
    assert code == 0 and token.startswith("lf-") and "shown this once" in err
    async with httpx.AsyncClient(base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}) as http:
        answer = await http.post("/rpc", json={"jsonrpc": "2.0", "method": "llm.models", "id": 1})
        assert answer.status_code == 200
        code, listed, _ = await _cli(fleet_settings, "tokens", "list")
        assert code == 0 and "agent-stored" in listed and token not in listed and token[3:15] not in listed
        token_id = next(line.split()[0] for line in listed.splitlines() if "agent-stored" in line)
        redis = Redis.from_url(fleet_settings.redis_url)
        stored = await redis.hgetall(Keys(fleet_settings.key_prefix).gateway_tokens())
        await redis.aclose()
        assert token.encode() not in b"".join(k + v for k, v in stored.items())  # only its hash is kept
        assert (await _cli(fleet_settings, "tokens", "revoke", token_id))[0] == 0
        for _ in range(100):  # each gateway reads a token again after LLM_GATEWAY_TOKEN_CACHE (0.2 s here)
            answer = await http.post("/rpc", json={"jsonrpc": "2.0", "method": "llm.models", "id": 1})
            if answer.status_code == 401:
                break
            await asyncio.sleep(0.05)
        assert answer.status_code == 401
    code, _, err = await _cli(fleet_settings, "tokens", "revoke", token_id)
    assert code == 1 and "0 tokens" in err


async def test_with_no_token_it_listens_on_loopback_only(fleet_settings: FleetSettings) -> None:
    bare = FleetSettings(REDIS_URL=fleet_settings.redis_url, LLM_KEY_PREFIX=f"{fleet_settings.key_prefix}-open")
    code, _, err = await _cli(bare, "gateway", "--host", "0.0.0.0", "--port", "0")
    assert code == 2 and "--no-auth" in err
    proc = await start_gateway(bare)
    try:
        url = str(proc.ready_info["url"])
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as open_gateway:  # no token configured: open
            answer = await open_gateway.post("/rpc", json={"jsonrpc": "2.0", "method": "llm.models", "id": 1})
            assert answer.status_code == 200 and json.loads(answer.content)["result"]
    finally:
        await proc.stop()
    proc = await start_gateway(bare, "--host", "0.0.0.0", "--no-auth")
    try:
        assert str(proc.ready_info["url"]).startswith("http://0.0.0.0:")
    finally:
        await proc.stop()


async def test_a_setting_or_option_that_is_wrong_is_said_at_start(fleet_settings: FleetSettings) -> None:
    code, _, err = await _cli(fleet_settings, "gateway", "--port", "0", LLM_GATEWAY_TOKENS="no-agent-here")
    assert code == 2 and "LLM_GATEWAY_TOKENS" in err and "Traceback" not in err
    code, _, err = await _cli(fleet_settings, "gateway", "--port", "0", "--workers", "0")
    assert code == 2 and "--workers" in err
