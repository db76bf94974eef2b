--! keys: request queue budgets spend
--! args: reply request_id body digest provider model agent now ttl deadline max_depth
--! uses: attach_reply element budget
-- Queue a new request, or attach to the one already under its id (the same body: an idempotent resubmit).
-- Returns {'queued'} | {'conflict'} | {'full', depth} | {'budget', spent, budget} | attach()'s answer.
local digest = redis.call('HGET', key_request, 'digest')
if digest then
  if digest ~= arg_digest then return {'conflict'} end
  return attach()
end
local over = over_budget(arg_agent)
if over then return {'budget', over[1], over[2]} end
local element = element_of(arg_request_id, 0, arg_deadline)
local depth = redis.call('LPUSH', key_queue, element)
if depth > tonumber(arg_max_depth) then
  redis.call('LPOP', key_queue)  -- ours, taken back at once: no one sees it (a script runs alone)
  return {'full', depth - 1}
end
redis.call('HSET', key_request, 'body', arg_body, 'digest', arg_digest, 'provider', arg_provider, 'model', arg_model,
  'agent', arg_agent, 'state', 'queued', 'reply', arg_reply, 'enqueued_at', arg_now, 'deadline_at', arg_deadline, 'element', element)
redis.call('EXPIRE', key_request, arg_ttl)
return {'queued'}
