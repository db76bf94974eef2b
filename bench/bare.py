"""The least a Redis queue can do, as the floor under the fleet's cost: the caller `LPUSH`es the request and
waits on its one reply channel; a worker process `BRPOP`s, calls the fleet's own adapter and `PUBLISH`es
the answer. The same codec, the same lean Redis path (`jobstore`'s lane), the same event loop as the fleet's
worker; no job hash, no scripts, no state, no limits, no logs: a lost worker or message loses the request.

    python -m bench latency --bare      (this module's worker half: python -m bench.bare PROVIDER QUEUE)
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import uvloop
from redis.asyncio import Redis

from jobstore import Lane
from schemas.catalog import Provider, resolve_model
from schemas.codec import decode_outcome, decode_request, encode_response
from schemas.request import LLMRequest
from workers.providers import build_adapter
from workers.settings import WorkerSettings


class BareQueue:
    """The caller's half: one reply channel, read straight off its connection (as the fleet's hub does)."""

    def __init__(self, url: str, queue: str) -> None:
        self._redis = Redis.from_url(url)
        self._lane = Lane(self._redis)
        self._queue = queue
        self._channel = f"{queue}:reply:{uuid.uuid4().hex}"
        self._waiting: dict[bytes, asyncio.Future[bytes]] = {}
        self._listener: asyncio.Task[None] | None = None

    async def open(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._channel)
        while await pubsub.get_message(timeout=1.0) is None:  # the confirmation: the channel is live
            pass
        self._listener = asyncio.create_task(self._listen(pubsub))

    async def _listen(self, pubsub: object) -> None:
        connection = pubsub.connection  # type: ignore[attr-defined]
        while True:
            reply = await connection.read_response(push_request=True)
            if reply[0] == b"message":
                request_id, _, outcome = reply[2].partition(b"\n")
                waiter = self._waiting.pop(request_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(outcome)

    async def complete(self, request: LLMRequest) -> object:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id.encode()] = waiter
        await self._lane.execute("LPUSH", self._queue, f"{self._channel}\n{request.model_dump_json()}")
        return decode_outcome(await waiter)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        await self._redis.aclose()


async def start_worker(provider: Provider, queue: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bare", provider.value, queue, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)  # "ready"
    return proc


async def _serve(provider: Provider, queue: str) -> None:
    settings = WorkerSettings()  # type: ignore[call-arg]  # from the environment, as the fleet's worker
    adapter = build_adapter(provider, settings)
    await adapter.open()
    lane = Lane(Redis.from_url(settings.redis_url))
    running: set[asyncio.Task[None]] = set()

    async def handle(raw: bytes) -> None:
        channel, _, body = raw.partition(b"\n")
        request = decode_request(body)
        response = await adapter.complete(request, resolve_model(request.model))
        await lane.execute("PUBLISH", channel, f"{request.request_id}\n{encode_response(response)}")

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        popped = await lane.execute("BRPOP", queue, 1, blocking_s=1)
        if popped is not None:
            task = asyncio.create_task(handle(popped[1]))
            running.add(task)
            task.add_done_callback(running.discard)


if __name__ == "__main__":
    uvloop.run(_serve(Provider(sys.argv[1]), sys.argv[2]))
