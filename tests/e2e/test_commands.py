"""The commands a newcomer and an operator run, as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.processes import Process
from producer import LLMClient
from schemas.catalog import Provider, catalog
from schemas.request import LLMRequest
from schemas.settings import FleetSettings

pytestmark = pytest.mark.e2e


def _run(args: list[str], env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_fleet", *args],
        check=False,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        **kw,  # type: ignore[call-overload]
    )


def _fleet_env(settings: FleetSettings) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix}


async def test_demo_runs_on_a_bare_machine() -> None:
    """No REDIS_URL: the demo starts an embedded Valkey, the emulator and three workers, and cleans up."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = await asyncio.to_thread(_run, ["demo"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "embedded Valkey" in out and "all three providers answered through Redis" in out
    for provider in Provider:
        assert f"\n{provider.value} " in out
    assert "streamed" in out


async def test_demo_keep_leaves_a_fleet_to_try_and_stops_on_ctrl_c() -> None:
    """`demo --keep`: the fleet stays up for a newcomer's own commands, at the REDIS_URL it prints."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llm_fleet", "demo", "--keep", env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert demo.stdout is not None
    try:
        async with asyncio.timeout(120):
            while b"export REDIS_URL=" not in (line := await demo.stdout.readline()):
                assert line, "the demo ended without printing REDIS_URL"
        url = line.decode().split("=", 1)[1].strip()
        asked = await asyncio.to_thread(
            _run, ["complete", "--model", "gemini-3.8-flash", "hi [[tokens=3]]"], {**env, "REDIS_URL": url}
        )
        assert asked.returncode == 0 and asked.stdout.startswith("Echo:"), asked.stderr
    finally:
        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), 30) == 0
    gone = await asyncio.to_thread(_run, ["health"], {**env, "REDIS_URL": url})
    assert gone.returncode == 1  # its embedded Valkey stopped with it


def test_models_lists_the_catalog() -> None:
    done = _run(["models"])
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == len(catalog().models) + 1
    assert "claude-3-opus-20240229" in done.stdout and "retired" in done.stdout


def test_help_and_unknown_commands() -> None:
    assert _run([]).returncode == 2
    assert "commands:" in _run(["--help"]).stdout
    unknown = _run(["frobnicate"])
    assert unknown.returncode == 2 and "unknown command" in unknown.stderr


async def test_complete_stream_and_follow(workers: dict[Provider, Process], fleet_settings: FleetSettings) -> None:
    env = _fleet_env(fleet_settings)
    streamed = await asyncio.to_thread(
        _run, ["complete", "--model", "claude-haiku-4-5", "--stream", "hi [[tokens=5]]"], env
    )
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.startswith("Echo:") and len(streamed.stdout.split()) == 5
    as_json = await asyncio.to_thread(
        _run, ["complete", "--model", "gpt-4.1-mini", "--stream", "--json", "hi [[tokens=4]]"], env
    )
    assert json.loads(as_json.stdout)["usage"]["completion_tokens"] == 4
    failed = await asyncio.to_thread(
        _run, ["complete", "--model", "gemini-3.8-flash", "--stream", "--json", "x [[fault=cut]]"], env
    )
    assert failed.returncode == 1 and json.loads(failed.stdout.splitlines()[-1])["error"]["type"]
    async with LLMClient(settings=fleet_settings) as client:
        request = LLMRequest(
            model="gemini-3.8-flash", messages=[{"role": "user", "content": "x [[tokens=6]]"}], stream=True
        )
        await client.submit(request)
        await client.result(request.request_id, timeout=20)
    followed = await asyncio.to_thread(_run, ["stream", request.request_id], env)
    assert followed.returncode == 0 and len(followed.stdout.split()) == 6
    missing = await asyncio.to_thread(_run, ["stream", "no-such-request"], env)
    assert missing.returncode == 1 and "RequestNotFoundError" in missing.stderr


async def test_cli_reports_an_unreachable_redis() -> None:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    done = await asyncio.to_thread(_run, ["complete", "--model", "gpt-4.1-mini", "--json", "hi"], env)
    assert done.returncode == 1 and "cannot reach Redis" in done.stderr and "Traceback" not in done.stderr


async def test_sigterm_lets_a_worker_finish_and_leave(fleet_settings: FleetSettings, emulator: str) -> None:
    from launcher.processes import start_worker, worker_env

    settings = fleet_settings.model_copy(update={"key_prefix": fleet_settings.key_prefix + "-term"})
    worker = await start_worker(
        Provider.OPENAI, worker_env(settings.redis_url, emulator, LLM_KEY_PREFIX=settings.key_prefix)
    )
    async with LLMClient(settings=settings) as client:
        request = LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "x [[latency_ms=500]]"}])
        await client.submit(request)
        await asyncio.sleep(0.2)
        worker.proc.send_signal(signal.SIGTERM)  # the in-flight request still completes
        assert (await client.result(request.request_id, timeout=10)).provider is Provider.OPENAI
    assert await worker.stop() == 0
    assert any("worker_stopped" in line for line in worker.lines)


async def test_a_worker_can_log_to_a_file(fleet_settings: FleetSettings, emulator: str, tmp_path: Path) -> None:
    """The benchmarks' log collector: the lines land in the file, and the ready line is still seen."""
    from launcher.processes import start_worker, worker_env

    settings = fleet_settings.model_copy(update={"key_prefix": fleet_settings.key_prefix + "-file"})
    log = tmp_path / "worker.log"
    worker = await start_worker(
        Provider.OPENAI, worker_env(settings.redis_url, emulator, LLM_KEY_PREFIX=settings.key_prefix), log
    )
    try:
        assert worker.ready_info["event"] == "worker_ready"
        async with LLMClient(settings=settings) as client:
            request = LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "to the file"}])
            await client.complete(request)
    finally:
        await worker.stop()
    done = [json.loads(line) for line in log.read_text().splitlines() if "request_done" in line]
    assert [d["request_id"] for d in done] == [request.request_id]
    assert not any("request_done" in line for line in worker.lines)  # read from the file only until ready
