--! keys: slots size
--! args: limit
-- The first worker creates the fleet-wide concurrency tokens; a larger limit adds some. Returns the size.
local size = tonumber(redis.call('GET', key_size) or '0')
local limit = tonumber(arg_limit)
for _ = size + 1, limit do redis.call('RPUSH', key_slots, 't') end
if limit > size then redis.call('SET', key_size, limit) end
return math.max(size, limit)
