--! keys: request claimed held slots health circuit probation fallback_queue
--! args: request_id element release health bucket circuit_min circuit_rate open_ms uncount route provider model
--! uses: settle element
-- Move the job to a fallback model's provider queue (same request_id, same trace); its element names its route.
if not settle() then return 2 * opened end
local element = element_of(arg_request_id, arg_route, redis.call('HGET', key_request, 'deadline_at') or '0')
redis.call('HSET', key_request, 'state', 'queued', 'route', arg_route, 'provider', arg_provider, 'model', arg_model,
  'retries', 0,
  'element', element)
redis.call('RPUSH', key_fallback_queue, element)
return 1 + 2 * opened
