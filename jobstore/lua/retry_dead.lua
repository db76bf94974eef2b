--! keys: request dead queue events
--! args: request_id deadline ttl provider
--! uses: element
-- A dead letter starts over: on its own model (not the fallback it died on), with a fresh deadline, and a
-- stream from no events. Returns 1, or 0 when it is not a dead letter (any more).
if redis.call('ZREM', key.dead, arg.request_id) == 0 or redis.call('EXISTS', key.request) == 0 then return 0 end
local element = element_of(arg.request_id, 0, arg.deadline)
redis.call('HDEL', key.request, 'result', 'finished_at', 'cancel')
redis.call('DEL', key.events)
redis.call('HSET', key.request, 'state', 'queued', 'retries', 0, 'route', 0, 'deadline_at', arg.deadline,
  'element', element, 'provider', arg.provider)
redis.call('EXPIRE', key.request, arg.ttl)
redis.call('LPUSH', key.queue, element)
return 1
