--! piece
-- Due retries go to the head of the queue (they have waited already).
local function promote(delayed, queue, now)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
  for _, element in ipairs(due) do
    redis.call('ZREM', delayed, element)
    redis.call('RPUSH', queue, element)
  end
end
