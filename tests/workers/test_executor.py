"""The executor in-process against a real Redis server, with a stand-in adapter: what happens to an
outcome that cannot be stored, and to a call whose start script fails for good."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError

from jobstore import Element, Keys, Started, WorkerQueue
from jobstore.policy import PolicyStore
from producer import LLMClient
from schemas.catalog import ModelInfo, Provider
from schemas.errors import MalformedResponseError, RequestCancelledError
from schemas.policy import Policy
from schemas.request import LLMRequest
from schemas.response import LLMResponse, Usage
from tests.servers import RedisServer
from workers.executor import Executor
from workers.settings import WorkerSettings

_LONE_SURROGATE = "\ud83d"  # half a pair: no UTF-8 encoder takes it


class _Unwritable:
    """Answers with text no encoder takes (what a provider's lone `\\ud83d` escape once gave)."""

    provider = Provider.OPENAI

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, request: LLMRequest, model: ModelInfo) -> LLMResponse:
        self.calls += 1
        return _response(request, model)

    async def stream(self, request: LLMRequest, model: ModelInfo) -> AsyncGenerator[str | LLMResponse]:
        self.calls += 1
        yield "fine "
        yield _response(request, model)

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...


def _response(request: LLMRequest, model: ModelInfo) -> LLMResponse:
    return LLMResponse(
        content=f"fine {_LONE_SURROGATE}",
        usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        latency_ms=1.0,
        provider=Provider.OPENAI,
        model=model.id,
        finish_reason="stop",
        request_id=request.request_id,
        trace_id=request.trace_id,
    )


@pytest.fixture
def settings(redis_server: RedisServer) -> WorkerSettings:
    return WorkerSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"j{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def client(settings: WorkerSettings) -> AsyncIterator[LLMClient]:
    async with LLMClient(settings=settings) as c:
        yield c


async def _serve_one(redis: Redis, settings: WorkerSettings, adapter: _Unwritable) -> WorkerQueue:
    queue = WorkerQueue(redis, Keys(settings.key_prefix), "openai", "w1", result_ttl_s=60, stream_ttl_s=60)
    [job] = await queue.claim(timeout_s=5)
    await Executor(queue, adapter, settings, _policy(queue)).run(job.claimed, job)
    return queue


@pytest.mark.parametrize("stream", [False, True])
async def test_an_outcome_that_cannot_be_stored_ends_the_request_typed(
    redis: Redis, settings: WorkerSettings, client: LLMClient, stream: bool
) -> None:
    request = LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], stream=stream)
    adapter = _Unwritable()
    await client.submit(request)
    queue = await _serve_one(redis, settings, adapter)
    with pytest.raises(MalformedResponseError, match="could not be stored: PydanticSerializationError") as caught:
        await client.result(request.request_id, timeout=5)
    assert not caught.value.retryable  # it would fail the same way again
    assert await queue.claimed() == []  # nothing left behind to be adopted and re-run
    assert adapter.calls == 1
    if stream:  # the reader gets every delta, then the error, numbered without a gap
        events = [event async for event in client.subscribe(request.request_id, timeout=5)]
        assert [(e.type, e.seq) for e in events] == [("delta", 1), ("error", 2)]


class _Waiting:
    """A provider call that takes its time, and says whether it was made and whether it was closed."""

    provider = Provider.OPENAI

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.closed = asyncio.Event()

    async def complete(self, request: LLMRequest, model: ModelInfo) -> LLMResponse:
        self.started.set()
        try:
            await asyncio.sleep(30)
        finally:
            self.closed.set()
        raise AssertionError("not closed")

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...


async def _claimed(
    redis: Redis, settings: WorkerSettings, client: LLMClient, worker: str = "w1"
) -> tuple[LLMRequest, WorkerQueue, Started]:
    """A request submitted and claimed (started: running) by `worker`."""
    request = LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    await client.submit(request)
    queue = WorkerQueue(redis, Keys(settings.key_prefix), "openai", worker, result_ttl_s=60, stream_ttl_s=60)
    [job] = await queue.claim(timeout_s=5)
    return request, queue, job


