--! keys: request dead queue events
--! args: request_id deadline ttl provider model
--! uses: element
-- A dead letter starts over: on its own model (not the fallback it died on), with a fresh deadline, and a
-- stream from no events. Returns 1, or 0 when it is not a dead letter (any more).
if redis.call('ZREM', key_dead, arg_request_id) == 0 or redis.call('EXISTS', key_request) == 0 then return 0 end
local element = element_of(arg_request_id, 0, arg_deadline)
redis.call('HDEL', key_request, 'result', 'finished_at', 'cancel')
redis.call('DEL', key_events)
redis.call('HSET', key_request, 'state', 'queued', 'retries', 0, 'route', 0, 'deadline_at', arg_deadline,
  'element', element, 'provider', arg_provider, 'model', arg_model)
redis.call('EXPIRE', key_request, arg_ttl)
redis.call('LPUSH', key_queue, element)
return 1
