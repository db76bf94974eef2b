--! piece
--! keys: request events
--! args: request_id outcome now tokens_channel stream_ttl
-- The request ends with `arg.outcome`: done, pushed to every waiting client's reply channel (`reply`), and for
-- a stream its `terminal` event kept after every delta and sent live ('': not a stream).
local function conclude(reply, terminal)
  redis.call('HSET', key.request, 'state', 'done', 'result', arg.outcome, 'finished_at', arg.now)
  local message = arg.request_id .. '\n' .. arg.outcome
  for channel in string.gmatch(reply, '%S+') do
    redis.call('PUBLISH', channel, message)
  end
  redis.call('HDEL', key.request, 'element', 'reply')  -- a kept result needs neither (attaching reads it)
  if terminal ~= '' then
    redis.call('XADD', key.events, '*', 'e', terminal)
    redis.call('EXPIRE', key.events, arg.stream_ttl)
    redis.call('PUBLISH', arg.tokens_channel, terminal)
  end
end
