"""What the start step (`start_job.lua`) decides about a claimed job, as the worker reads its reply."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from jobstore.keys import Element

__all__ = ["Started", "Verdict", "verdict"]


class Verdict(StrEnum):
    """What the start step (`start_job.lua`) decided about a claimed job, as the scripts spell it."""

    RUN = "run"  # call the provider
    WAIT = "wait"  # the provider must wait (`Started.reason`: cooldown, circuit, rpm, tpm) for `wait_s`
    EXPIRED = "expired"  # its deadline passed: never sent
    LOST = "lost"  # its worker died mid-call and re-runs are off or used up (`attempts` calls were started)
    CANCELLED = "cancelled"  # a cancel came while a worker ran it, and it is back: not run again
    DENIED = "denied"  # the allowed-models policy an operator set refuses its model: never sent
    OVER_BUDGET = "over_budget"  # its source_agent has spent its daily budget: never sent
    ENDED = "ended"  # it had ended already (its element was a leftover)
    GONE = "gone"  # no job behind the element: garbage on the queue, dropped and counted


@dataclass(frozen=True, slots=True)
class Started:
    """A claimed job and what the start step decided about it."""

    kind: Verdict
    claimed: Element
    attempts: int = 0
    retries: int = 0
    rerun: bool = False
    wait_s: float = 0.0
    reason: str = ""
    spent_usd: float = 0.0
    budget_usd: float = 0.0
    """OVER_BUDGET: what its source_agent spent today, and its budget."""
    queued_s: float = 0.0
    """RUN: how long since it was enqueued (Redis's clock)."""

    @property
    def route(self) -> int:
        return self.claimed.route

    @property
    def deadline_at(self) -> float:
        return self.claimed.deadline_at


_VERDICTS = {v.value.encode(): v for v in Verdict}  # as the scripts answer them


def verdict(claimed: Element, reply: list[Any]) -> Started:
    """The start step's reply about `claimed`, as the worker reads it."""
    kind = _VERDICTS[reply[0]]
    if kind is Verdict.RUN:  # built whole: `replace` costs more than the rest, per request
        return Started(kind, claimed, int(reply[1]), int(reply[2]), bool(reply[3]), queued_s=float(reply[4]))
    job = Started(kind, claimed, int(reply[1]), int(reply[2]), bool(reply[3]))
    if job.kind is Verdict.WAIT:
        return replace(job, wait_s=int(reply[4]) / 1000, reason=reply[5].decode())
    if job.kind is Verdict.OVER_BUDGET:
        return replace(job, spent_usd=float(reply[4]), budget_usd=float(reply[5]))
    return job
