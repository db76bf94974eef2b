"""The queue model, run directly against a real Redis server: submit, claim, start, finish, recover."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from jobstore import Element, Field, Keys, Limits, Verdict, WorkerQueue
from producer import LLMClient
from schemas.codec import encode_error, encode_response
from schemas.errors import RequestConflictError, RequestNotFoundError, ResultTimeoutError, UnknownModelError
from schemas.request import LLMRequest
from schemas.response import LLMResponse, Usage
from schemas.settings import FleetSettings
from tests.servers import RedisServer


@pytest.fixture
def settings(redis_server: RedisServer) -> FleetSettings:
    return FleetSettings(REDIS_URL=redis_server.url, LLM_KEY_PREFIX=f"q{uuid.uuid4().hex[:8]}", LLM_RESULT_TTL=60)


@pytest.fixture
async def fleet_client(settings: FleetSettings) -> AsyncIterator[LLMClient]:
    async with LLMClient(settings=settings) as c:
        yield c


def _queue(redis: Redis, keys: Keys, worker: str = "w1", provider: str = "openai") -> WorkerQueue:
    return WorkerQueue(redis, keys, provider, worker, result_ttl_s=60, stream_ttl_s=60)


def _request(**kw: object) -> LLMRequest:
    return LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], **kw)  # type: ignore[arg-type]


def _response(request: LLMRequest, content: str = "hello") -> LLMResponse:
    return LLMResponse(
        content=content,
        usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        latency_ms=1.0,
        provider="openai",
        model="gpt-4.1-mini-2025-04-14",
        finish_reason="stop",
        request_id=request.request_id,
        trace_id=request.trace_id,
    )


async def _serve_one(queue: WorkerQueue, content: str = "hello") -> str:
    [started] = await queue.claim(timeout_s=5)
    assert started.kind == "run"
    claimed = started.claimed
    request = LLMRequest.model_validate_json(claimed.body)
    assert claimed.request_id == request.request_id and claimed.deadline_at > time.time()
    await queue.finish(claimed, encode_response(_response(request, content)))
    return claimed.request_id


async def test_submit_claim_finish_wakes_the_caller(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    queue = _queue(redis, Keys(settings.key_prefix))
    request = _request(source_agent="planner")
    waiting = asyncio.create_task(fleet_client.complete(request, timeout=5))
    served = await _serve_one(queue)
    response = await waiting
    assert served == request.request_id
    assert response.content == "hello" and response.trace_id == request.request_id
    job = await redis.hgetall(Keys(settings.key_prefix).request(request.request_id))
    assert job[Field.STATE.encode()] == b"done"
    assert job[Field.ATTEMPTS.encode()] == b"1"
    assert Field.ELEMENT.encode() not in job and Field.REPLY.encode() not in job  # a kept result needs neither
    assert await redis.llen(queue.claimed_key) == 0  # nothing left claimed
    assert 0 < await redis.ttl(Keys(settings.key_prefix).request(request.request_id)) <= 60


async def test_submit_returns_at_once_and_result_waits(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    request = _request()
    assert await fleet_client.submit(request) == request.request_id
    [element] = await redis.lrange(Keys(settings.key_prefix).queue("openai"), 0, -1)
    assert Element.parse(element).request_id == request.request_id  # the job itself is on the queue
    assert b"messages" not in element  # its body is kept once, in the job hash
    waiting = asyncio.create_task(fleet_client.result(request.request_id, timeout=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await _serve_one(_queue(redis, Keys(settings.key_prefix)))
    assert (await waiting).content == "hello"
    # once stored, the result is returned at once, also to another client
    async with LLMClient(settings=settings) as other:
        assert (await other.result(request.request_id, timeout=1)).content == "hello"


async def test_same_request_twice_is_queued_once(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    request = _request()
    first = asyncio.create_task(fleet_client.complete(request, timeout=5))
    second = asyncio.create_task(fleet_client.complete(request.model_copy(), timeout=5))
    await asyncio.sleep(0.05)
    assert await redis.llen(Keys(settings.key_prefix).queue("openai")) == 1
    await _serve_one(_queue(redis, Keys(settings.key_prefix)))
    assert (await first).content == (await second).content == "hello"
    # after the result is stored, resubmitting returns it without queueing anything
    again = await fleet_client.complete(request.model_copy(), timeout=1)
    assert again.content == "hello"
    assert await redis.llen(Keys(settings.key_prefix).queue("openai")) == 0


async def test_same_id_with_another_body_is_refused(fleet_client: LLMClient) -> None:
    request = _request()
    await fleet_client.submit(request)
    other = LLMRequest.model_validate({**request.model_dump(), "messages": [{"role": "user", "content": "else"}]})
    with pytest.raises(RequestConflictError, match=request.request_id):
        await fleet_client.submit(other)


async def test_a_refused_stream_leaves_the_request_it_collided_with_alone(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    request = _request()
    await fleet_client.submit(request)
    other = LLMRequest.model_validate({**request.model_dump(), "messages": [{"role": "user", "content": "else"}]})
    with pytest.raises(RequestConflictError, match=request.request_id):
        async for _ in fleet_client.events(other):
            pass
    assert await redis.hget(Keys(settings.key_prefix).request(request.request_id), Field.STATE) == b"queued"
    assert await redis.llen(Keys(settings.key_prefix).queue("openai")) == 1


async def test_a_stream_abandoned_while_its_submit_is_in_flight_is_cancelled(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit = fleet_client._submit

    async def queued_then_abandoned(request: LLMRequest, timeout: float | None = None) -> object:
        await submit(request, timeout)  # the script has queued it, and the caller goes away before its reply
        raise asyncio.CancelledError

    monkeypatch.setattr(fleet_client, "_submit", queued_then_abandoned)
    request = _request()
    with pytest.raises(asyncio.CancelledError):
        async for _ in fleet_client.events(request):
            pass
    assert await redis.hget(Keys(settings.key_prefix).request(request.request_id), Field.STATE) == b"done"  # cancelled
    assert await redis.llen(Keys(settings.key_prefix).queue("openai")) == 0


async def test_invalid_request_is_refused_before_queueing(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    with pytest.raises(UnknownModelError, match="gpt-4.1-mni"):
        await fleet_client.submit(LLMRequest(model="gpt-4.1-mni", messages=[{"role": "user", "content": "x"}]))
    assert await redis.llen(Keys(settings.key_prefix).queue("openai")) == 0


async def test_unknown_request_id_is_a_clear_error(fleet_client: LLMClient) -> None:
    with pytest.raises(RequestNotFoundError, match="nope"):
        await fleet_client.result("nope", timeout=1)


async def test_timeout_says_queued_and_how_many_workers(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    request = _request()
    await _queue(redis, Keys(settings.key_prefix)).heartbeat(dead_after_s=10)  # one live worker, which never claims
    with pytest.raises(ResultTimeoutError) as caught:
        await fleet_client.complete(request, timeout=0.2)
    assert caught.value.queued is True
    assert caught.value.workers == 1
    assert "still queued" in caught.value.message and "1 live openai worker" in caught.value.message


async def test_error_outcome_reaches_the_caller_typed(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    from schemas.errors import RateLimitedError

    queue = _queue(redis, Keys(settings.key_prefix))
    request = _request()
    waiting = asyncio.create_task(fleet_client.complete(request, timeout=5))
    [started] = await queue.claim(timeout_s=5)
    assert started.kind == "run"
    await queue.finish(started.claimed, encode_error(RateLimitedError("slow down", provider="openai", retry_after=3.0)))
    with pytest.raises(RateLimitedError) as caught:
        await waiting
    assert caught.value.retry_after == 3.0 and caught.value.retryable


async def test_a_request_gets_one_result_only(redis: Redis, settings: FleetSettings, fleet_client: LLMClient) -> None:
    queue = _queue(redis, Keys(settings.key_prefix))
    request = _request()
    await fleet_client.submit(request)
    [element] = await redis.lrange(Keys(settings.key_prefix).queue("openai"), 0, -1)
    await _serve_one(queue, "first")
    again = Element.parse(element)  # the same job, finished a second time
    assert not await queue.finish(again, encode_response(_response(request, "second")))
    assert (await fleet_client.result(request.request_id, timeout=1)).content == "first"
    assert (await queue.start(again)).kind is Verdict.ENDED  # a done request never runs again


async def test_a_dead_workers_jobs_go_back_to_the_queue(
    redis: Redis, settings: FleetSettings, fleet_client: LLMClient
) -> None:
    dead, alive = _queue(redis, Keys(settings.key_prefix), "dead"), _queue(redis, Keys(settings.key_prefix), "alive")
    request = _request()
    await fleet_client.submit(request)
    await dead.heartbeat(dead_after_s=10)
    [started] = await dead.claim(timeout_s=1)
    assert started.claimed.request_id == request.request_id
    assert started.kind == "run"  # the provider call started, then the worker died
    await redis.zadd(Keys(settings.key_prefix).workers("openai"), {"dead": 1.0})  # its last beat, long ago
    assert await alive.heartbeat(dead_after_s=10) == (0, ["dead"], 0)
    assert await alive.release("dead") == 1
    assert await redis.zscore(Keys(settings.key_prefix).workers("openai"), "dead") is None
    await _serve_one(alive, "rerun")
    job = await redis.hgetall(Keys(settings.key_prefix).request(request.request_id))
    assert job[b"attempts"] == b"2" and job[b"worker"] == b"alive"  # the re-run is recorded, not silent
    assert (await fleet_client.result(request.request_id, timeout=1)).content == "rerun"


async def test_a_request_whose_workers_keep_dying_is_not_run_again(
    redis: Redis, settings: FleetSettings, fleet_client: LLMClient
) -> None:
    """Each worker that starts it dies mid-call (a poison pill): it is re-run up to `max_reruns` times, then
    the start script says 'lost' (with the calls started so far) instead of 'run'."""
    request = _request()
    await fleet_client.submit(request)
    verdicts = []
    for i in range(4):
        worker = WorkerQueue(
            redis,
            Keys(settings.key_prefix),
            "openai",
            f"w{i}",
            result_ttl_s=60,
            stream_ttl_s=60,
            limits=Limits(max_reruns=2),
        )
        [started] = await worker.claim(timeout_s=1)
        verdicts.append((started.kind, started.attempts, started.rerun))
        if started.kind != "run":
            break
        assert await worker.release(f"w{i}") == 1  # it died during the call: its job goes back
    assert verdicts == [("run", 1, False), ("run", 2, True), ("run", 3, True), ("lost", 3, False)]
    assert await redis.hget(Keys(settings.key_prefix).request(request.request_id), "reruns") == b"2"


async def test_with_re_runs_off_a_job_whose_worker_died_is_lost_at_once(
    redis: Redis, settings: FleetSettings, fleet_client: LLMClient
) -> None:
    """LLM_RERUN_AFTER_CRASH=false is no re-runs at all: the next worker is told 'lost', not 'run'."""
    request = _request()
    await fleet_client.submit(request)
    first, second = (
        WorkerQueue(
            redis, Keys(settings.key_prefix), "openai", w, result_ttl_s=60, stream_ttl_s=60, limits=Limits(max_reruns=0)
        )
        for w in ("first", "second")
    )
    [started] = await first.claim(timeout_s=1)
    assert started.kind == "run"
    assert await first.release("first") == 1
    [lost] = await second.claim(timeout_s=1)
    assert (lost.kind, lost.attempts) == ("lost", 1)


async def test_a_worker_whose_clock_is_behind_is_not_presumed_dead(
    redis: Redis, settings: FleetSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeats are on Redis's clock: a worker whose own clock runs a minute behind the others' (hosts
    disagree) is alive to them, and its running jobs are not taken from it and re-run."""
    behind, right = (
        _queue(redis, Keys(settings.key_prefix), "behind"),
        _queue(redis, Keys(settings.key_prefix), "right"),
    )
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 60)
    await behind.heartbeat(dead_after_s=10)
    monkeypatch.setattr(time, "time", real)
    assert await right.heartbeat(dead_after_s=10) == (0, [], 0)


