"""The parts of arq's `Worker` that `workers/runtime.py` relies on beyond arq's documented API, pinned.

`FleetWorker` (workers/runtime.py, the only module that imports arq) subclasses arq's `Worker` and replaces
its polling queue with ours: it overrides a method arq's main loop calls, swaps arq's semaphore, and keeps
arq's task and job bookkeeping by hand. None of these names is arq's public API, so a release may rename or
drop any of them without notice; the worker would then fail in its loop (an AttributeError on a live
worker), or run on with arq's own behaviour back in place (an override nobody calls any more). arq is pinned
(`arq==0.28.0` in pyproject.toml); before that pin moves, these tests say what the new arq broke, by name.

`ARQ_PRIVATE` is the one list of those names, each with what the runtime uses it for; a test also reads
runtime.py, so that a name the runtime starts using from arq cannot be left off the list, and a name of
its own cannot silently take the place of one of arq's.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
from pathlib import Path
from typing import Any

import arq
import pytest
from arq.worker import Function, Worker, func

import workers

RUNTIME = Path(workers.__file__).parent / "runtime.py"

# name: what workers/runtime.py uses it for. Methods and properties live on the class; the other names are
# instance attributes that arq's Worker.__init__ sets.
ARQ_PRIVATE: dict[str, str] = {
    # methods
    "_poll_iteration": "overridden: arq's main loop calls it each turn; ours blocks on the provider's queue",
    "_release_sem_dec_counter_on_complete": "called as a job's task ends: job_counter down, a `sem` permit back",
    "heart_beat": "called at the end of each poll iteration (arq's health key; arq's cron, unused)",
    "record_health": "overridden to swallow a Redis error: arq's health key is not our liveness signal",
    "close": "overridden: wait for the requests cut off by the grace period before arq's close",
    # instance attributes set in Worker.__init__
    "sem": "replaced by a semaphore of exactly our concurrency; one permit per claimed job",
    "tasks": "request_id -> task: what arq's signal handler waits for (grace period), then cancels",
    "job_counter": "counted up per launched job, down by _release_sem_dec_counter_on_complete",
    "jobs_complete": "counted per finished job (arq's shutdown log and health key)",
    "jobs_failed": "counted per job whose task raised (arq's shutdown log and health key)",
    "functions": "the registered job function, by name: its coroutine and timeout_s run each request",
    "ctx": "the dict arq hands its hooks and job functions",
    "allow_pick_jobs": "set False by arq's SIGTERM handler (job_completion_wait): the worker stops claiming",
}
# Where arq's behaviour behind those names matters, not only the name: (Worker method, what it must contain).
ARQ_BEHAVIOUR: list[tuple[str, str, str]] = [
    ("main", "self._poll_iteration()", "its loop must call our _poll_iteration"),
    ("handle_sig_wait_for_completion", "self.allow_pick_jobs = False", "SIGTERM must stop the claims"),
    ("__init__", "self.handle_sig_wait_for_completion", "job_completion_wait must pick the waiting handler"),
]
# Worker.__init__ keyword arguments the runtime passes.
ARQ_ARGUMENTS = [
    "functions",
    "queue_name",
    "health_check_key",
    "health_check_interval",
    "redis_pool",
    "max_jobs",
    "job_completion_wait",
    "on_startup",
    "on_shutdown",
    "poll_delay",
]
# The fields of the `Function` that `func(...)` makes, read by the runtime's `_timed`.
ARQ_FUNCTION_FIELDS = ["coroutine", "timeout_s"]


def _broken(what: str, use: str) -> str:
    return (
        f"arq {arq.VERSION}: {what}. The arq upgrade broke workers/runtime.py, which relies on it ({use}); "
        "adapt the runtime before moving arq's pin"
    )


async def _noop(ctx: dict[Any, Any]) -> None:
    """A job function for a Worker that is built, never run."""


@pytest.fixture
async def arq_worker() -> Worker:
    """A plain arq Worker, built inside the running loop (arq takes the current one) and never connected:
    with no pool arq only keeps default RedisSettings, and without signal handling it touches no handler."""
    return Worker(functions=[func(_noop, name="noop", timeout=5)], redis_pool=None, handle_signals=False)


@pytest.mark.parametrize(("name", "use"), ARQ_PRIVATE.items(), ids=list(ARQ_PRIVATE))
def test_arq_worker_has_what_the_runtime_uses(arq_worker: Worker, name: str, use: str) -> None:
    assert hasattr(arq_worker, name), _broken(f"Worker has no attribute {name!r}", use)


@pytest.mark.parametrize(
    "name", ["_poll_iteration", "_release_sem_dec_counter_on_complete", "heart_beat", "record_health", "close"]
)
def test_the_methods_the_runtime_calls_or_overrides_are_methods(name: str) -> None:
    assert callable(inspect.getattr_static(Worker, name, None)), _broken(
        f"Worker.{name} is no longer a method", ARQ_PRIVATE[name]
    )


@pytest.mark.parametrize(("method", "needle", "use"), ARQ_BEHAVIOUR, ids=[m for m, _, _ in ARQ_BEHAVIOUR])
def test_arq_still_does_what_the_runtime_counts_on(method: str, needle: str, use: str) -> None:
    source = inspect.getsource(getattr(Worker, method))
    assert needle in source, _broken(f"Worker.{method} no longer does `{needle}`", use)


async def test_releasing_a_job_gives_back_a_permit_and_counts_down(arq_worker: Worker) -> None:
    arq_worker.sem = asyncio.BoundedSemaphore(1)  # as FleetWorker does
    await arq_worker.sem.acquire()  # a claimed job's permit
    arq_worker.job_counter = 1

    arq_worker._release_sem_dec_counter_on_complete()

    assert arq_worker.job_counter == 0, _broken("the job counter is not counted down", ARQ_PRIVATE["job_counter"])
    assert not arq_worker.sem.locked(), _broken("the permit is not given back", ARQ_PRIVATE["sem"])


def test_the_constructor_takes_the_runtime_s_arguments() -> None:
    parameters = inspect.signature(Worker.__init__).parameters
    missing = [name for name in ARQ_ARGUMENTS if name not in parameters]
    assert not missing, _broken(f"Worker() takes no {', '.join(missing)}", "FleetWorker.__init__ passes them")


def test_a_registered_function_keeps_its_coroutine_and_timeout() -> None:
    function = func(_noop, name="noop", timeout=5)
    assert isinstance(function, Function)
    for field in ARQ_FUNCTION_FIELDS:
        assert hasattr(function, field), _broken(f"Function has no {field!r}", "FleetWorker._timed runs the job by it")
    assert function.coroutine is _noop and function.timeout_s == 5


def _fleet_worker() -> ast.ClassDef:
    tree = ast.parse(RUNTIME.read_text())
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "FleetWorker")


def _own_names(cls: ast.ClassDef) -> set[str]:
    """What FleetWorker defines: its methods, and the attributes it assigns (`self.x = ...`)."""
    names = {n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.attr for t in targets if isinstance(t, ast.Attribute) and _is_self(t.value)}
    return names


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _is_super(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def test_every_name_the_runtime_takes_from_arq_is_pinned(arq_worker: Worker) -> None:
    """`self.x` that FleetWorker does not define, and `super().x`, come from arq: each must be in ARQ_PRIVATE."""
    cls = _fleet_worker()
    own = _own_names(cls)
    used = {
        n.attr
        for n in ast.walk(cls)
        if isinstance(n, ast.Attribute) and (_is_super(n.value) or (_is_self(n.value) and n.attr not in own))
    }
    unlisted = sorted(used - set(ARQ_PRIVATE) - {"__init__"})
    assert not unlisted, f"workers/runtime.py uses arq's Worker.{unlisted}: add them to ARQ_PRIVATE, with what for"
    overridden = sorted((own & set(dir(arq_worker))) - set(ARQ_PRIVATE) - {"__init__"})
    assert not overridden, (
        f"FleetWorker defines {overridden}, which arq {arq.VERSION}'s Worker has too: ours would replace arq's. "
        "Rename ours, or pin arq's in ARQ_PRIVATE if the replacement is meant"
    )
