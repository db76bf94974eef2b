"""The producer's half of the queue model: submit and attach, each one Lua script (one round trip).

A request is a hash `{prefix}:req:{id}` (fields in `schemas.keys.Field`) and, on its provider's queue,
an element `{id}\\n{route}\\n{deadline}` (the body stays in the hash, once: the claim's script returns it).
A client names its reply channel in the hash; the worker that finishes the request publishes
the outcome there, so waiting is pushed, never polled. Because a client subscribes to its reply
channel once, before it submits anything, and attaching is atomic with reading the result, a result
written at any moment is either returned by the script or published to a channel already listened to.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from redislane import Lane, Script

__all__ = ["JobScripts"]

# Shared tail: the request exists; return its result, or add our reply channel and report the state.
_ATTACH = """
local result = redis.call('HGET', KEYS[1], 'result')
if result then return {'done', result} end
local reply = redis.call('HGET', KEYS[1], 'reply') or ''
if not string.find(' ' .. reply .. ' ', ' ' .. ARGV[1] .. ' ', 1, true) then
  redis.call('HSET', KEYS[1], 'reply', reply .. ' ' .. ARGV[1])
end
local job = redis.call('HMGET', KEYS[1], 'state', 'deadline_at')
return {'waiting', job[1] or '', job[2] or '0'}
"""

# KEYS: request hash, provider queue.  ARGV: reply channel, request_id, body, digest, provider, now, ttl,
# deadline, max queue depth
_SUBMIT = (
    """
local digest = redis.call('HGET', KEYS[1], 'digest')
if digest then
  if digest ~= ARGV[4] then return {'conflict'} end
"""
    + _ATTACH
    + """
end
local element = ARGV[2] .. '\\n0\\n' .. ARGV[8]
local depth = redis.call('LPUSH', KEYS[2], element)
if depth > tonumber(ARGV[9]) then
  redis.call('LPOP', KEYS[2])  -- ours, taken back at once: no one sees it (a script runs alone)
  return {'full', depth - 1}
end
redis.call('HSET', KEYS[1], 'body', ARGV[3], 'digest', ARGV[4], 'provider', ARGV[5], 'state', 'queued',
           'reply', ARGV[1], 'enqueued_at', ARGV[6], 'deadline_at', ARGV[8], 'element', element)
redis.call('EXPIRE', KEYS[1], ARGV[7])
return {'queued'}
"""
)

# KEYS: request hash.  ARGV: reply channel
_WAIT = (
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
"""
    + _ATTACH
)


# KEYS: request hash, provider queue, events stream.  ARGV: request_id, now, ttl, outcome, control channel,
# tokens channel, stream ttl.  A queued request ends here (never reaching a provider); a running one is
# flagged (the flag expires with the hash) and its provider's workers are told.
_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'done' then return 'done' end
if state == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', ARGV[2])
  redis.call('PUBLISH', ARGV[5], 'cancel ' .. ARGV[1])
  return 'cancelling'
end
redis.call('LREM', KEYS[2], 0, redis.call('HGET', KEYS[1], 'element') or '')
redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[4], 'finished_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local message = ARGV[1] .. '\\n' .. ARGV[4]
for channel in string.gmatch(redis.call('HGET', KEYS[1], 'reply') or '', '%S+') do
  redis.call('PUBLISH', channel, message)
end
redis.call('HDEL', KEYS[1], 'element', 'reply')
if cjson.decode(redis.call('HGET', KEYS[1], 'body')).stream then
  local event = '{"type":"cancelled","seq":1}'
  redis.call('XADD', KEYS[3], '*', 'e', event)
  redis.call('EXPIRE', KEYS[3], ARGV[7])
  redis.call('PUBLISH', ARGV[6], event)
end
return 'cancelled'
"""


class JobScripts:
    def __init__(self, redis: Redis) -> None:
        self.lane = Lane(redis)  # submit and attach are on the request's path: the lean command path
        self._submit = Script(_SUBMIT)
        self._wait = Script(_WAIT)
        self._cancel = Script(_CANCEL)

    async def submit(
        self,
        *,
        request_key: str,
        queue_key: str,
        reply: str,
        request_id: str,
        body: str,
        digest: str,
        provider: str,
        now: float,
        ttl_s: int,
        deadline_at: float,
        max_depth: int,
    ) -> list[Any]:
        """['queued'] | ['conflict'] | ['full', depth] | ['done', outcome] | ['waiting', state, deadline_at]"""
        answer: list[Any] = await self.lane.run(
            self._submit,
            [request_key, queue_key],
            [reply, request_id, body, digest, provider, now, ttl_s, deadline_at, max_depth],
        )
        return answer

    async def wait(self, *, request_key: str, reply: str) -> list[Any]:
        """['missing'] | ['done', outcome] | ['waiting', state, deadline_at]"""
        answer: list[Any] = await self.lane.run(self._wait, [request_key], [reply])
        return answer

    async def cancel(
        self,
        *,
        request_key: str,
        queue_key: str,
        events_key: str,
        request_id: str,
        now: float,
        ttl_s: int,
        outcome: str,
        control_channel: str,
        tokens_channel: str,
        stream_ttl_s: int,
    ) -> str:
        """'missing' | 'done' | 'cancelled' (it was queued) | 'cancelling' (a worker is told to stop it)"""
        reply: bytes = await self.lane.run(
            self._cancel,
            [request_key, queue_key, events_key],
            [request_id, now, ttl_s, outcome, control_channel, tokens_channel, stream_ttl_s],
        )
        return reply.decode()
