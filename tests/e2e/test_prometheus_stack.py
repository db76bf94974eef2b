"""The shipped ops files against a real stack: a real Prometheus server (Debian's package) scrapes real worker
processes under load and `llm-fleet exporter`, with the shipped ops/alerts.yml as its rule file; every
dashboard panel's query and every alert's expression is evaluated through Prometheus's HTTP API and must
return series, each alert once its condition has been created for real. promtool checks the /metrics served.

Prometheus runs on a copy of ops/prometheus.yml whose targets are rewritten to the local ports (and scraped
every second); the rule file and the dashboard are the shipped ones, unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from redis.asyncio import Redis

from jobstore.keys import Keys
from launcher.processes import Process, start_worker, worker_env
from producer import LLMClient
from schemas.catalog import Provider
from schemas.errors import AuthenticationError, LLMError
from schemas.settings import FleetSettings
from tests.e2e.conftest import request
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
DASHBOARD = OPS / "grafana" / "dashboards" / "llm-fleet.json"
RATE_INTERVAL = "30s"  # $__rate_interval: Grafana's is at least 4 scrape intervals; here they are 1 s
LOADED = "openai"  # the provider under steady load: the panels are evaluated for it
BUDGET_AGENT = "agent-over-budget"
DEADLINE_S = 40.0


@dataclass
class Stack:
    settings: FleetSettings
    redis: Redis
    prometheus: str
    workers: dict[Provider, Process]
    worker_metrics: dict[Provider, str]
    exporter: asyncio.subprocess.Process
    exporter_metrics: str


def _metrics_url(worker: Process) -> str:
    return str(worker.ready_info["metrics"]).replace("0.0.0.0", "127.0.0.1")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def _wait_http(url: str, proc: asyncio.subprocess.Process, log: Path, deadline_s: float = 30.0) -> None:
    """Until `url` answers 200 (`proc` just started, writing its stderr to `log`)."""
    deadline = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            if proc.returncode is not None or time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer (exit status {proc.returncode}):\n{_tail(log)}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            *args,
            env={**os.environ, **(env or {})},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _prometheus_config(workers: list[str], exporter: str) -> dict[str, Any]:
    """ops/prometheus.yml with its targets rewritten to local ports, scraped every second; rules unchanged. The
    gateway's job is left out: no gateway runs here, and neither the dashboard nor a rule reads its metrics."""
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    targets = {"llm-fleet-workers": workers, "llm-fleet-exporter": [exporter]}
    assert {job["job_name"] for job in config["scrape_configs"]} == {*targets, "llm-fleet-gateway"}
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(OPS / rule) for rule in config["rule_files"]]
    config["scrape_configs"] = [
        {"job_name": job["job_name"], "static_configs": [{"targets": targets[job["job_name"]]}]}
        for job in config["scrape_configs"]
    ]
    return config


