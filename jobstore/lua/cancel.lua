--! keys: request queue events
--! args: request_id now ttl outcome control_channel tokens_channel stream_ttl
--! uses: conclude
-- A queued request ends here (never reaching a provider); a running one is flagged (the flag expires with the
-- hash) and its provider's workers are told. Returns 'missing' | 'done' | 'cancelled' | 'cancelling'.
local state = redis.call('HGET', key_request, 'state')
if not state then return 'missing' end
if state == 'done' then return 'done' end
if state == 'running' then
  redis.call('HSET', key_request, 'cancel', arg_now)
  redis.call('PUBLISH', arg_control_channel, 'cancel ' .. arg_request_id)
  return 'cancelling'
end
local job = redis.call('HMGET', key_request, 'element', 'reply', 'body')
redis.call('LREM', key_queue, 0, job[1] or '')
redis.call('EXPIRE', key_request, arg_ttl)
conclude(job[2] or '', cjson.decode(job[3]).stream and '{"type":"cancelled","seq":1}' or '')
return 'cancelled'
