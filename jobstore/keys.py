"""Every Redis key and channel name, built from one prefix (`LLM_KEY_PREFIX`); the job hash's fields; the
job's states; the queue element.

No name spans two providers, so each provider's queue can later live on its own server.

    {prefix}:queue:{provider}        LIST   jobs waiting, as "{request_id}\\n{route}\\n{deadline}" (LPUSH in, BLMOVE
                                            out; the body is in the job hash, read by the claim's script)
    {prefix}:req:{request_id}        HASH   the job: body, digest, state, timestamps, result (fields below)
    {prefix}:claimed:{worker_id}     LIST   jobs a worker has taken and not finished (crash recovery)
    {prefix}:inbox:{worker_id}       LIST   the job a worker's BLMOVE has just taken, for the moment until the
                                            start script sent with it moves it on to claimed
    {prefix}:workers:{provider}      ZSET   worker ids scored by their last heartbeat (unix seconds)
    {prefix}:reply:{client_id}       PUBSUB where workers push finished results to a waiting client
    {prefix}:tokens:{request_id}     PUBSUB a streaming request's events, live
    {prefix}:events:{request_id}     STREAM the same events, kept for replay
    {prefix}:control:{provider}      PUBSUB to that provider's workers: 'cancel {request_id}' (stop it if it runs
                                            here)
    {prefix}:delayed:{provider}      ZSET   jobs waiting to be retried, scored by when (unix seconds)
    {prefix}:slots:{provider}        LIST   the fleet-wide concurrency tokens of a provider (when limited)
    {prefix}:slots:{provider}:size   STRING how many tokens the fleet was given
    {prefix}:held:{worker_id}        LIST   tokens a worker holds (returned when it dies or stops)
    {prefix}:cooldown:{provider}     STRING exists while a provider is cooling down after a 429 (PX retry-after)
    {prefix}:circuit:{provider}      STRING exists while a provider's circuit is open
    {prefix}:circuit:{provider}:probation  STRING the 30 s after it closes again (reported as half-open)
    {prefix}:health:{provider}       HASH   recent outcomes per 10 s bucket: ok:{bucket}, err:{bucket}
    {prefix}:activity:{provider}:{bucket}  HASH  the requests finished in a 10 s bucket (`llm-fleet top`), each
                                            counted in its latency's bin (l0..l15, LATENCY_BOUNDS), with its tokens
                                            (tok), cost (nusd: nano-USD) and failure (fail); kept a minute
    {prefix}:rate:{provider}         HASH   the GCRA state of the provider's RPM and TPM limits
    {prefix}:dropped:{provider}      STRING how many queue elements with no job behind them a worker dropped
    {prefix}:policy                  HASH   the allowed-models policy an operator set: version, active, allow, deny
    {prefix}:policy:models           SET    the model ids that policy allows (the start step checks a job's model)
    {prefix}:policy:changed          PUBSUB a policy's new version, to every producer and worker
    {prefix}:violations              HASH   requests the policy refused, counted by "{model} {source_agent}"
    {prefix}:budgets                 HASH   the daily budget of each source_agent, USD
    {prefix}:spend:{YYYY-MM-DD}      HASH   what each source_agent spent that day (UTC), USD; kept 3 days
    {prefix}:dead                    ZSET   request ids that failed for good (dead letters), scored by when
    {prefix}:gateway:tokens          HASH   the gateway's bearer tokens: SHA-256 of a token → JSON of its source_agent,
                                            label and when it was added (`llm-fleet tokens`)
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BUCKET_S", "LATENCY_BOUNDS", "Element", "Field", "Keys", "State", "latency_bin", "today"]


def today() -> str:
    """Today's date, UTC, as budgets count days."""
    return time.strftime("%Y-%m-%d", time.gmtime())


BUCKET_S = 10
"""A provider's outcomes are counted per 10 s bucket in its health hash; the circuit reads the last three."""

LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""The upper bounds (seconds) of the latency bins a finished request is counted in (field `l{bin}` of its bucket's
activity hash; one more bin past the last bound): fixed, so percentiles are read from the counts."""


def latency_bin(seconds: float) -> int:
    """The bin of LATENCY_BOUNDS `seconds` falls in (a bound belongs to its own bin, as Prometheus's `le`)."""
    return bisect.bisect_left(LATENCY_BOUNDS, seconds)


class Field(StrEnum):
    """Field names of the job hash `{prefix}:req:{request_id}` (the scripts spell them the same way: a test
    checks that each one they use is here)."""

    BODY = "body"  # the LLMRequest JSON
    DIGEST = "digest"  # LLMRequest.digest(): same id + other digest is a conflict
    PROVIDER = "provider"
    MODEL = "model"  # the catalog id of the model its current route names (the policy is checked against it)
    AGENT = "agent"  # its source_agent ('' for none): whose daily budget it counts against
    STATE = "state"  # a State value
    REPLY = "reply"  # space-separated reply channels of the clients waiting (dropped once it is done)
    ENQUEUED_AT = "enqueued_at"  # unix seconds, float
    CLAIMED_AT = "claimed_at"
    UPSTREAM_AT = "upstream_at"  # when the last provider call started
    FINISHED_AT = "finished_at"
    WORKER = "worker"  # the worker that claimed it last
    ATTEMPTS = "attempts"  # provider calls started for this request
    RETRIES = "retries"  # retries used on the current route
    ROUTE = "route"  # index into [model, *fallbacks] of the model being tried
    DEADLINE_AT = "deadline_at"  # unix seconds: never sent to a provider after this
    RERUNS = "reruns"  # re-runs after a worker died mid-call (the provider may have been called twice)
    CANCEL = "cancel"  # set (unix seconds) when a running request is asked to stop
    ELEMENT = "element"  # the job's current queue element, to find it in lists and sets (dropped once done)
    RESULT = "result"  # the outcome JSON: {"ok": LLMResponse} or {"error": LLMError.to_dict()}


class State(StrEnum):
    """A job's `state`: queued (on a queue, or put aside to retry) → running (a worker started its provider
    call) → done (its `result` is stored; the one terminal state)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Element:
    """A job as it sits on a queue, `{request_id}\\n{route}\\n{deadline_at}` (the element itself is how the job
    is found in lists and sets; `lua/element.lua` builds it), and its body, which the claim's script reads from
    the job hash (empty until then). An element from before the body left it (`...\\n{body}`) reads the same."""

    element: bytes
    request_id: str
    route: int
    deadline_at: float
    body: bytes = b""

    @classmethod
    def parse(cls, element: bytes, body: bytes = b"") -> Element:
        request_id, route, deadline = (element.split(b"\n", 3) + [b"", b""])[:3]
        try:
            return cls(element, request_id.decode(), int(route or 0), float(deadline or 0), body)
        except ValueError:  # not one of ours: the body will not decode either, and the job fails typed
            return cls(element, request_id.decode(errors="replace"), 0, 0.0, body)


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "llmfleet"

    def queue(self, provider: str) -> str:
        return f"{self.prefix}:queue:{provider}"

    def request(self, request_id: str) -> str:
        return f"{self.prefix}:req:{request_id}"

    def claimed(self, worker_id: str) -> str:
        return f"{self.prefix}:claimed:{worker_id}"

    def inbox(self, worker_id: str) -> str:
        return f"{self.prefix}:inbox:{worker_id}"

    def workers(self, provider: str) -> str:
        return f"{self.prefix}:workers:{provider}"

    def reply(self, client_id: str) -> str:
        return f"{self.prefix}:reply:{client_id}"

    def tokens(self, request_id: str) -> str:
        return f"{self.prefix}:tokens:{request_id}"

    def events(self, request_id: str) -> str:
        return f"{self.prefix}:events:{request_id}"

    def control(self, provider: str) -> str:
        return f"{self.prefix}:control:{provider}"

    def delayed(self, provider: str) -> str:
        return f"{self.prefix}:delayed:{provider}"

    def slots(self, provider: str) -> str:
        return f"{self.prefix}:slots:{provider}"

    def held(self, worker_id: str) -> str:
        return f"{self.prefix}:held:{worker_id}"

    def cooldown(self, provider: str) -> str:
        return f"{self.prefix}:cooldown:{provider}"

    def circuit(self, provider: str) -> str:
        return f"{self.prefix}:circuit:{provider}"

    def probation(self, provider: str) -> str:
        return f"{self.circuit(provider)}:probation"

    def health(self, provider: str) -> str:
        return f"{self.prefix}:health:{provider}"

    def activity(self, provider: str, bucket: int) -> str:
        """The requests a provider finished in a 10 s bucket (`int(unix seconds // BUCKET_S)`)."""
        return f"{self.prefix}:activity:{provider}:{bucket}"

    def rate(self, provider: str) -> str:
        return f"{self.prefix}:rate:{provider}"

    def dropped(self, provider: str) -> str:
        return f"{self.prefix}:dropped:{provider}"

    def policy(self) -> str:
        return f"{self.prefix}:policy"

    def policy_models(self) -> str:
        return f"{self.prefix}:policy:models"

    def policy_changed(self) -> str:
        return f"{self.prefix}:policy:changed"

    def violations(self) -> str:
        return f"{self.prefix}:violations"

    def budgets(self) -> str:
        return f"{self.prefix}:budgets"

    def spend(self, day: str | None = None) -> str:
        """A day's spend (`YYYY-MM-DD`, UTC; default: today)."""
        return f"{self.prefix}:spend:{day or today()}"

    def dead(self) -> str:
        return f"{self.prefix}:dead"

    def size(self, provider: str) -> str:
        return f"{self.slots(provider)}:size"

    def gateway_tokens(self) -> str:
        return f"{self.prefix}:gateway:tokens"
