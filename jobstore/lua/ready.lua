--! flags: no-writes
--! keys: pairs...
--! args: dead_after
-- Which providers are ready to serve: for each pair of keys (a provider's workers, its circuit), 1 when a
-- worker's heartbeat is younger than `dead_after` (on Redis's clock, as the heartbeats are) and the circuit
-- is closed, else 0.
local time = redis.call('TIME')
local since = tonumber(time[1]) + tonumber(time[2]) / 1000000 - tonumber(arg_dead_after)
local ready = {}
for i = 1, #key_pairs, 2 do
  local live = redis.call('ZCOUNT', key_pairs[i], since, '+inf') > 0
  ready[#ready + 1] = (live and redis.call('EXISTS', key_pairs[i + 1]) == 0) and 1 or 0
end
return ready
