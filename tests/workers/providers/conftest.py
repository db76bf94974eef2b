"""Fixtures for the provider adapter tests: the replay server, adapters pointed at it, a clean environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from schemas.catalog import Provider
from tests.workers.providers.replay import ReplayServer, make_settings
from workers.providers import build_adapter
from workers.providers.base import Adapter

AdapterFactory = Callable[..., Adapter]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDKs and the settings read these; a developer's own keys or base URLs must not leak into a test."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_", "OTEL_", "LLM_")):
            monkeypatch.delenv(name)


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    srv = ReplayServer()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture(params=["aiohttp", "httpx2"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_adapter(server: ReplayServer, transport: str) -> AsyncIterator[AdapterFactory]:
    """Build an adapter for a provider, pointed at the replay server; every one built is closed at the end."""
    built: list[Adapter] = []

    def make(provider: Provider, **extra: Any) -> Adapter:
        adapter = build_adapter(provider, make_settings(provider, server.url, transport, **extra))
        built.append(adapter)
        return adapter

    yield make
    for adapter in built:
        await adapter.aclose()
