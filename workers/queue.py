"""The worker's half of the queue model: claim, start, finish, heartbeat, recover, requeue.

Push-based: a worker blocks on its provider's queue (BLMOVE into its own `claimed` list, so a crash
loses nothing), starts a job with one script that records the provider call is about to start,
and finishes it with one script that stores the result and pushes it to every waiting client.
A running job is never re-scanned. Per request: BLMOVE, start, finish: three round trips.
"""

from __future__ import annotations

import time
from typing import Any, cast

from redis.asyncio import Redis

from schemas.keys import Keys

__all__ = ["Started", "WorkerQueue"]

_STREAM_CAP = 100_000  # events kept per stream (tokens coalesce, so a stream has far fewer)

# KEYS: request hash, claimed list.  ARGV: request_id, worker_id, now
_START = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then
  redis.call('LREM', KEYS[2], -1, ARGV[1])
  return {'skip', state or 'missing'}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[2], 'claimed_at', ARGV[3], 'upstream_at', ARGV[3])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {'run', redis.call('HGET', KEYS[1], 'body') or '', attempts, redis.call('HGET', KEYS[1], 'enqueued_at') or '0'}
"""

# KEYS: request hash, claimed list[, events stream].  ARGV: request_id, outcome, now, ttl[, terminal event,
# tokens channel, stream ttl].  Never two results: a request already done keeps its first one. A stream's
# terminal event is written with the result, atomically, after every delta.
_FINISH = """
redis.call('LREM', KEYS[2], -1, ARGV[1])
if redis.call('HGET', KEYS[1], 'state') == 'done' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[2], 'finished_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local reply = redis.call('HGET', KEYS[1], 'reply') or ''
local message = ARGV[1] .. '\\n' .. ARGV[2]
for channel in string.gmatch(reply, '%S+') do redis.call('PUBLISH', channel, message) end
if KEYS[3] then
  redis.call('XADD', KEYS[3], '*', 'e', ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[7])
  redis.call('PUBLISH', ARGV[6], ARGV[5])
end
return 1
"""

# KEYS: workers zset.  ARGV: worker_id, now, dead_before
# Refresh this worker's heartbeat; return the workers whose heartbeat is older than dead_before.
_HEARTBEAT = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, 10)
"""

# KEYS: claimed list of a worker, provider queue, workers zset.  ARGV: worker_id
# Put every job a worker holds back at the head of the queue (next to be claimed), and drop it.
_RELEASE = """
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
redis.call('ZREM', KEYS[3], ARGV[1])
return moved
"""


class Started:
    """A job this worker may run: its body, and how many provider calls have started for it."""

    __slots__ = ("attempts", "body", "enqueued_at")

    def __init__(self, body: bytes, attempts: int, enqueued_at: float) -> None:
        self.body = body
        self.attempts = attempts
        self.enqueued_at = enqueued_at


class WorkerQueue:
    def __init__(
        self, redis: Redis, keys: Keys, provider: str, worker_id: str, *, result_ttl_s: int, stream_ttl_s: int
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.provider = provider
        self.worker_id = worker_id
        self.result_ttl_s = result_ttl_s
        self.stream_ttl_s = stream_ttl_s
        self.queue_key = keys.queue(provider)
        self.claimed_key = keys.claimed(worker_id)
        self.workers_key = keys.workers(provider)
        self._start = redis.register_script(_START)
        self._finish = redis.register_script(_FINISH)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._release = redis.register_script(_RELEASE)

    async def claim(self, timeout_s: float) -> str | None:
        """Block until a request id is on the queue (or `timeout_s` passes) and take it."""
        raw = await self.redis.blmove(self.queue_key, self.claimed_key, timeout_s, "RIGHT", "LEFT")  # type: ignore[arg-type]
        return None if raw is None else cast(bytes, raw).decode()

    async def start(self, request_id: str) -> Started | None:
        """Mark the job running (the provider call starts now); None if it must not run (done, gone)."""
        reply: list[Any] = await self._start(
            keys=[self.keys.request(request_id), self.claimed_key], args=[request_id, self.worker_id, time.time()]
        )
        if reply[0] != b"run":
            return None
        return Started(reply[1], int(reply[2]), float(reply[3]))

    async def finish(self, request_id: str, outcome: str, terminal_event: str | None = None) -> bool:
        """Store the outcome and push it to the waiting clients (and, for a stream, its terminal event);
        False if the request already had an outcome."""
        keys = [self.keys.request(request_id), self.claimed_key]
        args: list[str | float] = [request_id, outcome, time.time(), self.result_ttl_s]
        if terminal_event is not None:
            keys.append(self.keys.events(request_id))
            args += [terminal_event, self.keys.tokens(request_id), self.stream_ttl_s]
        return bool(await self._finish(keys=keys, args=args))

    async def publish(self, request_id: str, event: str, *, first: bool) -> None:
        """One stream event: kept (XADD, capped), then sent live (PUBLISH); one round trip."""
        events_key = self.keys.events(request_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(events_key, {"e": event}, maxlen=_STREAM_CAP, approximate=True)
            if first:
                pipe.expire(events_key, self.stream_ttl_s)
            pipe.publish(self.keys.tokens(request_id), event)
            await pipe.execute()

    async def heartbeat(self, dead_after_s: float) -> list[str]:
        """Say this worker is alive; return the ids of workers presumed dead."""
        now = time.time()
        dead: list[bytes] = await self._heartbeat(
            keys=[self.workers_key], args=[self.worker_id, now, now - dead_after_s]
        )
        return [d.decode() for d in dead if d.decode() != self.worker_id]

    async def release(self, worker_id: str) -> int:
        """Requeue every job `worker_id` holds (a dead worker's, or our own at shutdown)."""
        moved = await self._release(
            keys=[self.keys.claimed(worker_id), self.queue_key, self.workers_key], args=[worker_id]
        )
        return int(moved)
