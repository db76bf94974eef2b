--! keys: request claimed held slots health circuit probation events dead rate spend activity
--! args: request_id element release health bucket circuit_min circuit_rate open_ms outcome now ttl terminal
--! args: tokens_channel stream_ttl dead dead_ttl tokens tpm uncount agent cost took
--! uses: settle conclude
-- Store the outcome and push it to the waiting clients; never two results: a request already done keeps its
-- first one. A stream's terminal event is written with the result, atomically, after every delta. `dead` '1':
-- it failed for good, kept as a dead letter. The provider's recent activity, for `llm-fleet top`: the request
-- is counted in this 10 s bucket's hash (its own key: it expires whole, nothing to shed) by its latency's bin
-- (`took`: l0..l15, keys.LATENCY_BOUNDS), with its tokens, its cost (nano-USD: HINCRBY, cheaper than a float)
-- and whether it failed.
if not settle() then return 2 * opened end
if redis.call('HINCRBY', key_activity, arg_took, 1) == 1 then redis.call('EXPIRE', key_activity, 60) end
if arg_dead == '1' then redis.call('HINCRBY', key_activity, 'fail', 1) end
if arg_tokens ~= '0' then redis.call('HINCRBY', key_activity, 'tok', arg_tokens) end
if tonumber(arg_tpm) > 0 and tonumber(arg_tokens) > 0 then
  local now_ms = tonumber(arg_now) * 1000
  local tat = math.max(tonumber(redis.call('HGET', key_rate, 'tpm') or '0'), now_ms)
  redis.call('HSET', key_rate, 'tpm', string.format('%.3f', tat + 60000 * tonumber(arg_tokens) / tonumber(arg_tpm)))
  redis.call('PEXPIRE', key_rate, 120000)
end
local cost = tonumber(arg_cost)
if cost > 0 then
  redis.call('HINCRBY', key_activity, 'nusd', math.floor(cost * 1e9 + 0.5))
  if arg_agent ~= '' then  -- today's spend of its source_agent, for its budget
    redis.call('HINCRBYFLOAT', key_spend, arg_agent, arg_cost)
    redis.call('EXPIRE', key_spend, 259200)
  end
end
if arg_dead == '1' then
  redis.call('EXPIRE', key_request, arg_dead_ttl)
  redis.call('ZADD', key_dead, arg_now, arg_request_id)
  redis.call('ZREMRANGEBYSCORE', key_dead, '-inf', tonumber(arg_now) - tonumber(arg_dead_ttl))  -- hashes gone
else
  redis.call('EXPIRE', key_request, arg_ttl)
end
conclude(reply, arg_terminal)
return 1 + 2 * opened
