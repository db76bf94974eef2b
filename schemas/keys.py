"""Every Redis key and channel name, built from one prefix (`LLM_KEY_PREFIX`).

No name spans two providers, so each provider's queue can later live on its own server.

    {prefix}:queue:{provider}        LIST   request ids waiting (LPUSH in, BLMOVE out)
    {prefix}:req:{request_id}        HASH   the job: body, digest, state, timestamps, result (fields below)
    {prefix}:claimed:{worker_id}     LIST   ids a worker has taken and not finished (crash recovery)
    {prefix}:workers:{provider}      ZSET   worker ids scored by their last heartbeat (unix seconds)
    {prefix}:reply:{client_id}       PUBSUB where workers push finished results to a waiting client
    {prefix}:tokens:{request_id}     PUBSUB a streaming request's events, live
    {prefix}:events:{request_id}     STREAM the same events, kept for replay
    {prefix}:cancel:{provider}       PUBSUB ids of running requests to stop, for that provider's workers
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Field", "Keys", "State"]


class Field:
    """Field names of the job hash `{prefix}:req:{request_id}`."""

    BODY = "body"  # the LLMRequest JSON
    DIGEST = "digest"  # LLMRequest.digest(): same id + other digest is a conflict
    PROVIDER = "provider"
    STATE = "state"  # a State value
    REPLY = "reply"  # space-separated reply channels of the clients waiting
    ENQUEUED_AT = "enqueued_at"  # unix seconds, float
    CLAIMED_AT = "claimed_at"
    UPSTREAM_AT = "upstream_at"  # when the last provider call started
    FINISHED_AT = "finished_at"
    WORKER = "worker"  # the worker that claimed it last
    ATTEMPTS = "attempts"  # provider calls started for this request
    CANCEL = "cancel"  # set (unix seconds) when a running request is asked to stop
    RESULT = "result"  # the outcome JSON: {"ok": LLMResponse} or {"error": LLMError.to_dict()}


class State:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "llmfleet"

    def queue(self, provider: str) -> str:
        return f"{self.prefix}:queue:{provider}"

    def request(self, request_id: str) -> str:
        return f"{self.prefix}:req:{request_id}"

    def claimed(self, worker_id: str) -> str:
        return f"{self.prefix}:claimed:{worker_id}"

    def workers(self, provider: str) -> str:
        return f"{self.prefix}:workers:{provider}"

    def reply(self, client_id: str) -> str:
        return f"{self.prefix}:reply:{client_id}"

    def tokens(self, request_id: str) -> str:
        return f"{self.prefix}:tokens:{request_id}"

    def events(self, request_id: str) -> str:
        return f"{self.prefix}:events:{request_id}"

    def cancel(self, provider: str) -> str:
        return f"{self.prefix}:cancel:{provider}"
