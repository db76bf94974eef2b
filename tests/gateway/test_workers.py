"""The gateway in front of a fleet of the test's own (the end-to-end `fleet` fixture): `--workers N` (N processes
share the port, each its own producer of the fleet), and a provider that fails at once (no retries)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import openai
import pytest

from schemas.catalog import Provider
from tests.e2e.conftest import Fleet
from tests.gateway.conftest import MODELS, start_gateway

pytestmark = pytest.mark.e2e


async def test_several_worker_processes_serve_one_port(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.OPENAI)
    gateway = await start_gateway(settings, "--workers", "2", LLM_GATEWAY_TOKENS="tok=agent-w")
    try:
        url = str(gateway.ready_info["url"]).replace("0.0.0.0", "127.0.0.1")
        async with openai.AsyncOpenAI(api_key="tok", base_url=f"{url}/v1", max_retries=0) as client:
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model=MODELS[Provider.OPENAI],
                        messages=[{"role": "user", "content": f"n{i} [[tokens=2]]"}],
                    )
                    for i in range(20)
                )
            )
        assert [r.choices[0].message.content for r in replies] == [f"Echo: n{i}" for i in range(20)]
        assert len(_children(gateway.proc.pid)) >= 2  # the supervisor's two servers (and its resource tracker)
    finally:
        assert await gateway.stop() in (0, -15)


async def test_a_stream_that_fails_before_its_first_token_is_an_http_error(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.ANTHROPIC, LLM_MAX_RETRIES="0")
    gateway = await start_gateway(settings, LLM_GATEWAY_TOKENS="tok=agent-f")
    try:
        url = str(gateway.ready_info["url"]).replace("0.0.0.0", "127.0.0.1")
        async with openai.AsyncOpenAI(api_key="tok", base_url=f"{url}/v1", max_retries=0) as client:
            with pytest.raises(openai.InternalServerError) as caught:  # 502: the provider failed (overloaded)
                await client.chat.completions.create(
                    model=MODELS[Provider.ANTHROPIC],
                    messages=[{"role": "user", "content": "busy [[fault=529]]"}],
                    stream=True,
                )
        assert caught.value.status_code == 502 and caught.value.code == "OverloadedError"
        assert caught.value.response.headers["x-should-retry"] == "true"
    finally:
        await gateway.stop()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found
