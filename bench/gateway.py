"""The gateway under load: callers in flight (default 1000) at 1 s emulator latency, on three paths in one run,
interleaved, requests round-robin over the providers:

    client   `LLMClient.complete` in the load generator: the fleet without the gateway (the baseline)
    gateway  `POST /v1/chat/completions` to `llm-fleet gateway`, a process of its own, in front of the same fleet
    litellm  the same route of LiteLLM's proxy (`litellm --config`), a process of its own, calling the emulator

    python -m bench gateway [--in-flight 1000,100] [--requests 3000] [--rounds 2] [--latency-ms 1000]
                            [--gateway-workers 1] [--litellm /work/venv-litellm/bin/litellm] [--no-litellm]

The HTTP paths are driven by aiohttp with a bearer token (each server checks one). CPU per request is read from
/proc for each process (a server's worker processes included): the gateway's own, the fleet's (workers and
Redis), the proxy's, and the load generator's. LiteLLM's proxy needs a venv of its own: `bench/litellm-proxy.txt`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.harness import Clock, Fleet, fleet, median, pct
from bench.latency import closed_loop
from launcher.processes import Process
from producer import LLMClient
from schemas.catalog import Provider
from schemas.request import LLMRequest, Message

MODELS = {Provider.OPENAI: "gpt-4.1-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GEMINI: "gemini-3.8-flash"}
TOKEN = "bench-token"
_LITELLM_ROUTES = {
    Provider.OPENAI: ("openai", "/v1"),
    Provider.ANTHROPIC: ("anthropic", ""),
    Provider.GEMINI: ("gemini", "/v1beta"),
}


@dataclass
class Round:
    path: str
    in_flight: int
    latencies: list[float]
    errors: int
    wall_s: float
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per request, by part

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall_s


def family(pid: int) -> list[int]:
    """A process and its descendants (a server's worker processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"request {i}"}]


def _model(i: int) -> str:
    return list(MODELS.values())[i % len(MODELS)]


def http_caller(
    session: aiohttp.ClientSession, url: str, token: str, errors: list[str]
) -> Callable[[int], Awaitable[None]]:
    headers = {"Authorization": f"Bearer {token}"}

    async def call(i: int) -> None:
        body = {"model": _model(i), "messages": _messages(i), "max_tokens": 64}
        try:
            async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
                data = await resp.read()
                if resp.status != 200 or not json.loads(data)["choices"][0]["message"]["content"]:
                    errors.append(f"{resp.status} {data[:200]!r}")
        except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
            errors.append(repr(exc))

    return call


def client_caller(client: LLMClient, errors: list[str]) -> Callable[[int], Awaitable[None]]:
    async def call(i: int) -> None:
        request = LLMRequest(model=_model(i), max_tokens=64, messages=[Message(role="user", content=f"request {i}")])
        try:
            await client.complete(request)
        except Exception as exc:  # noqa: BLE001 (counted, as the HTTP paths count theirs)
            errors.append(repr(exc))

    return call


async def start_gateway(f: Fleet, workers: int) -> Process:
    env = {"REDIS_URL": f.redis.url, "LLM_KEY_PREFIX": f.settings.key_prefix, "LLM_GATEWAY_TOKENS": f"{TOKEN}=bench"}
    args = ["gateway", "--port", "0", "--workers", str(workers)]
    return await Process.start(args, name="gateway", ready_event="gateway_ready", env=env, log=f.logs / "gateway.log")


@contextlib.asynccontextmanager
async def litellm_proxy(command: str, emulator_url: str, logs: Path) -> AsyncIterator[tuple[str, int]]:
    """LiteLLM's proxy on a free port, one deployment per model pointed at the emulator, retries off (as the
    gateway's path has none at this load): its URL and pid."""
    import yaml

    from tests.servers import free_port

    models = [
        {
            "model_name": model,
            "litellm_params": {
                "model": f"{_LITELLM_ROUTES[p][0]}/{model}",
                "api_base": f"{emulator_url}{_LITELLM_ROUTES[p][1]}",
                "api_key": "emulator-key",
                "max_retries": 0,
            },
        }
        for p, model in MODELS.items()
    ]
    config = {
        "model_list": models,
        "litellm_settings": {"telemetry": False, "num_retries": 0},
        "general_settings": {"master_key": TOKEN},
    }
    folder = Path(tempfile.mkdtemp(prefix="bench-litellm-"))
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    env.pop("PYTHONPATH", None)
    with (logs / "litellm.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            command,
            "--config",
            str(folder / "config.yaml"),
            "--port",
            str(port),
            "--num_workers",
            "1",
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/health/liveliness") as resp:
                        if resp.status == 200:
                            break
                if proc.returncode is not None:
                    raise RuntimeError(f"LiteLLM's proxy exited: see {logs / 'litellm.log'}")
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("LiteLLM's proxy was not ready after 120 s")
        yield url, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        await proc.wait()


async def one_round(
    path: str,
    in_flight: int,
    call: Callable[[int], Awaitable[None]],
    errors: list[str],
    pids: dict[str, list[int]],
    args: argparse.Namespace,
) -> Round:
    errors.clear()
    every = [pid for group in pids.values() for pid in group]
    clock = Clock([os.getpid(), *every])
    latencies = await closed_loop(call, in_flight, args.requests, args.latency_ms / 1000)
    wall, cpu = clock.stop()
    n = len(latencies)
    parts = {"load generator": cpu[os.getpid()] * 1000 / n}
    parts |= {part: sum(cpu[pid] for pid in group) * 1000 / n for part, group in pids.items()}
    if errors:
        sys.stderr.write(f"{path}: {len(errors)} errors, first: {errors[0]}\n")
    return Round(path, in_flight, latencies, len(errors), wall, parts)


def report(every: list[Round], in_flight: int) -> str:
    rounds = [r for r in every if r.in_flight == in_flight]
    client = [r for r in rounds if r.path == "client"]
    base50, base99 = median([pct(r.latencies, 50) for r in client]), median([pct(r.latencies, 99) for r in client])
    lines = [
        "| path | req/s | p50 / p99 ms | added over LLMClient p50 / p99 ms | errors | CPU ms/req by process |",
        "|---|---|---|---|---|---|",
    ]
    for path in dict.fromkeys(r.path for r in rounds):
        mine = [r for r in rounds if r.path == path]
        p50, p99 = median([pct(r.latencies, 50) for r in mine]), median([pct(r.latencies, 99) for r in mine])
        cpu = {k: median([r.cpu_ms[k] for r in mine]) for k in mine[0].cpu_ms}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in cpu.items())
        added = "–" if path == "client" else f"**{p50 - base50:+.1f} / {p99 - base99:+.1f}**"
        lines.append(
            f"| {path} | {median([r.rate for r in mine]):.0f} | {p50:.1f} / {p99:.1f} | {added} "
            f"| {sum(r.errors for r in mine)} of {sum(len(r.latencies) for r in mine)} | {shown} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    rounds: list[Round] = []
    async with fleet("--latency-ms", str(args.latency_ms)) as f:
        for provider in MODELS:
            await f.add_workers(provider)
        fleet_pids = {"workers": f.pids(), "redis": [f.redis.proc.pid]}
        gateway = await start_gateway(f, args.gateway_workers)
        gateway_url = str(gateway.ready_info["url"]).replace("0.0.0.0", "127.0.0.1")
        peer = litellm_proxy(args.litellm, f.emulator_url, f.logs) if args.litellm else contextlib.nullcontext(None)
        errors: list[str] = []
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=120)
        try:
            async with (
                peer as proxy,
                LLMClient(settings=f.settings) as client,
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            ):
                paths: dict[str, tuple[Callable[[int], Awaitable[None]], dict[str, list[int]]]] = {
                    "client": (client_caller(client, errors), fleet_pids),
                    "gateway": (
                        http_caller(session, gateway_url, TOKEN, errors),
                        {"gateway": family(gateway.proc.pid), **fleet_pids},
                    ),
                }
                if proxy is not None:
                    paths["litellm"] = (
                        http_caller(session, proxy[0], TOKEN, errors),
                        {"litellm proxy": family(proxy[1])},
                    )
                for name, (call, _) in paths.items():  # warm-up: connections, imports, first-use caches
                    await closed_loop(call, 200, 400)
                    sys.stderr.write(f"warmed up: {name} ({len(errors)} errors)\n")
                    errors.clear()
                for in_flight in args.in_flight:
                    for n in range(args.rounds):
                        for name, (call, pids) in paths.items():
                            rounds.append(await one_round(name, in_flight, call, errors, pids, args))
                            sys.stderr.write(f"{in_flight} in flight, round {n + 1}: {name} {rounds[-1].rate:.0f}/s\n")
        finally:
            await gateway.stop()
    load_after = os.getloadavg()
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    record = [
        {
            "path": r.path,
            "in_flight": r.in_flight,
            "latencies_ms": r.latencies,
            "errors": r.errors,
            "wall_s": r.wall_s,
            "cpu_ms": r.cpu_ms,
        }
        for r in rounds
    ]
    (out / f"gateway-{int(time.time())}.json").write_text(json.dumps(record))
    sys.stdout.write(
        f"{args.latency_ms} ms emulator latency, {args.requests} requests a round per path, {args.rounds} rounds, "
        f"round-robin over {', '.join(MODELS.values())}; gateway --workers {args.gateway_workers}\n"
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), on {os.cpu_count()} cores\n"
    )
    for in_flight in args.in_flight:
        sys.stdout.write(f"\n{in_flight} in flight:\n\n{report(rounds, in_flight)}\n")


def _numbers(value: str) -> list[int]:
    return [int(n) for n in value.split(",")]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench gateway")
    parser.add_argument("--in-flight", type=_numbers, default=[1000, 100], help="the loads, in order")
    parser.add_argument("--requests", type=int, default=3000, help="per path and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, default=1000)
    parser.add_argument("--gateway-workers", type=int, default=1)
    parser.add_argument(
        "--litellm", default="/work/venv-litellm/bin/litellm", help="LiteLLM's CLI ('' to leave it out)"
    )
    asyncio.run(main_async(parser.parse_args(argv)))