async def test_an_adopted_job_whose_start_is_refused_for_good_makes_no_call_and_stays_claimed(
    redis: Redis, settings: WorkerSettings, client: LLMClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job adopted from the claimed list is started by its task; when Redis refuses that start for longer
    than the worker rides out, no provider call is made and the job stays claimed, to be adopted again."""
    request, queue, job = await _claimed(redis, settings, client)
    adapter = _Waiting()

    async def refused(_: Element, *, again: bool) -> Started:
        raise ReadOnlyError("You can't write against a read only replica.")

    monkeypatch.setattr(queue, "start", refused)
    with pytest.raises(ReadOnlyError):
        await Executor(queue, adapter, settings, _policy(queue)).run(job.claimed, None, again=True)  # type: ignore[arg-type]
    assert not adapter.started.is_set()
    assert [c.request_id for c in await queue.claimed()] == [request.request_id]


async def test_a_cancel_that_comes_before_the_task_begins_still_ends_the_request(
    redis: Redis, settings: WorkerSettings, client: LLMClient
) -> None:
    """A claim starts its job in Redis (running) before the worker has made its task: a cancel heard in
    between finds the task and ends the request as cancelled, closing the call."""
    request, queue, job = await _claimed(redis, settings, client)
    adapter = _Waiting()
    executor = Executor(queue, adapter, settings, _policy(queue))  # type: ignore[arg-type]
    task = asyncio.create_task(executor.run(job.claimed, job))
    executor.track(request.request_id, task)
    assert executor.cancel(request.request_id)  # before the task's first step
    await asyncio.wait_for(task, 5)
    with pytest.raises(RequestCancelledError):
        await client.result(request.request_id, timeout=5)
    assert await queue.claimed() == []
    assert not executor.cancel(request.request_id)  # no longer here


async def test_a_cancel_heard_before_its_job_arrives_stops_it_when_it_does(
    redis: Redis, settings: WorkerSettings, client: LLMClient
) -> None:
    """The control channel and the claim's reply come on two connections: a cancel may be heard first."""
    request, queue, job = await _claimed(redis, settings, client)
    adapter = _Waiting()
    executor = Executor(queue, adapter, settings, _policy(queue))  # type: ignore[arg-type]
    assert not executor.cancel(request.request_id)  # its job is not here yet
    task = asyncio.create_task(executor.run(job.claimed, job))
    executor.track(request.request_id, task)
    await asyncio.wait_for(task, 5)
    with pytest.raises(RequestCancelledError):
        await client.result(request.request_id, timeout=5)


async def test_a_job_cancelled_while_its_worker_died_is_not_run_again(
    redis: Redis, settings: WorkerSettings, client: LLMClient
) -> None:
    request, _, running = await _claimed(redis, settings, client, worker="dead")
    assert running.kind == "run"
    alive = WorkerQueue(redis, Keys(settings.key_prefix), "openai", "alive", result_ttl_s=60, stream_ttl_s=60)
    assert await client.cancel(request.request_id)  # flagged and told to the workers: nobody hears it
    assert await alive.release("dead") == 1
    [job] = await alive.claim(timeout_s=5)
    assert job.kind == "cancelled"
    adapter = _Unwritable()
    await Executor(alive, adapter, settings, _policy(alive)).run(job.claimed, job)  # type: ignore[arg-type]
    assert adapter.calls == 0
    with pytest.raises(RequestCancelledError):
        await client.result(request.request_id, timeout=5)


async def test_a_cancel_heard_long_before_is_forgotten(
    redis: Redis, settings: WorkerSettings, client: LLMClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("workers.executor._EARLY_CANCEL_S", 0.0)  # every early cancel is already too old
    request, queue, job = await _claimed(redis, settings, client)
    adapter = _Waiting()
    executor = Executor(queue, adapter, settings, _policy(queue))  # type: ignore[arg-type]
    assert not executor.cancel(request.request_id)
    task = asyncio.create_task(executor.run(job.claimed, job))
    executor.track(request.request_id, task)
    await asyncio.wait_for(adapter.started.wait(), 5)  # the call went out: the old cancel did not stop it
    assert executor.cancel(request.request_id)
    await asyncio.wait_for(task, 5)
    assert adapter.closed.is_set()


class _Quick(_Unwritable):
    """Answers at once, with a text any encoder takes."""

    async def complete(self, request: LLMRequest, model: ModelInfo) -> LLMResponse:
        return (await super().complete(request, model)).model_copy(update={"content": "fine"})


async def test_a_cancel_that_comes_after_the_call_lets_the_request_end_with_its_answer(
    redis: Redis, settings: WorkerSettings, client: LLMClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    request, queue, job = await _claimed(redis, settings, client)
    executor = Executor(queue, _Quick(), settings, _policy(queue))  # type: ignore[arg-type]
    finishing, finish = asyncio.Event(), queue.finish

    async def slow_finish(*args: object, **kwargs: object) -> bool:
        finishing.set()
        await asyncio.sleep(0.1)
        return await finish(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(queue, "finish", slow_finish)
    task = asyncio.create_task(executor.run(job.claimed, job))
    executor.track(request.request_id, task)
    await asyncio.wait_for(finishing.wait(), 5)
    assert executor.cancel(request.request_id) and executor.cancel(request.request_id)  # twice, even
    await asyncio.wait_for(task, 5)
    assert (await client.result(request.request_id, timeout=5)).content == "fine"
    assert await queue.claimed() == []


def _policy(queue: WorkerQueue) -> PolicyStore:
    """The starting policy of a worker with no ALLOWED_MODELS: every current and deprecated model."""
    return PolicyStore(queue.redis, queue.keys, Policy())
