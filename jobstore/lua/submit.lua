--! keys: request queue
--! args: reply request_id body digest provider now ttl deadline max_depth
--! uses: attach_reply element
-- Queue a new request, or attach to the one already under its id (the same body: an idempotent resubmit).
-- Returns {'queued'} | {'conflict'} | {'full', depth} | attach()'s answer.
local digest = redis.call('HGET', key.request, 'digest')
if digest then
  if digest ~= arg.digest then return {'conflict'} end
  return attach()
end
local element = element_of(arg.request_id, 0, arg.deadline)
local depth = redis.call('LPUSH', key.queue, element)
if depth > tonumber(arg.max_depth) then
  redis.call('LPOP', key.queue)  -- ours, taken back at once: no one sees it (a script runs alone)
  return {'full', depth - 1}
end
redis.call('HSET', key.request, 'body', arg.body, 'digest', arg.digest, 'provider', arg.provider,
  'state', 'queued', 'reply', arg.reply, 'enqueued_at', arg.now, 'deadline_at', arg.deadline, 'element', element)
redis.call('EXPIRE', key.request, arg.ttl)
return {'queued'}
