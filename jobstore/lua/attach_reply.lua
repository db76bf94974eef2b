--! piece
--! keys: request
--! args: reply
-- The request exists: its result, or our reply channel added to the waiting clients' (once), with the
-- request's state and deadline.
local function attach()
  local result = redis.call('HGET', key_request, 'result')
  if result then return {'done', result} end
  local reply = redis.call('HGET', key_request, 'reply') or ''
  if not string.find(' ' .. reply .. ' ', ' ' .. arg_reply .. ' ', 1, true) then
    redis.call('HSET', key_request, 'reply', reply .. ' ' .. arg_reply)
  end
  local job = redis.call('HMGET', key_request, 'state', 'deadline_at')
  return {'waiting', job[1] or '', job[2] or '0'}
end
