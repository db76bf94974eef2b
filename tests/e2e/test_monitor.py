"""The fleet's views as an operator runs them, against a live fleet under load: the exporter as a real process
scraped over HTTP, and `llm-fleet top` in a real terminal (tmux), read off the screen."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid

import aiohttp
import pytest

from launcher.processes import Process
from producer import LLMClient
from schemas.catalog import Provider
from schemas.settings import FleetSettings
from tests.e2e.conftest import Fleet, request
from tests.monitor.test_monitor import FLEET_METRICS, Samples, samples_of

pytestmark = pytest.mark.e2e


def _env(settings: FleetSettings) -> dict[str, str]:
    return {"REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix, "LLM_HEARTBEAT_INTERVAL": "0.5"}


async def _queue_gemini(settings: FleetSettings, n: int) -> None:
    """`n` requests on the gemini queue, which no worker serves here: they wait."""
    async with LLMClient(settings=settings) as client:
        for i in range(n):
            await client.submit(request("gemini-3.8-flash", f"waiting {i}"))


async def _load(settings: FleetSettings, n: int) -> None:
    async with LLMClient(settings=settings) as client:
        await asyncio.gather(*(client.complete(request("gpt-4.1-mini", f"load {i}"), timeout=30) for i in range(n)))


async def test_the_exporter_process_reports_a_live_fleet(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.OPENAI, LLM_PROVIDER_CONCURRENCY="4")
    exporter = await Process.start(
        ["exporter", "--port", "0", "--host", "127.0.0.1"],
        name="exporter",
        ready_event="exporter_ready",
        env=_env(settings),
    )
    try:
        url = str(exporter.ready_info["metrics"])
        await _queue_gemini(settings, 3)

        async def scrape() -> Samples:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                assert resp.status == 200
                return samples_of(await resp.text())

        loading = asyncio.create_task(_load(settings, 40))
        during = await scrape()  # while requests flow
        await loading
        after = await scrape()
    finally:
        await exporter.stop()
    assert FLEET_METRICS - {"llm_policy_violations_total", "llm_budget_limit_usd", "llm_budget_spent_usd"} <= {
        name for name, _ in after
    }
    for samples in (during, after):
        assert samples[("llm_workers_live", (("provider", "openai"),))] == 1
        assert samples[("llm_workers_live", (("provider", "gemini"),))] == 0
        assert samples[("llm_inflight_limit", (("provider", "openai"),))] == 4
        assert 0 <= samples[("llm_inflight", (("provider", "openai"),))] <= 4
        assert samples[("llm_queue_depth", (("provider", "gemini"),))] == 3
        assert samples[("llm_exporter_scrape_errors_total", ())] == 0
    age = ("llm_queue_oldest_age_seconds", (("provider", "gemini"),))
    assert 0 < during[age] < after[age]  # the same job, older
    assert after[("llm_queue_depth", (("provider", "openai"),))] == 0


def _tmux(socket: str, *args: str, check: bool = True) -> str:
    """A tmux command on our own server (`socket`): its output (blocking, for the few ms it takes)."""
    return subprocess.run(["tmux", "-L", socket, *args], check=check, capture_output=True, text=True).stdout


def _rows(screen: str) -> dict[str, list[str]]:
    """Each queue's row on the screen: its cells, by queue name."""
    queues = {p.value for p in Provider}
    return {cells[0]: cells for cells in (line.split() for line in screen.splitlines()) if cells and cells[0] in queues}


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
async def test_top_in_a_terminal_shows_the_fleet_move(fleet: Fleet) -> None:
    settings, _ = await fleet(Provider.OPENAI)
    await _queue_gemini(settings, 3)
    socket = f"llmtop{uuid.uuid4().hex[:8]}"  # a tmux server of our own, with our environment
    env = {**_env(settings), "PYTHONPATH": os.environ.get("PYTHONPATH", ".")}
    # pytest sets COLUMNS=80, which rich would take over the terminal's own width
    command = ["env", "-u", "COLUMNS", "-u", "LINES", *(f"{k}={v}" for k, v in env.items())]
    command += [sys.executable, "-m", "llm_fleet", "top"]
    _tmux(socket, "new-session", "-d", "-x", "200", "-y", "50", "-s", "top", subprocess.list2cmdline(command))
    try:

        async def screen_until(check: str, *, timeout_s: float = 20.0) -> dict[str, list[str]]:
            async with asyncio.timeout(timeout_s):
                while True:
                    rows = _rows(_tmux(socket, "capture-pane", "-p", "-t", "top"))
                    if check in rows and (check != "openai" or rows["openai"][4] != "0.0"):
                        return rows
                    await asyncio.sleep(0.2)

        before = await screen_until("gemini")
        assert before["gemini"][1:2] == ["3"] and before["gemini"][-1] == "0"  # queued, no worker
        await _load(settings, 20)
        after = await screen_until("openai")
        openai = after["openai"]
        assert openai[1] == "0" and openai[-1] == "1" and openai[-2] == "closed"
        assert 20 / 30 - 0.05 <= float(openai[4]) <= 20 / 20 + 0.05  # 20 requests over the last 20-30 s
        assert openai[5] == "0.0" and 0 < _age(openai[6]) <= _age(openai[7])  # no error; p50 <= p95
        assert float(openai[8]) > 0 and openai[9].startswith("$")  # tokens/s, cost/h
        older = await screen_until("gemini")
        assert _age(older["gemini"][2]) > _age(before["gemini"][2])  # refreshed: the waiting jobs age
        _tmux(socket, "send-keys", "-t", "top", "C-c")
        async with asyncio.timeout(10):
            while True:  # Ctrl-C ends it, and with it the session
                if not _tmux(socket, "ls", check=False):
                    break
                await asyncio.sleep(0.1)
    finally:
        _tmux(socket, "kill-server", check=False)


def _age(cell: str) -> float:
    return float(cell.removesuffix("ms")) / 1000 if cell.endswith("ms") else float(cell.removesuffix("s"))
