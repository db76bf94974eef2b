--! keys: request claimed held slots health circuit probation delayed cooldown
--! args: element release health bucket circuit_min circuit_rate open_ms uncount run_at cooldown_ms retried
--! uses: settle
-- Put the job aside until `run_at` (without holding a concurrency token); a cooldown pauses the whole provider.
if not settle() then return 2 * opened end
local cooldown = tonumber(arg_cooldown_ms)
if cooldown > 0 and redis.call('PTTL', key_cooldown) < cooldown then
  redis.call('SET', key_cooldown, '1', 'PX', cooldown)
end
redis.call('HSET', key_request, 'state', 'queued')
if arg_retried == '1' then redis.call('HINCRBY', key_request, 'retries', 1) end
redis.call('ZADD', key_delayed, arg_run_at, arg_element)
return 1 + 2 * opened
