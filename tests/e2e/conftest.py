"""What the end-to-end modules share: a fleet of real worker processes on a fresh key prefix, an emulator per
module, and a Redis server a test may kill and restart."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from launcher.processes import Process, start_emulator, start_worker, worker_env
from schemas.catalog import Provider
from schemas.request import LLMRequest
from schemas.settings import FleetSettings
from tests.servers import RedisServer

Fleet = Callable[..., Awaitable[tuple[FleetSettings, list[Process]]]]


def request(model: str, text: str, **kw: object) -> LLMRequest:
    return LLMRequest(model=model, messages=[{"role": "user", "content": text}], **kw)  # type: ignore[arg-type]


def job_fields(request: LLMRequest, provider: str, **fields: str) -> dict[str, str]:
    """A job hash written by hand, as a submit writes it: its body, digest and provider, and `fields`."""
    return {"body": request.model_dump_json(), "digest": request.digest(), "provider": provider, **fields}


@pytest.fixture(scope="module")
async def emulator_url() -> AsyncIterator[str]:
    """An emulator of the module's own, so its counters (max concurrency) see only its tests."""
    proc, url = await start_emulator()
    yield url
    await proc.stop()


@pytest.fixture
async def fleet(redis_server: RedisServer, emulator_url: str) -> AsyncIterator[Fleet]:
    """Start workers on a fresh key prefix (or `prefix`): `await fleet(Provider.OPENAI, n=2, LLM_MAX_RETRIES="0")`."""
    started: list[Process] = []

    async def start(
        *providers: Provider, n: int = 1, redis_url: str | None = None, prefix: str | None = None, **env: str
    ) -> tuple[FleetSettings, list[Process]]:
        url = redis_url or redis_server.url
        settings = FleetSettings(REDIS_URL=url, LLM_KEY_PREFIX=prefix or f"r{uuid.uuid4().hex[:8]}")
        worker_vars = worker_env(
            url,
            emulator_url,
            LLM_KEY_PREFIX=settings.key_prefix,
            LLM_RETRY_BASE="0.05",
            LLM_HEARTBEAT_INTERVAL="0.5",
            **env,
        )
        procs = await asyncio.gather(*(start_worker(p, worker_vars) for p in providers for _ in range(n)))
        started.extend(procs)
        return settings, list(procs)

    yield start
    await asyncio.gather(*(p.stop(signal.SIGKILL) for p in started))


@pytest.fixture
def restartable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server of the test's own (AOF on), to kill and restart."""
    server = RedisServer(tmp_path_factory.mktemp("restart"))
    server.start()
    yield server
    server.stop()
