from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from launcher.processes import Process, start_emulator, start_worker, worker_env
from producer import LLMClient
from schemas.catalog import Provider
from schemas.settings import FleetSettings
from tests.servers import RedisServer
from workers.settings import KEY_VARS

FIXTURES = Path(__file__).parent / "fixtures"

# Real provider keys, for the live tests alone (taken before the environment is cleaned below).
_LIVE_KEYS = {name: os.environ[name] for name in KEY_VARS.values() if os.environ.get(name)}

# The SDKs read these; a test must see only what it sets.
for _name in list(os.environ):
    if _name.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_", "LLM_")) or _name == "REDIS_URL":
        del os.environ[_name]


@pytest.fixture(scope="session")
def live_keys() -> dict[str, str]:
    """The provider keys set where the tests started (none in CI): a live test runs only with its key."""
    return _LIVE_KEYS


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def emulator() -> AsyncIterator[str]:
    proc, url = await start_emulator()
    yield url
    await proc.stop()


@pytest.fixture(scope="session")
def fleet_settings(redis_server: RedisServer) -> FleetSettings:
    """Settings of the session's fleet: its own key prefix on the test Redis server."""
    return FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
async def workers(fleet_settings: FleetSettings, emulator: str) -> AsyncIterator[dict[Provider, Process]]:
    """One real worker process per provider, served by the emulator."""
    env = worker_env(fleet_settings.redis_url, emulator, LLM_KEY_PREFIX=fleet_settings.key_prefix)
    procs = {p: await start_worker(p, env) for p in Provider}
    yield procs
    for proc in procs.values():
        await proc.stop()


@pytest.fixture
async def client(fleet_settings: FleetSettings) -> AsyncIterator[LLMClient]:
    async with LLMClient(settings=fleet_settings) as c:
        yield c
