"""Running one request: check it may run, call the provider (or stream from it), then finish it, retry it
later, or hand it to a fallback model; one log line per outcome.

Retries belong to the fleet (the SDKs' own are off): a retryable failure is retried up to
LLM_MAX_RETRIES times with exponential backoff and full jitter, never sooner than the provider's
retry-after, and never past the request's deadline. The job waits in the provider's delayed set, not
on a concurrency slot. A 429 also cools the whole provider down, for every worker.
"""

from __future__ import annotations

import asyncio
import random
import time

import structlog

from jobstore import Circuit, Element, Started, Verdict, WorkerQueue
from jobstore.policy import PolicyStore
from schemas.catalog import ModelInfo
from schemas.codec import decode_request
from schemas.errors import (
    BudgetExceededError,
    DeadlineExceededError,
    InvalidRequestError,
    LLMError,
    MalformedJobError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    RequestCancelledError,
    WorkerLostError,
)
from schemas.request import LLMRequest, deprecation, validate_for_model
from schemas.response import LLMResponse
from workers.governance import Enforcer
from workers.metrics import Metrics
from workers.outcomes import log_outcome, route_model, stored_forms
from workers.providers.base import Adapter
from workers.settings import WorkerSettings
from workers.streams import EventPublisher, EventRelay, relay

__all__ = ["Executor"]

log = structlog.get_logger("llm_fleet.worker")

# A provider call the worker closed (it timed out) keeps its concurrency token this much longer
# before the job is put aside, so that the provider has noticed the close before the token lets another
# call in: a provider counts a call until it sees it gone, and the fleet-wide limit is what it counts.
_CLOSED_CALL_LINGER_S = 0.05
_WARNED: set[str] = set()  # the deprecated models this process has warned of
_EARLY_CANCEL_S = 5.0  # how long a cancel for a job not (yet) here is remembered

_WAIT_ERRORS = {
    "cooldown": "is cooling down after a 429",
    "circuit": "has its circuit open",
    "rpm": "is at its requests-per-minute limit",
    "tpm": "is at its tokens-per-minute limit",
}


