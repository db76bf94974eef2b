"""The gateway as a user runs it: `llm-fleet gateway` as a process of its own (uvicorn), in front of the session's
real workers, Redis and emulator."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from launcher.processes import Process
from schemas.catalog import Provider
from schemas.settings import FleetSettings

TOKEN = "test-token-a"
AGENT = "agent-a"
OTHER_TOKEN = "test-token-b"
MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}


async def start_gateway(settings: FleetSettings, *args: str, **env: str) -> Process:
    return await Process.start(
        ["gateway", "--port", "0", *args],
        name="gateway",
        ready_event="gateway_ready",
        env={"REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix, **env},
    )


@pytest.fixture(scope="session")
async def gateway_url(fleet_settings: FleetSettings, workers: object) -> AsyncIterator[str]:
    proc = await start_gateway(
        fleet_settings,
        LLM_GATEWAY_TOKENS=f"{TOKEN}={AGENT},{OTHER_TOKEN}=agent-b",
        LLM_GATEWAY_MAX_BODY="65536",
        LLM_GATEWAY_TOKEN_CACHE="0.2",
        LLM_REQUEST_TIMEOUT="20",
    )
    yield str(proc.ready_info["url"]).replace("0.0.0.0", "127.0.0.1")
    # uvicorn shuts down, then re-raises the SIGTERM it caught; never killed after the timeout (-9)
    assert await proc.stop() in (0, -signal.SIGTERM)


@pytest.fixture
async def http(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=30) as client:
        yield client


# the end-to-end modules' fleet of workers started per test, on a key prefix of its own
from tests.e2e.conftest import emulator_url, fleet  # noqa: F401
