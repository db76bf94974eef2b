--! keys: streams...
--! args: events...
-- Stream events, each kept (a Redis Stream capped near 100,000 events: tokens coalesce, so a stream has far
-- fewer) and sent live. `key_streams`: each event's kept copy; `arg_events`: for each, its live channel, the
-- event, and the kept copy's TTL when it is its stream's first event ('0' otherwise).
for i, stream in ipairs(key_streams) do
  local channel, event, ttl = arg_events[3 * i - 2], arg_events[3 * i - 1], arg_events[3 * i]
  redis.call('XADD', stream, 'MAXLEN', '~', 100000, '*', 'e', event)
  if ttl ~= '0' then redis.call('EXPIRE', stream, ttl) end
  redis.call('PUBLISH', channel, event)
end