class Executor:
    """Runs the requests one worker claims, against one provider adapter."""

    def __init__(self, queue: WorkerQueue, adapter: Adapter, settings: WorkerSettings, policy: PolicyStore) -> None:
        self.queue = queue
        self.governance = Enforcer(policy)
        self.metrics = Metrics(queue.provider)
        self.adapter = adapter
        self.settings = settings
        self.provider = adapter.provider  # the API it speaks; `queue.provider` names the queue it serves
        self.relay = EventRelay(queue, coalesce=settings.stream_coalesce)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._calling: set[str] = set()  # the requests whose provider call is under way: a cancel interrupts it
        # cancels heard before their job reached this worker (the control channel and the claim's reply are
        # two connections): request_id -> when heard, oldest first, kept for _EARLY_CANCEL_S
        self._early: dict[str, float] = {}
        self.next_retry_at: float | None = None
        self.retry_due = asyncio.Event()

    def track(self, request_id: str, task: asyncio.Task[None]) -> None:
        """The task that runs `request_id` here (so that a cancel finds it, from the moment it is made)."""
        self._running[request_id] = task
        heard = self._early.pop(request_id, None)
        if heard is not None and time.monotonic() - heard < _EARLY_CANCEL_S:
            self.cancel(request_id)

    @property
    def running(self) -> list[str]:
        """The requests this worker runs now and has not been asked to stop."""
        return [request_id for request_id in self._running if request_id not in self._cancelled]

    def cancel(self, request_id: str) -> bool:
        """Stop a request this worker is running: its provider call is closed, or never made (a cancel that
        comes after the call is let be: the request is ending with its answer). False if it runs elsewhere
        (or not yet: a job that reaches this worker within a few seconds is stopped then)."""
        task = self._running.get(request_id)
        if task is None:
            now = time.monotonic()
            while self._early and next(iter(self._early.values())) < now - _EARLY_CANCEL_S:
                del self._early[next(iter(self._early))]
            self._early.pop(request_id, None)  # heard again: it moves to the end, the order stays by time
            self._early[request_id] = now
            return False
        if request_id not in self._cancelled:  # once: a second cancel must not cut the request's end short
            self._cancelled.add(request_id)
            if request_id in self._calling:  # the task waits inside the call: that is where it is cancelled
                task.cancel()
        return True

    async def run(self, claimed: Element, job: Started | None, *, again: bool = False) -> None:
        """Run a claimed job: started by its claim (`job`), or adopted from our claimed list (None: it is
        started here; `again`: see `WorkerQueue.start`)."""
        self.metrics.active.inc()
        try:
            await self._run(claimed, job, again)
        finally:
            self.metrics.active.dec()
            self._running.pop(claimed.request_id, None)
            self._cancelled.discard(claimed.request_id)

    async def _run(self, claimed: Element, job: Started | None, again: bool) -> None:
        t0 = time.perf_counter()
        if job is None:  # adopted: started here (shielded: a stopping worker's start still completes)
            job = await asyncio.shield(self.queue.start(claimed, again=again))
        if job.kind is Verdict.GONE:  # garbage on the queue: dropped (and counted) by the script, said here once
            log.warning("queue_element_dropped", element=repr(claimed.element[:200]), reason="no job behind it")
            return
        try:
            request = decode_request(job.claimed.body)  # read by the script that started it
            model = self._model(request, job.route)
            if model.queue != self.queue.provider:
                raise InvalidRequestError(f"model {model.id!r} is served by {model.queue}, not {self.queue.provider}")
        except LLMError as exc:  # a malformed job, or one for another provider: it fails alone, typed
            if job.kind is not Verdict.ENDED:
                await self._end(job, None, exc, t0, None, health=Circuit.NONE, called=False)
            return
        if job.kind is not Verdict.RUN or (job.rerun and request.stream):
            if job.kind is Verdict.RUN:  # a stream whose worker died: its tokens may have reached readers already
                request_id = job.claimed.request_id
                error = WorkerLostError(
                    f"the worker streaming {request_id!r} died; a stream is not re-run", request_id=request_id
                )
                await self._end(job, request, error, t0, None, health=Circuit.NONE, called=False)
            elif job.kind is not Verdict.ENDED:
                await self._not_run(job, request, t0)
            return
        if not self.governance.permits(model):  # this worker's own starting policy (ALLOWED_MODELS)
            await self._denied(job, request, t0, model.id, called=False)
            return
        if job.attempts == 1:  # its first call: how long it waited to be claimed
            self.metrics.queued(model.id, job.queued_s)
        if job.rerun:
            self.metrics.rerun(model.id)
            log.warning(
                "request_rerun",
                request_id=job.claimed.request_id,
                trace_id=request.trace_id,
                attempts=job.attempts,
                reason="its worker died during the provider call; the provider may bill twice",
            )
        await self._call_and_end(job, request, model, t0)

    async def _provider_call(
        self, request: LLMRequest, model: ModelInfo, publisher: EventPublisher | None, deadline_at: float
    ) -> LLMResponse:
        async with asyncio.timeout(deadline_at - time.time() if deadline_at else None):
            if publisher is not None:
                chunks = self.adapter.stream(request, model)
                return await relay(chunks, publisher, self.provider, self.settings)
            return await self.adapter.complete(request, model)

    async def _call_and_end(self, job: Started, request: LLMRequest, model: ModelInfo, t0: float) -> None:
        request_id = job.claimed.request_id
        publisher = self.relay.publisher(request_id) if request.stream else None
        try:
            if request_id in self._cancelled:  # before its call went out
                await self._end(
                    job, request, _cancel_error(request_id), t0, publisher, health=Circuit.NONE, called=False
                )
                return
            self._calling.add(request_id)
            try:
                response = await self._provider_call(request, model, publisher, job.deadline_at)
            finally:
                self._calling.discard(request_id)
        except TimeoutError:
            error: LLMError = DeadlineExceededError(
                f"request {request_id!r} ran out of time during the provider call", request_id=request_id
            )
            await self._end(job, request, error, t0, publisher, health=Circuit.NONE)
        except asyncio.CancelledError:
            if request_id not in self._cancelled:
                raise  # the worker is stopping: the job goes back to the queue
            error = _cancel_error(request_id)
            await self._end(job, request, error, t0, publisher, health=Circuit.NONE)
        except LLMError as exc:
            await self._failed(job, request, exc, t0, publisher)
        except Exception as exc:  # an adapter bug must still end the request, typed
            log.exception("adapter_failed", request_id=request_id)
            error = ProviderUnavailableError(
                f"{self.provider} call failed: {type(exc).__name__}", provider=self.provider
            )
            await self._end(job, request, error, t0, publisher, health=Circuit.ERROR)
        else:
            if job.route:
                response.fallback_from = request.model
            response.model_requested, response.selection = request.model_requested, request.selection
            usage = response.usage
            response.cost_usd = model.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            await self._end(job, request, response, t0, publisher, health=Circuit.OK)

    async def _not_run(self, job: Started, request: LLMRequest, t0: float) -> None:
        """The start script said no: the deadline passed, it was cancelled or its worker lost, or the provider
        must wait."""
        request_id = job.claimed.request_id
        if job.kind is Verdict.WAIT:  # cooling down, circuit open, or at a rate limit: a fallback now, or later
            kind = ProviderUnavailableError if job.reason == "circuit" else RateLimitedError
            error: LLMError = kind(
                f"{self.provider} {_WAIT_ERRORS[job.reason]}", provider=self.provider, retry_after=job.wait_s
            )
            await self._later(job, request, error, t0, None, waiting=True)
            return
        if job.kind is Verdict.DENIED:  # by the policy an operator set, atomically at its start
            await self._denied(job, request, t0, self._model(request, job.route).id, called=True)
            return
        if job.kind is Verdict.OVER_BUDGET:
            agent = str(request.source_agent)
            error = BudgetExceededError(agent, spent_usd=job.spent_usd, budget_usd=job.budget_usd)
        elif job.kind is Verdict.CANCELLED:
            error = _cancel_error(request_id)
        elif job.kind is Verdict.EXPIRED:
            error = DeadlineExceededError(
                f"request {request_id!r} reached its deadline before a provider was called", request_id=request_id
            )
        elif not self.settings.rerun_after_crash:
            error = WorkerLostError(
                f"the worker running {request_id!r} died during the provider call; "
                "re-running it is off (LLM_RERUN_AFTER_CRASH)",
                request_id=request_id,
            )
        else:  # a request that kills its worker (a poison pill) must not take the fleet down one by one
            error = WorkerLostError(
                f"the workers running {request_id!r} died during each of its {job.attempts} provider calls; "
                f"it is not run again (LLM_MAX_RERUNS={self.settings.max_reruns})",
                request_id=request_id,
                retryable=False,
            )
        await self._end(job, request, error, t0, None, health=Circuit.NONE)

    async def _failed(
        self, job: Started, request: LLMRequest, error: LLMError, t0: float, publisher: EventPublisher | None
    ) -> None:
        health = Circuit.ERROR if isinstance(error, ProviderError) and error.retryable else Circuit.NONE
        if not error.retryable or (publisher is not None and publisher.tokens > 0):
            await self._end(job, request, error, t0, publisher, health=health)  # nothing to retry
            return
        await self._later(job, request, error, t0, publisher, waiting=False)

    async def _later(
        self,
        job: Started,
        request: LLMRequest,
        error: LLMError,
        t0: float,
        publisher: EventPublisher | None,
        *,
        waiting: bool,
    ) -> None:
        """After a retryable failure (or a provider that must wait): retry on the same model later, move to
        the next fallback model, or fail with `error`. A wait moves to a fallback at once, if there is one."""
        request_id = job.claimed.request_id
        health = Circuit.NONE if waiting else Circuit.ERROR
        has_fallback = job.route + 1 < len(request.routes)
        retry_after = float(getattr(error, "retry_after", 0) or 0)
        if (waiting and not has_fallback) or (not waiting and job.retries < self.settings.max_retries):
            cap = min(self.settings.retry_max_s, self.settings.retry_base_s * 2**job.retries)
            run_at = time.time() + max(random.uniform(0, cap) if not waiting else 0.0, retry_after)
            if run_at < (job.deadline_at or float("inf")):
                cooldown = retry_after if isinstance(error, RateLimitedError) and not waiting else 0.0
                if isinstance(error, ProviderTimeoutError):  # we closed that call
                    await asyncio.sleep(_CLOSED_CALL_LINGER_S)
                await self.queue.defer(job.claimed, run_at, health=health, cooldown_s=cooldown, retried=not waiting)
                self.metrics.retried(self._model(request, job.route).id)
                self._schedule(run_at)
                log.info(
                    "request_retry_later",
                    request_id=request_id,
                    trace_id=request.trace_id,
                    retry=job.retries + int(not waiting),
                    in_s=round(run_at - time.time(), 3),
                    error=error.message,
                )
                return
        if has_fallback and await self._fall_back(job, request, error.message, health=health):
            return
        await self._end(job, request, error, t0, publisher, health=health)

    async def _fall_back(self, job: Started, request: LLMRequest, why: str, *, health: str, uncount: int = 0) -> bool:
        """Move the request to its next fallback model the policy allows; False when there is none."""
        found = await self.governance.next_route(request, job.route)
        if found is None:
            return False
        route, model = found
        self.metrics.fell_back(model.id)
        await self.queue.reroute(job.claimed, route, model.queue, model.id, health=health, uncount=uncount)
        log.info(
            "request_fallback",
            request_id=job.claimed.request_id,
            trace_id=request.trace_id,
            to_model=model.id,
            to_provider=model.queue,
            error=why,
        )
        return True

    async def _denied(self, job: Started, request: LLMRequest, t0: float, model: str, *, called: bool) -> None:
        """The policy refuses the model of the job's route: its next allowed fallback, or the typed error."""
        error = await self.governance.policy.refused(request, model, "start")
        uncount = 0 if called else 1 + job.rerun
        if not await self._fall_back(job, request, error.message, health=Circuit.NONE, uncount=uncount):
            await self._end(job, request, error, t0, None, health=Circuit.NONE, called=called)

    def _schedule(self, run_at: float) -> None:
        """Wake the promoter when this retry is due (the heartbeat promotes anything missed)."""
        if self.next_retry_at is None or run_at < self.next_retry_at:
            self.next_retry_at = run_at
            self.retry_due.set()

    def _model(self, request: LLMRequest, route: int) -> ModelInfo:
        """The one check every model a request reaches passes, the first and each fallback: it exists and
        its provider's rules hold (the allowed-models policy is `self.governance`'s)."""
        if not 0 <= route < len(request.routes):  # a queue element no submit wrote
            raise MalformedJobError(
                f"the job's queue element names route {route}; the request has {len(request.routes)}"
            )
        model = validate_for_model(request, request.routes[route])
        if model.id not in _WARNED and (notice := deprecation(model)):  # once per process and model
            _WARNED.add(model.id)
            log.warning("model_deprecated", model=model.id, notice=notice)
        return model

    async def _end(
        self,
        job: Started,
        request: LLMRequest | None,
        outcome: LLMResponse | LLMError,
        t0: float,
        publisher: EventPublisher | None,
        *,
        health: str,
        called: bool = True,
    ) -> None:
        """Store the outcome (and, for a stream, its terminal event); log one line. `called`: False when the
        job's start counted a provider call that was never made (the count is taken back). An outcome that
        cannot be written (an encoder's bug, or an answer no encoder takes) ends the request with a typed error
        instead: unstored, the job would stay in the claimed list, to be adopted and re-run again and again."""
        request_id = job.claimed.request_id
        if publisher is None and request is not None and request.stream:  # ended before streaming began
            publisher = self.relay.publisher(request_id, seq=await self.queue.last_seq(job.claimed))
        if publisher is not None:
            await publisher.close()
        try:
            encoded, terminal = stored_forms(outcome, publisher, priced := route_model(request, job.route))
        except Exception as exc:  # whatever it is, the request must end
            log.exception("outcome_unwritable", request_id=request_id)
            outcome = MalformedResponseError(
                f"the {self.provider} outcome could not be stored: {type(exc).__name__}",
                provider=self.provider,
                retryable=False,
            )
            encoded, terminal = stored_forms(outcome, publisher)
        dead = isinstance(outcome, LLMError) and not isinstance(outcome, RequestCancelledError)
        tokens = 0 if isinstance(outcome, LLMError) else outcome.usage.total_tokens
        uncount = 0 if called or job.kind is not Verdict.RUN else 1 + job.rerun
        cost = 0.0 if isinstance(outcome, LLMError) else outcome.cost_usd or 0.0
        agent = request.source_agent if request is not None else None
        seconds = time.perf_counter() - t0  # counted before the caller can hear of it: a scrape after sees it
        self.metrics.ended(priced.id if priced else "unknown", outcome, seconds, agent, dead, publisher)
        stored = await self.queue.finish(
            job.claimed,
            encoded,
            health=health,
            terminal_event=terminal,
            dead=dead,
            tokens=tokens,
            uncount=uncount,
            agent=agent,
            cost_usd=cost,
            seconds=seconds,
        )
        log_outcome(self.provider, request_id, request, outcome, t0, stored)


def _cancel_error(request_id: str) -> RequestCancelledError:
    return RequestCancelledError(f"request {request_id!r} was cancelled", request_id=request_id)
