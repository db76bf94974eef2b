"""Instructions per request: what each process on a path executes in user space, counted by valgrind's
callgrind. A count, not a time: the same on a busy host and an idle one, and blind to the kernel, so it
leaves out the wake-ups that set a request's CPU time at light load on this machine (BENCHMARKS.md) and
shows what our own code costs. Every process of the path measured runs under callgrind (the load generator,
and for a queued path the worker and Redis), one request in flight; the counters are zeroed after a warm-up
and read after `--requests` requests, less what each process runs by the clock alone (measured idle
first). The emulator runs natively.

To put the counts in milliseconds, the plain SDK is also run natively at saturation (50 in flight) in the
same run: its CPU per request over its instructions per request is the rate at which this host runs such
code hot, kernel share included.

    python -m bench instructions [--provider openai] [--requests 100] [--paths sdk,adapter,bare,fleet]
                                 [--tokens N] [--keep DIR]

With `--tokens N`, the requests are streams, and the count is per streamed token: streams of N tokens less
streams of one, over N - 1 (each stream's setup and end cancel out).

`--keep DIR` keeps callgrind's files, for `callgrind_annotate` (C-level functions: the interpreter,
pydantic-core, hiredis, the json codec).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from bench.harness import Clock
from bench.latency import MODELS, closed_loop
from bench.sdk import DirectSDK
from launcher.processes import start_emulator, worker_env
from schemas.catalog import Provider, resolve_model
from schemas.request import LLMRequest
from workers.settings import WorkerSettings

PATHS = ("sdk", "adapter", "bare", "fleet")
_WARM = 20
_IDLE_S = 10.0
_STARTUP_S = 600.0  # a Python process importing three SDKs runs ~50x slower under callgrind


def _request(provider: Provider, i: int, tokens: int = 0) -> LLMRequest:
    """A short request; with `tokens`, a stream of that many tokens at 50 a second."""
    if not tokens:
        return LLMRequest(model=MODELS[provider], max_tokens=16, messages=[{"role": "user", "content": f"count {i}"}])
    text = f"count {i} [[tokens={tokens}]] [[tokens_per_s=50]]"
    return LLMRequest(model=MODELS[provider], max_tokens=500, stream=True, messages=[{"role": "user", "content": text}])


class Counted:
    """A process under callgrind: its counters can be zeroed and read while it runs."""

    def __init__(self, role: str, args: list[str], out: Path, env: dict[str, str]) -> None:
        self.role = role
        self.out = out / role
        self.out.mkdir()
        self.log = self.out / "stderr.log"
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}/callgrind.out"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*valgrind, f"--log-file={self.out}/valgrind.log", *args],
                env={**os.environ, **env, "PYTHONHASHSEED": "0"},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )

    async def wait_for(self, marker: str, where: str = "stdout") -> None:
        """Until `marker` appears on stdout (a line of its own) or in the stderr log."""
        async with asyncio.timeout(_STARTUP_S):
            if where == "stdout":
                assert self.proc.stdout is not None
                while (line := await asyncio.to_thread(self.proc.stdout.readline)) and line.strip() != marker.encode():
                    pass
                if not line:
                    raise RuntimeError(f"{self.role} exited: {self.log.read_text()[-2000:]}")
            else:
                while marker not in self.log.read_text(errors="replace"):
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"{self.role} exited: {self.log.read_text()[-2000:]}")
                    await asyncio.sleep(0.5)

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    async def control(self, option: str) -> None:
        """`callgrind_control -z` (zero) or `-d` (dump); it reaches a process blocked in a system call too."""
        done = await asyncio.to_thread(
            subprocess.run, ["callgrind_control", option, str(self.proc.pid)], capture_output=True, check=False
        )
        if done.returncode:
            raise RuntimeError(f"callgrind_control {option} {self.role}: {done.stdout!r} {done.stderr!r}")

    def counted(self) -> int:
        """The instructions of the newest dump (callgrind numbers its dumps: callgrind.out.1, .2, ...)."""
        dumps = sorted(self.out.glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        for line in dumps[-1].read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
        raise RuntimeError(f"no summary in {dumps[-1]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.asynccontextmanager
async def _path(path: str, provider: Provider, out: Path, emulator_url: str) -> AsyncIterator[list[Counted]]:
    """The path's processes under callgrind, warmed: the load generator first, then the worker and Redis."""
    from tests.servers import free_port, redis_binary

    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = worker_env(redis_url, emulator_url, LLM_KEY_PREFIX=f"count{uuid.uuid4().hex[:6]}")
    env["BARE_QUEUE"] = f"bare:{uuid.uuid4().hex[:6]}"
    started: list[Counted] = []
    workdir = tempfile.mkdtemp(prefix="count-redis-")
    try:
        if path in ("bare", "fleet"):
            redis_args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
            started.append(Counted("redis", redis_args, out / path, env))
            if path == "fleet":
                worker = Counted(
                    "worker",
                    [sys.executable, "-m", "llm_fleet", "worker", "--provider", provider.value],
                    out / path,
                    env,
                )
                started.append(worker)
                await worker.wait_for("worker_ready", where="stderr")
            else:
                worker = Counted(
                    "worker", [sys.executable, "-m", "bench.bare", provider.value, env["BARE_QUEUE"]], out / path, env
                )
                started.append(worker)
                await worker.wait_for("ready")
        load = Counted(
            "caller", [sys.executable, "-m", "bench.instructions", "--child", path, provider.value], out / path, env
        )
        started.insert(0, load)
        await load.wait_for("warm")
        yield started
    finally:
        for each in started:
            each.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def _count(
    path: str, provider: Provider, batches: list[tuple[int, int]], out: Path, emulator_url: str
) -> list[dict[str, float]]:
    """Instructions per request of each process on `path`, for each batch of (requests, tokens streamed; 0:
    not a stream), less what it runs by the clock (heartbeats, Redis's cron): measured idle for `_IDLE_S`
    first, and taken off at that rate over each batch's window, which callgrind stretches 50-fold."""
    async with _path(path, provider, out, emulator_url) as processes:
        for each in processes:
            await each.control("-z")
        await asyncio.sleep(_IDLE_S)
        for each in processes:
            await each.control("-d")
        idle = {each.role: each.counted() / _IDLE_S for each in processes}
        counted = []
        for requests, tokens in batches:
            for each in processes:
                await each.control("-z")
            started = time.monotonic()
            load = processes[0]
            load.say(f"{requests} {tokens}")
            await load.wait_for("done")
            window = time.monotonic() - started
            for each in processes:
                await each.control("-d")
            counted.append({p.role: (p.counted() - idle[p.role] * window) / requests for p in processes})
        return counted


