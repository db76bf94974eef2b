--! flags: no-writes
--! keys: queue delayed workers slots size circuit probation cooldown dropped health recent...
--! args: request_prefix dead_after
-- What one queue looks like now, read at once on Redis's clock (the heartbeats' and the start step's): its
-- depth, retries put aside, the oldest waiting job's age (the next to be claimed, at the queue's right end: LPUSH
-- in, BLMOVE out), live workers, the fleet's concurrency tokens (given, free), the circuit and cooldown (ms
-- left), dropped elements, the health hash (the circuit's counts) and the activity hashes of the `recent`
-- buckets. Reads only: it runs on a replica too.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local age = 0
local head = redis.call('LINDEX', key_queue, -1)
if head then
  local job_key = arg_request_prefix .. string.match(head, '^[^\n]*')
  local enqueued = redis.call('HGET', job_key, 'enqueued_at')
  if enqueued then age = math.max(now - tonumber(enqueued), 0) end
end
local recent = {}
for i, key in ipairs(key_recent) do recent[i] = redis.call('HGETALL', key) end
return {
  redis.call('LLEN', key_queue),
  redis.call('ZCARD', key_delayed),
  string.format('%.6f', age),
  redis.call('ZCOUNT', key_workers, now - tonumber(arg_dead_after), '+inf'),
  tonumber(redis.call('GET', key_size) or '0'),
  redis.call('LLEN', key_slots),
  redis.call('PTTL', key_circuit),
  redis.call('EXISTS', key_probation),
  redis.call('PTTL', key_cooldown),
  tonumber(redis.call('GET', key_dropped) or '0'),
  redis.call('HGETALL', key_health),
  recent,
}
