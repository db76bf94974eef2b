"""The worker's half of the queue model: claim, start, finish, retry later, fall back, recover.

Push-based: a worker blocks on its provider's queue (BLMOVE into its own inbox) with the start script sent
in the same write, so Redis runs the script the moment a job arrives: it moves the job on to the worker's
`claimed` list (a crash loses nothing), checks the job's deadline and the provider's shared state
(cooldown, circuit, rate limits) and records that the provider call starts. The job and that verdict come
back in one reply. One script ends it: `finish` stores the result and pushes it to every waiting client;
`defer` puts it aside to be retried; `reroute` moves it to a fallback model's queue. A running job is never
rescanned. Per request, two round trips: claim-and-start, finish (plus one BLMOVE for a token when the
fleet-wide concurrency limit is on). Under load, when the last claim says jobs are waiting, one script
claims and starts as many as the worker has room for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError
from redis.typing import EncodableT

from redislane import AWAY, REFUSED, Lane, Script
from schemas.keys import Field, Keys

__all__ = ["Circuit", "Claimed", "Limits", "Started", "WorkerQueue"]

T = TypeVar("T")

log = structlog.get_logger("llm_fleet.worker")

_STREAM_CAP = 100_000  # events kept per stream (tokens coalesce, so a stream has far fewer)
_BUCKET_S = 10  # outcomes are counted per 10 s; the circuit looks at the last three buckets
# A script that runs also when Redis is out of memory: the heartbeat (with the promotion of due retries)
# and the release of a dead worker's jobs move what Redis holds, adding next to nothing, and a worker whose
# heartbeat were refused would be presumed dead and its running jobs re-run.
_ALLOW_OOM = "#!lua flags=allow-oom\n"
# What a worker's Redis step waits out: a restart or failover, and a full Redis (memory frees as results expire)
_WAITED_OUT: tuple[type[Exception], ...] = (*AWAY, OutOfMemoryError)

# Whether a claimed job runs now and, when it does, the record that its provider call starts: the one step
# between a claim and the call, shared by the three scripts below (each returns every job it took with its
# verdict and its body, read here from the job hash, and how many jobs are still queued: the worker then
# claims several at once).
# KEYS: claimed, held, slots, cooldown, circuit, rate, queue, dropped.  ARGV: request key prefix, worker, release,
# re-runs allowed, rpm, tpm, again ('1': an adopted job of ours may be one whose verdict never reached us,
# so no call was made for it).  Redis's clock decides: a claim's script may run long after it was sent.
_START_JOB = """
local function start(element)
  local key = ARGV[1] .. string.match(element, '^[^\\n]*')
  local job = redis.call('HMGET', key, 'state', 'retries', 'deadline_at', 'reruns', 'attempts', 'worker', 'body',
    'cancel')
  local state = job[1]
  if state ~= 'queued' and state ~= 'running' then
    if redis.call('LREM', KEYS[1], -1, element) > 0 and ARGV[3] == '1' then
      redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
    end
    if not state then  -- no job behind it: garbage pushed onto the queue (or a job long expired), counted
      redis.call('INCR', KEYS[8])
      return {'gone', 0, 0, 0}, ''
    end
    return {'skip', 0, 0, 0}, ''
  end
  local retries = tonumber(job[2] or '0')
  if job[8] then return {'cancelled', 0, retries, 0}, job[7] or '' end  -- cancelled while its worker ran it
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
  local deadline = tonumber(job[3] or '0')
  if deadline > 0 and now >= deadline then return {'expired', 0, retries, 0}, job[7] or '' end
  local again = state == 'running' and ARGV[7] == '1' and job[6] == ARGV[2]
  local rerun = state == 'running' and not again
  if rerun and tonumber(job[4] or '0') >= tonumber(ARGV[4]) then
    return {'lost', tonumber(job[5] or '0'), retries, 0}, job[7] or ''
  end
  local function wait(ms, reason) return {'wait', 0, retries, 0, ms, reason}, job[7] or '' end
  if redis.call('EXISTS', KEYS[4], KEYS[5]) > 0 then
    local ms = redis.call('PTTL', KEYS[4])
    if ms > 0 then return wait(ms, 'cooldown') end
    ms = redis.call('PTTL', KEYS[5])
    if ms > 0 then return wait(ms, 'circuit') end
  end
  local now_ms = now * 1000
  local rpm, tpm = tonumber(ARGV[5]), tonumber(ARGV[6])
  if tpm > 0 then
    local tat = tonumber(redis.call('HGET', KEYS[6], 'tpm') or '0')
    if tat - now_ms > 60000 then return wait(math.ceil(tat - now_ms - 60000), 'tpm') end
  end
  if rpm > 0 then
    local tat = math.max(tonumber(redis.call('HGET', KEYS[6], 'rpm') or '0'), now_ms) + 60000 / rpm
    if tat - now_ms > 60000 then return wait(math.ceil(tat - now_ms - 60000), 'rpm') end
    redis.call('HSET', KEYS[6], 'rpm', string.format('%.3f', tat))
    redis.call('PEXPIRE', KEYS[6], 120000)
  end
  local stamp = string.format('%.6f', now)
  redis.call('HSET', key, 'state', 'running', 'worker', ARGV[2], 'claimed_at', stamp, 'upstream_at', stamp)
  if rerun then redis.call('HINCRBY', key, 'reruns', 1) end
  local attempts = again and tonumber(job[5] or '0') or redis.call('HINCRBY', key, 'attempts', 1)
  return {'run', attempts, retries, rerun and 1 or 0}, job[7] or ''
