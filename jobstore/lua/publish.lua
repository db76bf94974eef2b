--! keys: streams...
--! args: cap ttl events...
-- Stream events, each kept (a capped Redis Stream) and sent live. `key.streams`: each event's kept copy;
-- `arg.events`: for each, its live channel, the event, and '1' when it is its stream's first (the copy's TTL is
-- set then).
for i, stream in ipairs(key.streams) do
  local channel, event, first = arg.events[3 * i - 2], arg.events[3 * i - 1], arg.events[3 * i]
  redis.call('XADD', stream, 'MAXLEN', '~', arg.cap, '*', 'e', event)
  if first == '1' then redis.call('EXPIRE', stream, arg.ttl) end
  redis.call('PUBLISH', channel, event)
end