@pytest.fixture(scope="module")
async def stack(
    redis_server: RedisServer, emulator_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        pytest.fail("prometheus is missing: install Debian's prometheus package (`make test` does)")
    settings = FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"p{uuid.uuid4().hex[:8]}")
    common = {"LLM_KEY_PREFIX": settings.key_prefix, "LLM_METRICS_PORT": "0", "LLM_HEARTBEAT_INTERVAL": "0.5"}
    envs = {
        # Under load, limited fleet-wide (so in-flight against the limit is exported), retrying quickly.
        Provider.OPENAI: worker_env(
            settings.redis_url, emulator_url, LLM_PROVIDER_CONCURRENCY="50", LLM_RETRY_BASE="0.05", **common
        ),
        # Its circuit opens after 3 failures, and stays open while the test looks.
        Provider.ANTHROPIC: worker_env(
            settings.redis_url,
            emulator_url,
            LLM_MAX_RETRIES="0",
            LLM_CIRCUIT_MIN_REQUESTS="3",
            LLM_CIRCUIT_OPEN="300",
            **common,
        ),
    }  # and no gemini worker: its queue is the backlog no worker takes
    workers = dict(zip(envs, await asyncio.gather(*(start_worker(p, env) for p, env in envs.items())), strict=True))
    exporter_port, prometheus_port = free_port(), free_port()
    tmp = tmp_path_factory.mktemp("prometheus")
    config = _prometheus_config([_metrics_url(w).split("/")[2] for w in workers.values()], f"127.0.0.1:{exporter_port}")
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    redis = Redis.from_url(settings.redis_url)
    try:
        async with (
            _process(
                [sys.executable, "-m", "llm_fleet", "exporter", "--host", "127.0.0.1", "--port", str(exporter_port)],
                tmp / "exporter.log",
                {"REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix},
            ) as exporter,
            _process(
                [
                    prometheus_bin,
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                    "--log.level=warn",
                ],
                tmp / "prometheus.log",
            ) as prometheus_proc,
        ):
            exporter_metrics = f"http://127.0.0.1:{exporter_port}/metrics"
            prometheus = f"http://127.0.0.1:{prometheus_port}"
            await _wait_http(exporter_metrics, exporter, tmp / "exporter.log")
            await _wait_http(f"{prometheus}/-/ready", prometheus_proc, tmp / "prometheus.log")
            yield Stack(
                settings,
                redis,
                prometheus,
                workers,
                {p: _metrics_url(w) for p, w in workers.items()},
                exporter,
                exporter_metrics,
            )
    finally:
        await asyncio.gather(*(w.stop(signal.SIGKILL) for w in workers.values()))
        await redis.aclose()


async def _query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{stack.prometheus}/api/v1/query", params={"query": expr}) as resp,
    ):
        body = await resp.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def _until_series(stack: Stack, exprs: dict[str, str], *, finite: bool = False) -> None:
    """Until every expression returns series (`finite`: at least one with a number, not NaN); the names of
    those that never do, at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    missing = dict(exprs)
    while missing:
        for name, expr in list(missing.items()):
            series = await _query(stack, expr)
            if series and (not finite or any(math.isfinite(float(s["value"][1])) for s in series)):
                del missing[name]
        if missing and time.monotonic() > deadline:
            pytest.fail(f"no series after {DEADLINE_S:g}s for: {json.dumps(missing, indent=2)}")
        await asyncio.sleep(0.5)


async def _stream(client: LLMClient, text: str) -> None:
    async for _ in client.stream(request("gpt-4.1-mini", text)):
        pass


async def _refused(client: LLMClient, text: str) -> None:
    with pytest.raises(AuthenticationError):
        await client.complete(request("gpt-4.1-mini", f"{text} [[fault=keyshown]]"), timeout=20)


async def _load(client: LLMClient, stop: asyncio.Event) -> int:
    """Steady mixed load on the loaded provider until `stop`: answers (with a source_agent, so cost), streams
    (time to first token), a retry each round, a dead letter every other round. Returns the rounds done."""
    rounds = 0
    while not stop.is_set():
        tag = uuid.uuid4().hex[:8]
        await asyncio.gather(
            client.complete(request("gpt-4.1-mini", f"a{tag}", source_agent="agent-load"), timeout=20),
            client.complete(request("gpt-4.1-mini", f"r{tag} [[fault=503]] [[fail_times=1]]"), timeout=20),
            _stream(client, f"s{tag} [[tokens=5]]"),
            *([_refused(client, f"k{tag}")] if rounds % 2 == 0 else []),
        )
        rounds += 1
        await asyncio.sleep(0.05)  # pacing, a few rounds per scrape
    return rounds


def _panel_queries() -> dict[str, str]:
    """Every dashboard panel's queries, as Grafana sends them for the loaded provider."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} / {target['refId']}": target["expr"]
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$provider", LOADED)
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    }