end
"""

# + KEYS: our inbox.  Sent with the BLMOVE that waits for a job (into the inbox), so Redis runs it the moment
# that BLMOVE is served: the job moves on to the claimed list, started. Nothing in the inbox: BLMOVE timed out.
_CLAIM = (
    _START_JOB
    + """
local element = redis.call('LMOVE', KEYS[9], KEYS[1], 'LEFT', 'LEFT')
if not element then return {{}, 0} end
local verdict, body = start(element)
return {{{element, verdict, body}}, redis.call('LLEN', KEYS[7])}
"""
)

# + ARGV: most.  The claim under load: up to `most` queued jobs, oldest first, each started, without waiting;
# it stops at a job that must wait (the provider is paused or at a rate limit: the rest stay queued).
_CLAIM_QUEUED = (
    _START_JOB
    + """
local taken = {}
for _ = 1, tonumber(ARGV[8]) do
  local element = redis.call('LMOVE', KEYS[7], KEYS[1], 'RIGHT', 'LEFT')
  if not element then break end
  local verdict, body = start(element)
  taken[#taken + 1] = {element, verdict, body}
  if verdict[1] == 'wait' then break end
end
return {taken, redis.call('LLEN', KEYS[7])}
"""
)

# + ARGV: element.  A job already in our claimed list that no task runs (adopted: its claim's reply was lost
# with the connection, or the task that ran it died).
_START = (
    _START_JOB
    + """
local verdict, body = start(ARGV[8])
return {{{ARGV[8], verdict, body}}, redis.call('LLEN', KEYS[7])}
"""
)

# The common start of finish / defer / reroute. KEYS: request, claimed, held, slots, health, circuit.
# ARGV: id, element, release, outcome ('ok' | 'err' | ''), bucket, circuit min requests, circuit error
# rate, open ms. Leaves the claimed list, gives the token back, counts the outcome (opening the circuit
# when the recent error rate says so), keeps the reply channels in `reply`, and tells whether the request is still unfinished (a cancel may
# have ended it). The scripts return 1 when they changed the job (0: it had ended already), plus 2 when
# they opened the circuit.
_SETTLE = """
local opened, reply = 0, ''
local function settle()
  -- the token goes back once: a script run twice (its reply lost with the connection) finds the job gone
  if redis.call('LREM', KEYS[2], -1, ARGV[2]) > 0 and ARGV[3] == '1' then
    redis.call('LMOVE', KEYS[3], KEYS[4], 'LEFT', 'RIGHT')
  end
  if ARGV[4] ~= '' then
    local bucket = tonumber(ARGV[5])
    if redis.call('HINCRBY', KEYS[5], ARGV[4] .. ':' .. bucket, 1) == 1 then
      -- a new bucket: the hash lives a minute past it, and sheds the buckets the circuit no longer reads
      -- (any left from before a pause: the hash outlives no gap of more than six buckets)
      redis.call('EXPIRE', KEYS[5], 60)
      local old = {}
      for b = bucket - 8, bucket - 3 do
        old[#old + 1] = 'ok:' .. b
        old[#old + 1] = 'err:' .. b
      end
      redis.call('HDEL', KEYS[5], unpack(old))
    end
    if ARGV[4] == 'err' then
      local ok, err = 0, 0
      for b = bucket - 2, bucket do
        ok = ok + tonumber(redis.call('HGET', KEYS[5], 'ok:' .. b) or '0')
        err = err + tonumber(redis.call('HGET', KEYS[5], 'err:' .. b) or '0')
      end
      if err >= tonumber(ARGV[6]) and err / (ok + err) >= tonumber(ARGV[7]) then
        redis.call('SET', KEYS[6], 'open', 'PX', ARGV[8])
        redis.call('SET', KEYS[6] .. ':probation', '1', 'PX', ARGV[8] + 30000)
        redis.call('DEL', KEYS[5])
        opened = 1
      end
    end
  end
  local job = redis.call('HMGET', KEYS[1], 'state', 'reply')
  reply = job[2] or ''
  return job[1] ~= 'done'
end
if not settle() then return 2 * opened end
"""

# + KEYS: events, dead, rate.  + ARGV: outcome, now, ttl, terminal event, tokens channel, stream ttl, dead,
# dead ttl, tokens used, tpm, uncount ('1': the start counted a provider call that was never made; '2': and a
# re-run).  Never two results: a request already done keeps its first one. A stream's
# terminal event is written with the result, atomically, after every delta.
_FINISH = (
    _SETTLE
    + """
if tonumber(ARGV[18]) > 0 and tonumber(ARGV[17]) > 0 then
  local now_ms = tonumber(ARGV[10]) * 1000
  local tat = math.max(tonumber(redis.call('HGET', KEYS[9], 'tpm') or '0'), now_ms)
  redis.call('HSET', KEYS[9], 'tpm', string.format('%.3f', tat + 60000 * tonumber(ARGV[17]) / tonumber(ARGV[18])))
  redis.call('PEXPIRE', KEYS[9], 120000)
end
if ARGV[19] ~= '0' then
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  if ARGV[19] == '2' then redis.call('HINCRBY', KEYS[1], 'reruns', -1) end
end
redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[9], 'finished_at', ARGV[10])
if ARGV[15] == '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[16])
  redis.call('ZADD', KEYS[8], ARGV[10], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', tonumber(ARGV[10]) - tonumber(ARGV[16]))  -- hashes gone
else
  redis.call('EXPIRE', KEYS[1], ARGV[11])
end
local message = ARGV[1] .. '\\n' .. ARGV[9]
for channel in string.gmatch(reply, '%S+') do
  redis.call('PUBLISH', channel, message)
end
redis.call('HDEL', KEYS[1], 'element', 'reply')  -- a kept result needs neither (attaching reads the result)
if ARGV[12] ~= '' then
  redis.call('XADD', KEYS[7], '*', 'e', ARGV[12])
  redis.call('EXPIRE', KEYS[7], ARGV[14])
  redis.call('PUBLISH', ARGV[13], ARGV[12])
end
return 1 + 2 * opened
"""
)

# + KEYS: delayed, cooldown.  + ARGV: run at, cooldown ms, retried.
_DEFER = (
    _SETTLE
    + """
local cooldown = tonumber(ARGV[10])
if cooldown > 0 and redis.call('PTTL', KEYS[8]) < cooldown then
  redis.call('SET', KEYS[8], '1', 'PX', cooldown)
end
redis.call('HSET', KEYS[1], 'state', 'queued')
if ARGV[11] == '1' then redis.call('HINCRBY', KEYS[1], 'retries', 1) end
redis.call('ZADD', KEYS[7], ARGV[9], ARGV[2])
return 1 + 2 * opened
"""
)

# + KEYS: the fallback provider's queue.  + ARGV: route, provider.  The job's element names its new route.
_REROUTE = (
    _SETTLE
    + """
local element = ARGV[1] .. '\\n' .. ARGV[9] .. '\\n' .. (redis.call('HGET', KEYS[1], 'deadline_at') or '0')
redis.call('HSET', KEYS[1], 'state', 'queued', 'route', ARGV[9], 'provider', ARGV[10], 'retries', 0,
           'element', element)
redis.call('RPUSH', KEYS[7], element)
return 1 + 2 * opened
"""
)


# KEYS: each event's kept copy (a stream).  ARGV: cap, ttl, then for each event: its live channel, the
# event, and '1' when it is its stream's first (the copy's TTL is set then).
_PUBLISH = """
for i = 1, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3 * i + 1])
  if ARGV[3 * i + 2] == '1' then redis.call('EXPIRE', KEYS[i], ARGV[2]) end
  redis.call('PUBLISH', ARGV[3 * i], ARGV[3 * i + 1])
end
"""

# Due retries go to the head of the queue (they have waited already).
_PROMOTE_DUE = """
local function promote(delayed, queue, now)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', delayed, id)
    redis.call('RPUSH', queue, id)
  end
end
"""

# KEYS: delayed, queue.  ARGV: now.  Returns when the next retry is due (-1: none).
_PROMOTE = (
    _PROMOTE_DUE
    + """
promote(KEYS[1], KEYS[2], ARGV[1])
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return next[2] or '-1'
"""
)

# KEYS: workers zset, delayed, queue, our claimed list, our held tokens, slots, our inbox.  ARGV: worker_id,
# now, dead after (seconds).  Refresh this worker's heartbeat (on Redis's clock: the workers' clocks may
# disagree by more than a heartbeat), queue the retries that are due (a dead worker's too), move to the
# claimed list a job left in the inbox (a claim whose start script did not run: Redis went down between the
# two; it is then adopted like any claimed job no task runs), and give back tokens we hold for nothing: every held token belongs to a claimed job, except at most one taken
# for the next claim, so more than claimed + 1 means a token BLMOVE whose reply was lost (Redis went away).
# Returns how many jobs our claimed list holds, the workers whose heartbeat is older than dead after, and
# the tokens given back.
_HEARTBEAT = (
    _ALLOW_OOM
    + _PROMOTE_DUE
    + """
local time = redis.call('TIME')
local beat = tonumber(time[1]) + tonumber(time[2]) / 1000000
redis.call('ZADD', KEYS[1], beat, ARGV[1])
promote(KEYS[2], KEYS[3], ARGV[2])
while redis.call('LMOVE', KEYS[7], KEYS[4], 'LEFT', 'LEFT') do end
local claimed = redis.call('LLEN', KEYS[4])
local extra = redis.call('LLEN', KEYS[5]) - claimed - 1
for _ = 1, extra do redis.call('LMOVE', KEYS[5], KEYS[6], 'LEFT', 'RIGHT') end
return {claimed, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', beat - tonumber(ARGV[3]), 'LIMIT', 0, 10),
        math.max(extra, 0)}
"""
)

# KEYS: claimed list of a worker, provider queue, workers zset, held tokens, slots, inbox.  ARGV: worker_id
# Put every job a worker holds back at the head of the queue (next to be claimed), return its tokens,
# and drop it from the workers.
_RELEASE = (
    _ALLOW_OOM
    + """
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
while redis.call('LMOVE', KEYS[6], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
while redis.call('LMOVE', KEYS[4], KEYS[5], 'LEFT', 'RIGHT') do end
redis.call('ZREM', KEYS[3], ARGV[1])
return moved
"""
)

# KEYS: slots, size.  ARGV: limit.  The first worker creates the tokens; a larger limit adds some.
_SIZE_SLOTS = """
local size = tonumber(redis.call('GET', KEYS[2]) or '0')
local limit = tonumber(ARGV[1])
for _ = size + 1, limit do redis.call('RPUSH', KEYS[1], 't') end
if limit > size then redis.call('SET', KEYS[2], limit) end
return math.max(size, limit)
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """The provider's fleet-wide limits and circuit settings (0 turns a limit off)."""

    concurrency: int = 0
    rpm: int = 0
    tpm: int = 0
    max_reruns: int = 2  # re-runs after a worker died mid-call (0: none); then it is lost (a poison pill)
    circuit_min_requests: int = 20
    circuit_error_rate: float = 0.5
    circuit_open_s: float = 15.0


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job as it sits on the queue, `{request_id}\\n{route}\\n{deadline_at}` (the element itself is how the
    job is found in lists and sets), and its body, which the claim's script reads from the job hash (empty
    until then: a job listed from the claimed list has none). An element from before the body left it
    (`...\\n{body}`) reads the same."""

    element: bytes
    request_id: str
    route: int
    deadline_at: float
    body: bytes

    @classmethod
    def parse(cls, element: bytes, body: bytes = b"") -> Claimed:
        request_id, route, deadline = (element.split(b"\n", 3) + [b"", b""])[:3]
        try:
            return cls(element, request_id.decode(), int(route or 0), float(deadline or 0), body)
        except ValueError:  # not one of ours: the body will not decode either, and the job fails typed
            return cls(element, request_id.decode(errors="replace"), 0, 0.0, body)


@dataclass(frozen=True, slots=True)
class Started:
    """What the start script decided about a claimed job. `kind` is 'run' (call the provider), 'wait'
    (`wait_s` for `reason`: cooldown, circuit, rpm, tpm), 'expired' (its deadline passed), 'lost' (its
    worker died mid-call, and re-runs are off or used up: `attempts` calls were started), 'cancelled' (a
    cancel came while a worker ran it, and it is back: not run again), 'skip' (done) or 'gone' (no job
    behind the element: garbage on the queue, dropped and counted)."""

    kind: str
    claimed: Claimed
    attempts: int = 0
    retries: int = 0
    rerun: bool = False
    wait_s: float = 0.0
    reason: str = ""

    @property
    def route(self) -> int:
        return self.claimed.route

    @property
    def deadline_at(self) -> float:
        return self.claimed.deadline_at


class Circuit:
    """Outcomes for the circuit breaker: counted on every finish, defer and reroute."""

    OK = "ok"
    ERROR = "err"
    NONE = ""


class WorkerQueue:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        provider: str,
        worker_id: str,
        *,
        result_ttl_s: int,
        stream_ttl_s: int,
        dead_letter_ttl_s: int = 7 * 86400,
        limits: Limits | None = None,
        outage_s: float = 60.0,
    ) -> None:
        self.redis = redis
        self.lane = Lane(redis)  # the hot path's commands: claims and scripts
        self.keys = keys
        self.provider = provider
        self.worker_id = worker_id
        self.result_ttl_s = result_ttl_s
        self.stream_ttl_s = stream_ttl_s
        self.dead_letter_ttl_s = dead_letter_ttl_s
        self.limits = limits or Limits()
        self.outage_s = outage_s
        self.queue_key = keys.queue(provider)
        self.claimed_key = keys.claimed(worker_id)
        self.workers_key = keys.workers(provider)
        self.held_key = keys.held(worker_id)
        self.slots_key = keys.slots(provider)
        self.inbox_key = keys.inbox(worker_id)
        self._release_flag = "1" if self.limits.concurrency else "0"
        self.backlog = 0  # jobs still queued, as the last claim saw them
        self._start_keys = [
            self.claimed_key,
            self.held_key,
            self.slots_key,
            keys.cooldown(provider),
            keys.circuit(provider),
            keys.rate(provider),
            self.queue_key,
            keys.dropped(provider),
        ]
        self._start_args: list[EncodableT] = [
            keys.request(""),
            worker_id,
            self._release_flag,
            self.limits.max_reruns,
            self.limits.rpm,
            self.limits.tpm,
        ]
        self._claim = Script(_CLAIM)
        self._claim_queued = Script(_CLAIM_QUEUED)
        self._start = Script(_START)
        self._finish = Script(_FINISH)
        self._defer = Script(_DEFER)
        self._reroute = Script(_REROUTE)
        self._promote = Script(_PROMOTE)
        self._publish = Script(_PUBLISH)
        self._heartbeat = Script(_HEARTBEAT)
        self._release = Script(_RELEASE)
        self._size_slots = Script(_SIZE_SLOTS)

    async def _call(self, script: Script, *, keys: list[str], args: list[Any]) -> Any:
        """Run a script through a Redis restart (see `_riding_out`)."""
        return await self._riding_out(lambda: self.lane.run(script, keys, args))

    async def _riding_out(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis step, riding out a Redis restart or failover (`AWAY`), or a full Redis: again, with
        backoff, for up to `outage_s` (redis-py's own retry does not cover a refused reconnect). Every step
        is safe to run twice: a reply lost with the connection means it may have run."""
        delay, give_up = 0.05, time.monotonic() + self.outage_s
        while True:
            try:
                return await step()
            except _WAITED_OUT as exc:
                if isinstance(exc, REFUSED) or time.monotonic() > give_up:  # our credentials: final
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def size_slots(self) -> int:
        """Create the fleet's concurrency tokens (once; a larger limit adds tokens). Returns the fleet's size."""
        if not self.limits.concurrency:
            return 0
        size = await self._call(
            self._size_slots, keys=[self.slots_key, f"{self.slots_key}:size"], args=[self.limits.concurrency]
        )
        return int(size)

    async def acquire_slot(self, timeout_s: float) -> bool:
        """Take one of the fleet's concurrency tokens (blocking up to `timeout_s`); True when unlimited."""
        if not self.limits.concurrency:
            return True
        token = await self.lane.execute(
            "BLMOVE", self.slots_key, self.held_key, "RIGHT", "LEFT", timeout_s, blocking_s=timeout_s
        )
        return token is not None

    async def claim(self, timeout_s: float) -> list[Started]:
        """Block until a job is on the queue (or `timeout_s` passes), take it and start it, in one round trip:
        BLMOVE moves it into our inbox, and the start script sent with it moves it on to our claimed list."""
        _, reply = await self.lane.run_after(
            ("BLMOVE", self.queue_key, self.inbox_key, "RIGHT", "LEFT", timeout_s),
            self._claim,
            [*self._start_keys, self.inbox_key],
            [*self._start_args, 0],
            blocking_s=timeout_s,
        )
        return self._verdicts(reply)

    async def claim_queued(self, most: int) -> list[Started]:
        """Take up to `most` queued jobs at once, oldest first, and start them, without waiting (none: the
        queue is empty)."""
        return self._verdicts(await self.lane.run(self._claim_queued, self._start_keys, [*self._start_args, 0, most]))

    async def start(self, claimed: Claimed, *, again: bool = False) -> Started:
        """Start a job already in our claimed list; `again`: this process never ran it, so if it is running
        as ours, its verdict was lost on the way (no call was made for it: not a re-run)."""
        reply = await self._call(
            self._start, keys=self._start_keys, args=[*self._start_args, int(again), claimed.element]
        )
        [job] = self._verdicts(reply)
        return job

    def _verdicts(self, reply: list[Any]) -> list[Started]:
        jobs, backlog = reply
        self.backlog = int(backlog)
        return [_verdict(Claimed.parse(element, body), verdict) for element, verdict, body in jobs]

    def _settle(self, claimed: Claimed, health: str) -> tuple[list[str], list[str | float | bytes]]:
        p, limits = self.provider, self.limits
        keys = [
            self.keys.request(claimed.request_id),
            self.claimed_key,
            self.held_key,
            self.slots_key,
            self.keys.health(p),
            self.keys.circuit(p),
        ]
        args: list[str | float | bytes] = [
            claimed.request_id,
            claimed.element,
            self._release_flag,
            health,
            int(time.time() // _BUCKET_S),
            limits.circuit_min_requests,
            limits.circuit_error_rate,
            int(limits.circuit_open_s * 1000),
        ]
        return keys, args

    async def finish(
        self,
        claimed: Claimed,
        outcome: str,
        *,
        health: str = Circuit.NONE,
        terminal_event: str | None = None,
        dead: bool = False,
        tokens: int = 0,
        uncount: int = 0,
    ) -> bool:
        """Store the outcome and push it to the waiting clients (and, for a stream, its terminal event);
        a request that failed for good is kept as a dead letter. `uncount`: 1 when its start counted a
        provider call that was never made, 2 when it also counted a re-run. False if it already had an outcome."""
        keys, args = self._settle(claimed, health)
        request_id = claimed.request_id
        keys += [self.keys.events(request_id), self.keys.dead(), self.keys.rate(self.provider)]
        args += [
            outcome,
            time.time(),
            self.result_ttl_s,
            terminal_event or "",
            self.keys.tokens(request_id),
            self.stream_ttl_s,
            int(dead),
            self.dead_letter_ttl_s,
            tokens,
            self.limits.tpm,
            uncount,
        ]
        return self._settled(await self._call(self._finish, keys=keys, args=args))

    async def defer(
        self, claimed: Claimed, run_at: float, *, health: str, cooldown_s: float = 0.0, retried: bool = True
    ) -> bool:
        """Put the job aside until `run_at` (without holding a concurrency slot); a `cooldown_s` pauses the
        whole provider, for every worker."""
        keys, args = self._settle(claimed, health)
        keys += [self.keys.delayed(self.provider), self.keys.cooldown(self.provider)]
        args += [run_at, int(cooldown_s * 1000), int(retried)]
        return self._settled(await self._call(self._defer, keys=keys, args=args))

    async def reroute(self, claimed: Claimed, route: int, provider: str, *, health: str) -> bool:
        """Move the job to a fallback model's provider queue (same request_id, same trace)."""
        keys, args = self._settle(claimed, health)
        keys.append(self.keys.queue(provider))
        args += [route, provider]
        return self._settled(await self._call(self._reroute, keys=keys, args=args))

    def _settled(self, reply: int) -> bool:
        """True when the job was changed; says so when this outcome opened the provider's circuit."""
        if reply & 2:
            log.warning("circuit_opened", provider=self.provider, open_s=self.limits.circuit_open_s)
        return bool(reply & 1)

    async def promote(self) -> float | None:
        """Queue the retries that are due; return when the next one is (unix seconds), if any."""
        due = await self._call(
            self._promote, keys=[self.keys.delayed(self.provider), self.queue_key], args=[time.time()]
        )
        next_at = float(due)
        return None if next_at < 0 else next_at

    async def publish(self, events: list[tuple[str, int, str]]) -> None:
        """Stream events `(request_id, seq, event)`: each kept (XADD, capped), then sent live (PUBLISH); one
        script for all, through a Redis restart (sent twice, an event is kept twice: readers drop the copy
        by its sequence number)."""
        args: list[str | int] = [_STREAM_CAP, self.stream_ttl_s]
        for request_id, seq, event in events:
            args += [self.keys.tokens(request_id), event, int(seq == 1)]
        await self._call(self._publish, keys=[self.keys.events(r) for r, _, _ in events], args=args)

    async def last_seq(self, claimed: Claimed) -> int:
        """The sequence number of a stream's last kept event (0: none yet)."""
        key = self.keys.events(claimed.request_id)
        last = await self._riding_out(lambda: self.redis.xrevrange(key, count=1))
        return int(json.loads(last[0][1][b"e"])["seq"]) if last else 0

    async def heartbeat(self, dead_after_s: float) -> tuple[int, list[str], int]:
        """Say this worker is alive, queue the retries that are due, give back tokens held for nothing;
        return how many jobs our claimed list holds, the ids of workers presumed dead, and the tokens given
        back."""
        claimed, dead, returned = await self._call(
            self._heartbeat,
            keys=[
                self.workers_key,
                self.keys.delayed(self.provider),
                self.queue_key,
                self.claimed_key,
                self.held_key,
                self.slots_key,
                self.inbox_key,
            ],
            args=[self.worker_id, time.time(), dead_after_s],
        )
        return int(claimed), [d.decode() for d in dead if d.decode() != self.worker_id], int(returned)

    async def claimed(self) -> list[Claimed]:
        """Every job in our claimed list (to find one a lost reply left there)."""
        elements: list[bytes] = await self._riding_out(lambda: self.redis.lrange(self.claimed_key, 0, -1))  # type: ignore[arg-type,return-value]
        return [Claimed.parse(e) for e in elements]

    async def cancelled(self, request_ids: list[str]) -> list[str]:
        """Those of `request_ids` a caller has asked to stop (the flag the cancel script sets with its
        broadcast): what a worker that could not hear the broadcast missed."""
        if not request_ids:
            return []
        asks = [("HEXISTS", self.keys.request(request_id), Field.CANCEL) for request_id in request_ids]
        flags = await self._riding_out(lambda: self.lane.pipeline(*asks))
        return [request_id for request_id, flag in zip(request_ids, flags, strict=True) if flag == 1]

    async def release(self, worker_id: str) -> int:
        """Requeue every job `worker_id` holds and return its tokens (a dead worker's, or ours at shutdown)."""
        moved = await self._call(
            self._release,
            keys=[
                self.keys.claimed(worker_id),
                self.queue_key,
                self.workers_key,
                self.keys.held(worker_id),
                self.slots_key,
                self.keys.inbox(worker_id),
            ],
            args=[worker_id],
        )
        return int(moved)


def _verdict(claimed: Claimed, reply: list[Any]) -> Started:
    job = Started(reply[0].decode(), claimed, int(reply[1]), int(reply[2]), bool(reply[3]))
    if job.kind == "wait":
        return replace(job, wait_s=int(reply[4]) / 1000, reason=reply[5].decode())
    return job