async def test_a_queued_id_without_a_job_is_skipped(redis: Redis, settings: FleetSettings) -> None:
    queue = _queue(redis, Keys(settings.key_prefix))
    await redis.lpush(Keys(settings.key_prefix).queue("openai"), "ghost")
    [started] = await queue.claim(timeout_s=1)
    assert (started.claimed.request_id, started.kind) == ("ghost", Verdict.GONE)  # no job behind it: dropped
    assert await redis.llen(queue.claimed_key) == 0


async def test_reply_carries_the_request_id_and_outcome(
    redis: Redis, settings: FleetSettings, fleet_client: LLMClient
) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(Keys(settings.key_prefix).reply(fleet_client.client_id))
    await pubsub.get_message(timeout=1)
    request = _request()
    await fleet_client.submit(request)
    await _serve_one(_queue(redis, Keys(settings.key_prefix)))
    message = await pubsub.get_message(timeout=2)
    assert message is not None
    request_id, _, outcome = message["data"].partition(b"\n")
    assert request_id.decode() == request.request_id
    assert json.loads(outcome)["ok"]["content"] == "hello"
    await pubsub.aclose()


async def test_a_token_taken_while_its_reply_was_lost_goes_back_at_the_next_heartbeat(
    redis: Redis, settings: FleetSettings, fleet_client: LLMClient
) -> None:
    """A token BLMOVE that ran while its reply was lost leaves the worker holding a token it does not know
    of; it takes another. Its heartbeat sees more held tokens than claimed jobs + 1 and gives the extra back."""
    queue = WorkerQueue(
        redis, Keys(settings.key_prefix), "openai", "w1", result_ttl_s=60, stream_ttl_s=60, limits=Limits(concurrency=3)
    )
    slots, held = Keys(settings.key_prefix).slots("openai"), Keys(settings.key_prefix).held("w1")
    assert await queue.size_slots() == 3
    assert await queue.acquire_slot(timeout_s=1)  # its reply lost: the worker does not know it holds this one
    assert await queue.acquire_slot(timeout_s=1)  # the one it takes instead, for its next claim
    assert await queue.heartbeat(dead_after_s=10) == (0, [], 1)
    assert (await redis.llen(held), await redis.llen(slots)) == (1, 2)  # type: ignore[misc]
    await fleet_client.submit(_request())
    assert await queue.claim(timeout_s=1)  # the held token is this job's now
    assert await queue.heartbeat(dead_after_s=10) == (1, [], 0)  # one job, one token: nothing to give back
    assert await queue.acquire_slot(timeout_s=1)  # and one more for the next claim: still nothing
    assert await queue.heartbeat(dead_after_s=10) == (1, [], 0)
    assert (await redis.llen(held), await redis.llen(slots)) == (2, 1)  # type: ignore[misc]


