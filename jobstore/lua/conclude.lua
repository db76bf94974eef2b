--! piece
--! keys: request events
--! args: request_id outcome now tokens_channel stream_ttl
-- The request ends with `arg_outcome`: done, pushed to every waiting client's reply channel (`reply`), and for
-- a stream its `terminal` event kept after every delta and sent live ('': not a stream).
local function conclude(reply, terminal)
  redis.call('HSET', key_request, 'state', 'done', 'result', arg_outcome, 'finished_at', arg_now)
  local message = arg_request_id .. '\n' .. arg_outcome
  for channel in string.gmatch(reply, '%S+') do
    redis.call('PUBLISH', channel, message)
  end
  redis.call('HDEL', key_request, 'element', 'reply')  -- a kept result needs neither (attaching reads it)
  if terminal ~= '' then
    redis.call('XADD', key_events, '*', 'e', terminal)
    redis.call('EXPIRE', key_events, arg_stream_ttl)
    redis.call('PUBLISH', arg_tokens_channel, terminal)
  end
end
