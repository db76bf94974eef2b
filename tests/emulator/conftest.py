"""Fixtures: a running emulator, the real SDK clients pointed at it, and a client of its control endpoints."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from multidict import CIMultiDict

from emulator.server import Options, running_emulator

ENV_PREFIXES = ("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_", "OTEL_")


class Control:
    """Raw HTTP to the emulator: its /_emulator/ endpoints, and provider calls the SDKs would not make."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def stats(self) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/_emulator/stats") as response:
            return await response.json()  # type: ignore[no-any-return]

    async def stats_when(self, condition: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """The stats once ``condition`` holds (polled): robust on a loaded machine."""
        for _ in range(int(timeout / 0.02)):
            if condition(stats := await self.stats()):
                break
            await asyncio.sleep(0.02)
        return stats

    async def requests(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        params = {} if trace_id is None else {"trace_id": trace_id}
        async with self.session.get(f"{self.url}/_emulator/requests", params=params) as response:
            return (await response.json())["requests"]  # type: ignore[no-any-return]

    async def reset(self) -> None:
        async with self.session.post(f"{self.url}/_emulator/reset") as response:
            assert response.status == 200

    async def post(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, CIMultiDict[str], bytes]:
        """POST ``body`` (JSON, or raw bytes) and return the status, headers and the raw body."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.session.post(f"{self.url}{path}", data=data, headers=headers) as response:
            return response.status, response.headers.copy(), await response.read()

    @staticmethod
    def events(raw: bytes, separator: bytes = b"\n\n") -> list[dict[str, Any]]:
        """Split an SSE body into events: ``{"event": name or None, "data": parsed JSON, or "[DONE]"}``."""
        events = []
        for block in raw.split(separator):
            if block.strip():
                fields = dict(line.split(": ", 1) for line in block.decode().splitlines())
                data = fields["data"]
                events.append({"event": fields.get("event"), "data": data if data == "[DONE]" else json.loads(data)})
        return events


@pytest.fixture(autouse=True)
def _clean_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture
async def url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A running emulator. Other options: ``@pytest.mark.parametrize("url", [Options(...)], indirect=True)``."""
    async with running_emulator(getattr(request, "param", Options())) as base_url:
        yield base_url


@pytest.fixture
async def control(url: str) -> AsyncIterator[Control]:
    async with aiohttp.ClientSession() as session:
        yield Control(url, session)


@pytest.fixture
async def openai_client(url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{url}/v1", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def anthropic_client(url: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture(params=["v1beta", "v1"])
async def gemini_client(url: str, request: pytest.FixtureRequest) -> AsyncIterator[genai.Client]:
    """google-genai 3.x defaults to v1; most docs show v1beta: the emulator answers both."""
    # attempts=1: no retries at all. Without retry_options, google-genai on aiohttp silently retries once,
    # after 1-10 s, when the server drops the connection.
    options = types.HttpOptions(
        base_url=url, api_version=request.param, retry_options=types.HttpRetryOptions(attempts=1)
    )
    client = genai.Client(api_key="gemini-test", http_options=options)
    yield client
    await client.aio.aclose()