async def test_a_claim_tells_the_backlog_and_one_script_claims_and_starts_it(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    queue = _queue(redis, Keys(settings.key_prefix))
    requests = [_request() for _ in range(5)]
    for request in requests:
        await fleet_client.submit(request)
    [first] = await queue.claim(timeout_s=1)
    assert first.kind == "run"
    assert queue.backlog == 4  # queued behind it
    taken = await queue.claim_queued(3)
    assert [j.claimed.request_id for j in taken] == [r.request_id for r in requests[1:4]]  # oldest first
    assert [(j.kind, j.attempts) for j in taken] == [("run", 1)] * 3  # each started
    assert await redis.llen(queue.claimed_key) == 4  # claimed as BLMOVE claims: nothing lost in a crash
    assert queue.backlog == 1
    assert [j.claimed.request_id for j in await queue.claim_queued(3)] == [requests[4].request_id]
    assert queue.backlog == 0
    assert await queue.claim_queued(3) == []


async def test_a_claim_takes_and_starts_its_job_in_one_round_trip(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    """The start script is sent with the BLMOVE that waits: Redis runs it as the job arrives, so the job
    comes back started (running, its attempt counted, in the claimed list), with nothing left in the inbox."""
    queue = _queue(redis, Keys(settings.key_prefix))
    waiting = asyncio.create_task(queue.claim(timeout_s=5))
    await asyncio.sleep(0.1)  # the BLMOVE is blocked now
    request = _request()
    await fleet_client.submit(request)
    [started] = await asyncio.wait_for(waiting, 2)
    assert (started.kind, started.attempts, started.rerun) == ("run", 1, False)
    job = await redis.hgetall(Keys(settings.key_prefix).request(request.request_id))
    assert (job[b"state"], job[b"worker"], job[b"attempts"]) == (b"running", b"w1", b"1")
    assert float(job[b"upstream_at"]) == pytest.approx(time.time(), abs=5)  # Redis's clock
    assert await redis.lrange(queue.claimed_key, 0, -1) == [started.claimed.element]
    assert await redis.llen(queue.inbox_key) == 0
    assert await queue.claim(timeout_s=0.1) == []  # nothing queued: the BLMOVE times out, the script finds none


async def test_a_job_queued_with_its_body_in_its_element_still_runs(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    """Elements carried the body before it was kept in the job hash only: one queued then reads the same."""
    request = _request()
    await fleet_client.submit(request)
    queue_key = Keys(settings.key_prefix).queue("openai")
    [element] = await redis.lrange(queue_key, 0, -1)
    old = element + b"\n" + request.model_dump_json().encode()
    await redis.lset(queue_key, 0, old)
    await redis.hset(Keys(settings.key_prefix).request(request.request_id), "element", old)
    [started] = await _queue(redis, Keys(settings.key_prefix)).claim(timeout_s=1)
    assert (started.kind, started.claimed.element) == ("run", old)
    assert LLMRequest.model_validate_json(started.claimed.body) == request
    assert started.claimed.deadline_at > time.time()


async def test_a_claim_sent_when_redis_forgot_its_scripts_still_starts_the_job(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    """After a restart Redis knows no script: the BLMOVE moves the job into the inbox, its script is refused
    (NOSCRIPT), and the script is loaded and run on its own, finding the job where the BLMOVE left it."""
    queue = _queue(redis, Keys(settings.key_prefix))
    request = _request()
    await fleet_client.submit(request)
    await redis.script_flush()
    [started] = await queue.claim(timeout_s=1)
    assert (started.claimed.request_id, started.kind) == (request.request_id, "run")
    assert await redis.llen(queue.inbox_key) == 0 and await redis.llen(queue.claimed_key) == 1


async def test_a_job_left_in_the_inbox_is_claimed_at_the_next_heartbeat_or_released(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    """A BLMOVE whose script never ran (Redis went down between the two) leaves its job in the inbox: the
    worker's heartbeat moves it to the claimed list (to be adopted), and a dead worker's inbox is requeued."""
    queue = _queue(redis, Keys(settings.key_prefix))
    for _ in range(2):
        await fleet_client.submit(_request())
        await redis.lmove(Keys(settings.key_prefix).queue("openai"), queue.inbox_key, "RIGHT", "LEFT")
        assert await queue.heartbeat(dead_after_s=10) == (1, [], 0)  # counted as claimed: adopted next
        assert await redis.llen(queue.inbox_key) == 0
        await redis.lmove(queue.claimed_key, queue.inbox_key, "LEFT", "LEFT")
        assert await queue.release("w1") == 1
        assert await redis.llen(Keys(settings.key_prefix).queue("openai")) == 1
        await redis.delete(Keys(settings.key_prefix).queue("openai"))


async def test_an_adopted_job_of_ours_whose_verdict_was_lost_is_not_a_re_run(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    """A claim whose reply was lost left its job running as ours though no call was made: started `again`
    by this worker, it runs as its first attempt; started by a worker that may have called it, it is a re-run."""
    queue = _queue(redis, Keys(settings.key_prefix))
    await fleet_client.submit(_request())
    [first] = await queue.claim(timeout_s=1)  # its reply "lost": no task runs it
    again = await queue.start(first.claimed, again=True)
    assert (again.kind, again.attempts, again.rerun) == ("run", 1, False)
    rerun = await queue.start(first.claimed)
    assert (rerun.kind, rerun.attempts, rerun.rerun) == ("run", 2, True)
    other = await _queue(redis, Keys(settings.key_prefix), "w2").start(first.claimed, again=True)  # not ours: a re-run
    assert (other.kind, other.rerun) == ("run", True)


async def test_a_claim_under_load_stops_at_a_job_that_must_wait(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    queue = _queue(redis, Keys(settings.key_prefix))
    for _ in range(3):
        await fleet_client.submit(_request())
    await redis.set(Keys(settings.key_prefix).cooldown("openai"), "1", px=5000)
    [job] = await queue.claim_queued(3)
    assert (job.kind, job.reason) == ("wait", "cooldown") and 4 < job.wait_s <= 5
    assert queue.backlog == 2 and await redis.llen(Keys(settings.key_prefix).queue("openai")) == 2


async def test_the_circuits_counts_keep_only_the_buckets_it_reads(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outcomes are counted per 10 s bucket in one hash; a provider busy for days must not grow it: a new
    bucket sheds the old ones, those left from before a pause of up to a minute too."""
    import jobstore.queue

    queue = WorkerQueue(
        redis,
        Keys(settings.key_prefix),
        "openai",
        "w1",
        result_ttl_s=60,
        stream_ttl_s=60,
        limits=Limits(circuit_min_requests=3),
    )
    health = Keys(settings.key_prefix).health("openai")
    start = int(time.time() // 10) * 10.0
    buckets = [*range(10), *range(15, 20)]  # 50 s without a request between the tenth bucket and the next
    for b in buckets:
        monkeypatch.setattr(jobstore.queue, "time", _Clock(start + 10 * b + 1))
        await fleet_client.submit(_request())
        [job] = await queue.claim(timeout_s=5)
        await queue.finish(job.claimed, encode_error(UnknownModelError("x")), health="ok")
        assert await redis.hlen(health) <= 4  # type: ignore[misc]
    first = int(start // 10)
    assert await redis.hgetall(health) == {f"ok:{first + b}".encode(): b"1" for b in (17, 18, 19)}  # type: ignore[misc]
    for _ in range(3):  # the recent buckets still decide: three errors among three successes open it
        await fleet_client.submit(_request())
        [job] = await queue.claim(timeout_s=5)
        await queue.finish(job.claimed, encode_error(UnknownModelError("x")), health="err")
    assert await redis.get(Keys(settings.key_prefix).circuit("openai")) == b"open"
    assert await redis.exists(health) == 0


class _Clock:
    """`time` as jobstore.queue sees it, its wall clock set."""

    monotonic = staticmethod(time.monotonic)

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_the_dead_letter_set_forgets_letters_whose_hash_expired(
    fleet_client: LLMClient, redis: Redis, settings: FleetSettings
) -> None:
    week = 7 * 86400
    await redis.zadd(
        Keys(settings.key_prefix).dead(), {"long-gone": time.time() - week - 60, "recent": time.time() - 60}
    )
    request = _request()
    await fleet_client.submit(request)
    [started] = await _queue(redis, Keys(settings.key_prefix)).claim(timeout_s=5)
    await _queue(redis, Keys(settings.key_prefix)).finish(
        started.claimed, encode_error(UnknownModelError("x")), dead=True
    )
    letters = await redis.zrange(Keys(settings.key_prefix).dead(), 0, -1)
    assert sorted(letters) == sorted([b"recent", request.request_id.encode()])