async def _hot_rate(provider: Provider, emulator_url: str) -> float:
    """Instructions per ms of CPU, from the plain SDK run natively at saturation in this process."""
    settings = WorkerSettings(**worker_env("redis://unused", emulator_url))  # type: ignore[arg-type]
    sdk = DirectSDK(provider, settings)
    try:
        await closed_loop(lambda i: sdk.complete(_request(provider, i)), 50, 500)
        clock = Clock([os.getpid()])
        await closed_loop(lambda i: sdk.complete(_request(provider, i)), 50, 3000)
        _, cpu = clock.stop()
    finally:
        await sdk.aclose()
    return cpu[os.getpid()] * 1000 / 3000


async def run(args: argparse.Namespace) -> None:
    w = sys.stdout.write
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        w("valgrind is not installed: nothing to count (Debian: apt install valgrind)\n")
        return
    provider = Provider(args.provider)
    paths = list(dict.fromkeys(["sdk", *args.paths.split(",")]))
    if args.tokens:
        paths = [p for p in paths if p != "bare"]  # the bare queue does not stream
    # a stream's cost per token: the difference between streams of `tokens` tokens and streams of one
    batches = [(args.requests, 1), (args.requests, args.tokens)] if args.tokens else [(args.requests, 0)]
    out = Path(args.keep or tempfile.mkdtemp(prefix="bench-instructions-"))
    out.mkdir(parents=True, exist_ok=True)
    emulator, url = await start_emulator()
    try:
        counts, plain_sdk = {}, 0.0
        for path in paths:
            (out / path).mkdir(exist_ok=True)
            plain = [(args.requests, 0)] if args.tokens and path == "sdk" else []  # for the rate below
            counted = await _count(path, provider, batches + plain, out, url)
            if plain:
                plain_sdk = counted.pop()["caller"]
            if args.tokens:
                short, long = counted
                counts[path] = {role: (long[role] - short[role]) / (args.tokens - 1) for role in long}
            else:
                counts[path] = counted[0]
                plain_sdk = counts["sdk"]["caller"]
            w(f"{path}: " + ", ".join(f"{role} {n / 1e6:.4f} M" for role, n in counts[path].items()) + "\n")
        sdk_ms = await _hot_rate(provider, url)
    finally:
        await emulator.stop()
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    # instructions per ms of CPU, hot: the plain SDK's (non-streaming) count over its CPU at saturation
    rate = plain_sdk / sdk_ms
    what = f"per streamed token ({args.tokens}-token streams less 1-token ones)" if args.tokens else "per request"
    unit, scale = ("k", 1e3) if args.tokens else ("M", 1e6)
    w(f"\n{provider.value}, 1 in flight, {args.requests} requests after {_WARM} to warm; the plain SDK natively at ")
    w(f"50 in flight: {sdk_ms:.3f} ms of CPU per request, {rate / 1e6:.2f} M instructions per ms\n\n")
    w(f"| path | {unit} instructions {what}: caller / worker / redis | total | minus the plain SDK | as µs, hot |\n")
    w("|---|---|---|---|---|\n")
    base = counts["sdk"]["caller"]
    for path, parts in counts.items():
        total = sum(parts.values())
        shown = " / ".join(f"{parts[r] / scale:.3f}" if r in parts else "–" for r in ("caller", "worker", "redis"))
        extra = total - base
        w(f"| {path} | {shown} | {total / scale:.3f} | {extra / scale:+.3f} | {1000 * extra / rate:+.1f} |\n")


