"""The worker process, on arq. This is the only module that knows arq.

Kept from arq's `Worker`: the process lifecycle (`run`, startup/shutdown hooks, `close`), signal
handling with a grace period (`job_completion_wait`: SIGTERM stops claiming and lets in-flight
requests finish), its health-check key, the job function and its timeout, the task/semaphore
bookkeeping. Replaced: arq's polling queue model (a ZSET rescanned on every poll, pickled jobs,
polled results), by the push-based `jobstore.WorkerQueue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import socket
import time
import uuid
from typing import Any

import structlog
from arq.worker import Worker, func
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError, ResponseError

from jobstore import REFUSED, Element, Keys, Limits, Started, WorkerQueue, connect
from jobstore.policy import PolicyStore
from jobstore.watchdog import watch_commands
from schemas.catalog import Provider
from schemas.errors import LLMError
from schemas.policy import Policy
from workers import control as control_channel
from workers.executor import Executor
from workers.metrics import Metrics
from workers.providers import build_adapter
from workers.settings import WorkerSettings

__all__ = ["FleetWorker", "run_worker"]

log = structlog.get_logger("llm_fleet.worker")

_RETRY_CLAIM_S = 0.2
_CLAIM_AT_ONCE = 100  # the most jobs one claim script takes
_ARQ_HEALTH_S = 30.0  # arq's own health-check key; our heartbeat is the liveness signal
_CONFIRM_S = 5.0  # how long startup waits for Redis to confirm the control channel's subscription
_WATCH_S = 1.0  # how often the worker looks for Redis connections gone silent
_REMEMBERED = 10_000  # requests a worker remembers having run (adoption comes within a few heartbeats)
# The cyclic garbage collector's thresholds once started (Python's: 700, 10, 10). A collection walks every object of
# the generations it collects, about 1 µs each on a busy host, and each request in flight holds ~130 of them for
# the whole provider call: at 1000 in flight a full collection held the event loop for 100-250 ms every few
# seconds, and one of the young generations for 10-45 ms every second, every answer due meanwhile waiting (the
# p99 tail). Small young generations keep each pause to a few ms (and the total lower); a full collection comes
# once per 1000 young ones (minutes apart under load): the requests leave no cycles for it (BENCHMARKS.md).
_GC_THRESHOLDS = (200, 10, 1000)


class FleetWorker(Worker):
    """arq's Worker with our queue: `_poll_iteration` blocks on the provider's queue instead of polling."""

    def __init__(self, provider: Provider, settings: WorkerSettings, queue: str | None = None) -> None:
        """`queue`: the queue it serves, its provider's by default (a self-hosted endpoint's: its name)."""
        self.provider = provider
        queue = queue or provider.value
        self.settings = settings
        self.worker_id = f"{queue}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        keys = Keys(settings.key_prefix)
        self.redis = connect(settings.redis_url)
        limits = Limits(
            concurrency=settings.provider_concurrency,
            rpm=settings.provider_rpm,
            tpm=settings.provider_tpm,
            max_reruns=settings.max_reruns if settings.rerun_after_crash else 0,
            circuit_min_requests=settings.circuit_min_requests,
            circuit_error_rate=settings.circuit_error_rate,
            circuit_open_s=settings.circuit_open_s,
        )
        self.policy = PolicyStore(self.redis, keys, Policy.from_env(settings.allowed_models))
        self.queue = WorkerQueue(
            self.redis,
            keys,
            queue,
            self.worker_id,
            result_ttl_s=settings.result_ttl_s,
            stream_ttl_s=settings.stream_ttl_s,
            dead_letter_ttl_s=settings.dead_letter_ttl_s,
            limits=limits,
        )
        self._holding_slot = False
        self._orphans = False
        self._claim_failures = 0  # in a row
        # the requests run here lately, oldest first: an adopted job among them may have called its provider
        # (its task died, or Redis lost its finish in a crash); any other adopted job is a lost claim's
        self._launched: dict[str, None] = {}
        self.executor: Executor | None = None
        self._background: list[asyncio.Task[None]] = []
        super().__init__(
            functions=[func(self._run_request, name="llm_request", timeout=settings.provider_timeout_s + 5)],
            queue_name=f"{keys.prefix}:arq:{self.worker_id}",  # arq's own ZSET, never used: our queue is a LIST
            health_check_key=f"{keys.prefix}:arq-health:{self.worker_id}",
            health_check_interval=max(settings.heartbeat_s, _ARQ_HEALTH_S),
            redis_pool=self.redis,  # type: ignore[arg-type]  # arq names its subclass; it uses what Redis has
            max_jobs=settings.concurrency,
            job_completion_wait=settings.shutdown_grace_s,
            on_startup=self._startup,
            on_shutdown=self._shutdown,
            poll_delay=0,
        )
        # arq's own semaphore has a permit more than max_jobs (its start_jobs checks a counter as well); every
        # permit taken here is a job, so the worker holds exactly its concurrency
        self.sem = asyncio.BoundedSemaphore(settings.concurrency)

    async def _startup(self, ctx: dict[Any, Any]) -> None:  # noqa: ARG002 (arq hook signature)
        adapter = build_adapter(self.provider, self.settings)
        self.executor = Executor(self.queue, adapter, self.settings, self.policy)
        await self.executor.adapter.open()
        await self.queue.size_slots()
        await self._beat()
        control = self.redis.pubsub()
        await control.subscribe(self.queue.keys.control(self.queue.provider), self.queue.keys.policy_changed())
        await self.policy.load()  # after subscribing: a change made meanwhile is heard
        # its confirmation, or its refusal raised (an ACL without our channels): a worker that could neither
        # hear cancels nor publish results must not start
        if await control.get_message(timeout=_CONFIRM_S) is None:
            raise ConnectionError(f"Redis did not confirm the subscription to our control channel in {_CONFIRM_S} s")
        await self._check_eviction()
        self._background = [
            asyncio.create_task(self._beat_forever(), name="heartbeat"),
            asyncio.create_task(self._follow_control(control, self.executor), name="control"),
            asyncio.create_task(self._promote_retries(self.executor), name="retries"),
            asyncio.create_task(
                watch_commands(self.queue.lane, every_s=_WATCH_S, worker_id=self.worker_id), name="silence"
            ),
        ]
        gc.freeze()  # what startup made (modules, the SDK's client, settings) lives as long as we do: never walked again
        gc.set_threshold(*_GC_THRESHOLDS)
        metrics = None if self.settings.metrics_port is None else Metrics.serve(self.settings.metrics_port)
        log.info(
            "worker_ready",
            worker_id=self.worker_id,
            provider=self.provider.value,
            queue=self.queue.queue_key,
            concurrency=self.settings.concurrency,
            metrics=None if metrics is None else f"http://0.0.0.0:{metrics}/metrics",
            event_loop=type(asyncio.get_running_loop()).__module__.partition(".")[0],
        )

    async def _check_eviction(self) -> None:
        """Say so when Redis may evict our keys under memory pressure: every job hash has a TTL, which the
        `volatile-*` policies (a managed Redis's usual default) evict first, and a job whose hash is gone
        is skipped. Read from INFO, which managed Redis services allow where they disable CONFIG."""
        try:
            policy = (await self.redis.info("memory")).get("maxmemory_policy", "noeviction")
        except ResponseError:  # INFO refused (an ACL without @dangerous): nothing to go by
            return
        if policy != "noeviction":
            log.warning(
                "redis_may_evict",
                maxmemory_policy=policy,
                advice="set maxmemory-policy noeviction: an evicted job is lost",
            )

    async def _shutdown(self, ctx: dict[Any, Any]) -> None:  # noqa: ARG002
        for task in self._background:
            task.cancel()
        requeued = await self.queue.release(self.worker_id)
        if self.executor is not None:
            await self.executor.adapter.aclose()
        log.info("worker_stopped", worker_id=self.worker_id, requeued=requeued)

    async def _beat(self) -> None:
        claimed, dead_workers, returned = await self.queue.heartbeat(self.settings.dead_after_s)
        if returned:
            log.warning("tokens_returned", worker_id=self.worker_id, tokens=returned)
        if claimed > len(self.tasks):  # a claim whose reply was lost (Redis went away): adopt it
            self._orphans = True
        for dead in dead_workers:
            moved = await self.queue.release(dead)
            log.warning("worker_presumed_dead", dead_worker=dead, requeued=moved)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                await self._beat()
            except Exception:  # Redis away: keep beating; the next beat will tell
                log.warning("heartbeat_failed", worker_id=self.worker_id, exc_info=True)

    async def _follow_control(self, control: PubSub, executor: Executor) -> None:
        """Every worker of the provider hears `cancel ID`: stop it if it runs here. A renewed subscription may
        have missed cancels: they are read from the jobs' flags, which the cancel script sets before its
        broadcast."""

        def cancel(request_id: str) -> None:
            if executor.cancel(request_id):
                log.info("request_cancelling", request_id=request_id)

        async def resubscribed() -> None:
            await self._reload_policy()  # a change may have been missed too
            for request_id in await self.queue.cancelled(executor.running):
                executor.cancel(request_id)
                log.info("request_cancelling", request_id=request_id, missed=True)

        await control_channel.follow(
            control,
            quiet_s=self.settings.dead_after_s,
            cancel=cancel,
            resubscribed=resubscribed,
            policy_changed=self._reload_policy,
        )

    async def _reload_policy(self) -> None:
        try:
            policy = await self.policy.load()
        except LLMError as exc:  # Redis away: read again when the control channel is subscribed anew
            log.warning("policy_reload_failed", worker_id=self.worker_id, error=exc.message)
        else:
            log.info("policy_loaded", worker_id=self.worker_id, policy=policy.describe())

    async def _promote_retries(self, executor: Executor) -> None:
        """Queue deferred retries when they are due (this worker's, as it schedules them; the heartbeat
        catches the rest)."""
        while True:
            executor.retry_due.clear()
            try:
                next_at = await self.queue.promote()
            except (RedisError, OSError):
                next_at = time.time() + _RETRY_CLAIM_S
            executor.next_retry_at = next_at
            wait_s = None if next_at is None else max(0.0, next_at - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(executor.retry_due.wait(), wait_s)

    async def _run_request(self, ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:  # noqa: ARG002
        assert self.executor is not None
        claimed, job, again = args
        await self.executor.run(claimed, job, again=again)

    async def _poll_iteration(self) -> None:
        if not self.allow_pick_jobs:  # shutting down: arq waits for in-flight requests, then cancels
            await asyncio.sleep(0.05)
            return
        if self._orphans:
            await self._adopt_orphans()
        await self.sem.acquire()
        permits = 1 + await self._room_for_backlog()
        # a claim answered after SIGTERM runs too (within the grace period, like every request in flight): its
        # jobs are started in Redis, and put back at exit they would count as re-runs
        claimed = await self._claim(permits)
        for _ in range(permits - len(claimed)):
            self.sem.release()
        if claimed:
            self._holding_slot = False  # the token is the job's now: its end gives it back
            for job in claimed:
                self._launch(job.claimed, job)
            await asyncio.sleep(0)  # before we claim again, let the jobs send their provider calls
        await self.heart_beat()

    async def _claim(self, permits: int) -> list[Started]:
        """Up to `permits` jobs, started: several in one script when jobs are waiting (the last claim said so),
        else one, waiting for it (after a fleet-wide concurrency token, always granted when unlimited)."""
        claimed: list[Started] = []
        try:
            if permits > 1:
                claimed = await self.queue.claim_queued(permits)
            if not claimed:
                if not self._holding_slot:
                    self._holding_slot = await self.queue.acquire_slot(timeout_s=self.settings.heartbeat_s)
                if self._holding_slot:
                    claimed = await self.queue.claim(timeout_s=self.settings.heartbeat_s)
        except (RedisError, OSError) as exc:
            self._claim_failures += 1
            log.warning("claim_failed", worker_id=self.worker_id, error=str(exc), failures=self._claim_failures)
            # a refusal that lasts (a full Redis, an ACL) is asked again less and less often, up to a heartbeat
            backoff = _RETRY_CLAIM_S * 2 ** min(self._claim_failures - 1, 10)
            await asyncio.sleep(min(backoff, self.settings.heartbeat_s))
        else:
            self._claim_failures = 0
        return claimed

    async def _room_for_backlog(self) -> int:
        """Permits for more of the jobs still queued at the last claim, as many as the worker has room
        for (none with a fleet-wide concurrency limit: a job's token is taken before its claim)."""
        if self.queue.limits.concurrency:
            return 0
        extra, wanted = 0, min(self.queue.backlog, _CLAIM_AT_ONCE) - 1
        while extra < wanted and not self.sem.locked():
            await self.sem.acquire()  # free: does not wait
            extra += 1
        return extra

    async def _adopt_orphans(self) -> None:
        """Run the jobs in our claimed list that no task runs: a BLMOVE that moved a job while its reply was
        lost (a Redis restart) left it there, and no other worker would ever take it from a live one."""
        self._orphans = False
        try:
            orphans = [c for c in await self.queue.claimed() if c.request_id not in self.tasks]
        except (RedisError, OSError):
            self._orphans = True
            return
        for claimed in orphans:
            await self.sem.acquire()
            try:  # the token we held went with the lost claim, unless a later claim has used it: then one more
                while not self._holding_slot:
                    self._holding_slot = await self.queue.acquire_slot(timeout_s=self.settings.heartbeat_s)
            except (RedisError, OSError):
                self.sem.release()
                self._orphans = True
                return
            log.warning("claim_adopted", request_id=claimed.request_id, worker_id=self.worker_id)
            self._holding_slot = False  # the token is the orphan's now: its end gives it back
            self._launch(claimed, None)

    def _launch(self, claimed: Element, job: Started | None) -> None:
        """Run a claimed job: started by its claim (`job`), or adopted (None: started by its task; a job this
        process has not run lately is one whose claim's reply was lost, so no call was made for it yet)."""
        assert self.executor is not None
        self.job_counter += 1
        request_id = claimed.request_id
        again = job is None and request_id not in self._launched
        self._launched.pop(request_id, None)
        self._launched[request_id] = None
        if len(self._launched) > _REMEMBERED:
            del self._launched[next(iter(self._launched))]
        task = asyncio.create_task(self._timed(claimed, job, again))
        self.tasks[request_id] = task
        self.executor.track(request_id, task)
        task.add_done_callback(functools.partial(self._job_done, request_id))

    async def _timed(self, claimed: Element, job: Started | None, again: bool) -> None:
        """The job function, under arq's job timeout (a backstop: the request's own deadline comes first)."""
        function = self.functions["llm_request"]
        async with asyncio.timeout(function.timeout_s):
            await function.coroutine(self.ctx, claimed, job, again)

    def _job_done(self, request_id: str, task: asyncio.Task[None]) -> None:
        self._release_sem_dec_counter_on_complete()
        self.tasks.pop(request_id, None)
        if task.cancelled():
            return
        if task.exception() is not None:
            self.jobs_failed += 1
            log.error("request_task_failed", request_id=request_id, error=repr(task.exception()))
        else:
            self.jobs_complete += 1

    async def close(self) -> None:
        """arq's close, but cancelled requests (cut off by the grace period) do not abort it: they are
        requeued by the shutdown hook."""
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        await super().close()

    async def record_health(self) -> None:
        with contextlib.suppress(Exception):
            await super().record_health()


def run_worker(provider: Provider, settings: WorkerSettings, queue: str | None = None) -> int:
    """Run a worker until SIGTERM / SIGINT, on the event loop its settings name; its exit status."""
    if settings.event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop(uvloop.new_event_loop())  # arq's Worker runs on the current loop
    try:
        FleetWorker(provider, settings, queue).run()
    except REFUSED as exc:  # our credentials: no wait mends that, and a traceback would not say more
        log.error("redis_refused", error=str(exc), advice="check the user and password in REDIS_URL")
        return 1
    return 0
