--! piece
--! keys: request
--! args: reply
-- The request exists: its result, or our reply channel added to the waiting clients' (once), with the
-- request's state and deadline.
local function attach()
  local result = redis.call('HGET', key.request, 'result')
  if result then return {'done', result} end
  local reply = redis.call('HGET', key.request, 'reply') or ''
  if not string.find(' ' .. reply .. ' ', ' ' .. arg.reply .. ' ', 1, true) then
    redis.call('HSET', key.request, 'reply', reply .. ' ' .. arg.reply)
  end
  local job = redis.call('HMGET', key.request, 'state', 'deadline_at')
  return {'waiting', job[1] or '', job[2] or '0'}
end