def _alert_exprs() -> dict[str, str]:
    groups = yaml.safe_load((OPS / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


async def _cli(stack: Stack, *args: str) -> None:
    env = {**os.environ, "REDIS_URL": stack.settings.redis_url, "LLM_KEY_PREFIX": stack.settings.key_prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llm_fleet", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()


async def test_every_dashboard_panel_query_returns_series_under_load(stack: Stack) -> None:
    await _cli(stack, "budget", "set", "agent-load", "1000")
    async with LLMClient(settings=stack.settings) as client:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(client, stop))
        try:
            await _until_series(stack, _panel_queries(), finite=True)
        finally:
            stop.set()
            rounds = await load
    assert rounds > 0
    # The provider variable's choices: label_values(llm_queue_depth, provider), as Grafana asks Prometheus.
    (variable,) = json.loads(DASHBOARD.read_text())["templating"]["list"]
    metric = variable["query"]["query"].removeprefix("label_values(").split(",")[0]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{stack.prometheus}/api/v1/label/provider/values", params={"match[]": metric}) as resp,
    ):
        assert {p.value for p in Provider} <= set((await resp.json())["data"])


async def _promtool_check_metrics(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
    proc = await asyncio.create_subprocess_exec(
        "promtool", "check", "metrics", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await proc.communicate(text.encode())
    assert proc.returncode == 0, f"{url}\n{out.decode()}"
    return text


async def test_promtool_checks_the_metrics_a_worker_and_the_exporter_serve(stack: Stack) -> None:
    worker = await _promtool_check_metrics(stack.worker_metrics[Provider.OPENAI])
    assert "llm_requests_total{" in worker  # after the load above: a real worker's counters, not an empty page
    exporter = await _promtool_check_metrics(stack.exporter_metrics)
    assert 'llm_queue_depth{provider="gemini"}' in exporter


async def _at_least(stack: Stack, expr: str, minimum: float) -> None:
    """Until Prometheus holds a sample of `expr` at `minimum` or more (the exporter scraped the new state)."""
    await _until_series(stack, {expr: f"({expr}) >= {minimum}"})


async def test_every_alert_expression_returns_series_once_its_condition_is_made(stack: Stack) -> None:
    keys = Keys(stack.settings.key_prefix)
    async with LLMClient(settings=stack.settings) as client:
        # A budget near its limit: a tiny one, then a request of that agent costs more than it.
        await _cli(stack, "budget", "set", BUDGET_AGENT, "0.0000001")
        await client.complete(request("gpt-4.1-mini", "spend", source_agent=BUDGET_AGENT), timeout=20)
        # An open circuit and an error rate: provider errors, not retried, until the circuit opens; one per
        # scrape, so Prometheus sees the errors' rate rise (a counter's first sample is no increase).
        for failed in range(1, 4):
            with pytest.raises(LLMError):
                await client.complete(request("claude-haiku-4-5", f"{uuid.uuid4()} [[fault=500]]"), timeout=20)
            await _at_least(stack, 'sum(llm_requests_total{provider="anthropic", status="error"})', failed)
        # A backlog with no live worker, growing, its oldest request too old: gemini jobs no worker takes,
        # queued after Prometheus has seen the queue empty, the oldest one's enqueue time put 10 minutes back.
        await _until_series(stack, {"gemini queue seen": 'llm_queue_depth{provider="gemini"} == 0'})
        ids = [await client.submit(request("gemini-3.8-flash", f"q{i}")) for i in range(3)]
        await stack.redis.hset(keys.request(ids[0]), "enqueued_at", repr(time.time() - 600))
        await _at_least(stack, 'llm_queue_depth{provider="gemini"}', 3)
        exprs = _alert_exprs()
        later = {name: exprs[name] for name in ("LLMRedisMemoryNearMax", "LLMExporterDown")}
        await _until_series(stack, {name: expr for name, expr in exprs.items() if name not in later})
        # Redis memory near maxmemory: a maxmemory just above what it uses now, put back at once after.
        (before,) = (await stack.redis.config_get("maxmemory")).values()
        used = int((await stack.redis.info("memory"))["used_memory"])
        await stack.redis.config_set("maxmemory", str(int(used / 0.95)))
        try:
            await _until_series(stack, {"LLMRedisMemoryNearMax": later["LLMRedisMemoryNearMax"]})
        finally:
            await stack.redis.config_set("maxmemory", before)
        for request_id in ids:
            await client.cancel(request_id)
    # Prometheus itself loaded the shipped rules, evaluates them without error, and the alerts are pending or
    # firing (those whose condition still holds).
    active = {"LLMBudgetNearLimit", "LLMBacklogNoLiveWorker", "LLMCircuitOpen", "LLMErrorRateHigh"}
    deadline = time.monotonic() + DEADLINE_S
    while not active <= {rule["name"] for rule in await _rules(stack) if rule["state"] != "inactive"}:
        assert time.monotonic() < deadline, await _rules(stack)
        await asyncio.sleep(0.5)
    rules = await _rules(stack)
    assert {rule["name"] for rule in rules} == set(_alert_exprs())
    assert {rule["health"] for rule in rules} == {"ok"}
    # The exporter gone: Prometheus's own `up` says so (last: the fleet's gauges stop with it).
    stack.exporter.terminate()
    await stack.exporter.wait()
    await _until_series(stack, {"LLMExporterDown": later["LLMExporterDown"]})


async def _rules(stack: Stack) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{stack.prometheus}/api/v1/rules") as resp:
        return [rule for group in (await resp.json())["data"]["groups"] for rule in group["rules"]]
