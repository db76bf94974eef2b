--! keys: request claimed held slots health circuit probation fallback_queue
--! args: request_id element release health bucket circuit_min circuit_rate open_ms route provider
--! uses: settle element
-- Move the job to a fallback model's provider queue (same request_id, same trace); its element names its route.
if not settle() then return 2 * opened end
local element = element_of(arg.request_id, arg.route, redis.call('HGET', key.request, 'deadline_at') or '0')
redis.call('HSET', key.request, 'state', 'queued', 'route', arg.route, 'provider', arg.provider, 'retries', 0,
  'element', element)
redis.call('RPUSH', key.fallback_queue, element)
return 1 + 2 * opened
