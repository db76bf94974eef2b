--! keys: request claimed held slots health circuit probation delayed cooldown
--! args: element release health bucket circuit_min circuit_rate open_ms run_at cooldown_ms retried
--! uses: settle
-- Put the job aside until `run_at` (without holding a concurrency token); a cooldown pauses the whole provider.
if not settle() then return 2 * opened end
local cooldown = tonumber(arg.cooldown_ms)
if cooldown > 0 and redis.call('PTTL', key.cooldown) < cooldown then
  redis.call('SET', key.cooldown, '1', 'PX', cooldown)
end
redis.call('HSET', key.request, 'state', 'queued')
if arg.retried == '1' then redis.call('HINCRBY', key.request, 'retries', 1) end
redis.call('ZADD', key.delayed, arg.run_at, arg.element)
return 1 + 2 * opened