async def _child(path: str, provider: Provider) -> None:
    """The load generator under callgrind (on asyncio's loop, as the other benchmarks' load generator): warms,
    says `warm`, then for each line `REQUESTS TOKENS` it reads sends that many requests one at a time (streams
    of TOKENS tokens, or not streams: 0) and says `done`; its counters are read while it waits for a line."""
    settings = WorkerSettings()  # from the environment, as a worker's
    call: Callable[[LLMRequest], Awaitable[object]]
    async with contextlib.AsyncExitStack() as stack:
        if path == "sdk":
            sdk = DirectSDK(provider, settings)
            stack.push_async_callback(sdk.aclose)
            call = lambda r: _drain(sdk.stream(r)) if r.stream else sdk.complete(r)
        elif path == "adapter":
            from workers.providers import build_adapter

            adapter = build_adapter(provider, settings)
            await adapter.open()
            stack.push_async_callback(adapter.aclose)
            model = resolve_model(MODELS[provider])
            call = lambda r: _drain(adapter.stream(r, model)) if r.stream else adapter.complete(r, model)
        elif path == "bare":
            from bench.bare import BareQueue

            queue = BareQueue(settings.redis_url, os.environ["BARE_QUEUE"])
            await queue.open()
            stack.push_async_callback(queue.aclose)
            call = queue.complete
        else:
            from producer import LLMClient
            from schemas.settings import FleetSettings

            client = await stack.enter_async_context(LLMClient(settings=FleetSettings()))
            call = lambda r: _drain(client.events(r, timeout=600)) if r.stream else client.complete(r, timeout=600)
        for i in range(_WARM):
            await call(_request(provider, i, tokens=i % 2 * 5 if path != "bare" else 0))
        sys.stdout.write("warm\n")
        sys.stdout.flush()
        sent = _WARM
        while line := await asyncio.to_thread(sys.stdin.readline):
            requests, tokens = map(int, line.split())
            for i in range(sent, sent + requests):
                await call(_request(provider, i, tokens))
            sent += requests
            sys.stdout.write("done\n")
            sys.stdout.flush()


async def _drain(items: AsyncIterator[object]) -> None:
    async for _ in items:
        pass


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench instructions")
    parser.add_argument("--provider", default="openai")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--paths", default=",".join(PATHS), help="besides sdk, always counted: adapter,bare,fleet")
    parser.add_argument("--tokens", type=int, default=0, help="count streams of this many tokens, per token")
    parser.add_argument("--keep", help="a folder to keep callgrind's files in")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(_child(sys.argv[2], Provider(sys.argv[3])))
    else:
        main(sys.argv[1:])
