--! keys: request claimed held slots health circuit probation events dead rate spend
--! args: request_id element release health bucket circuit_min circuit_rate open_ms outcome now ttl terminal
--! args: tokens_channel stream_ttl dead dead_ttl tokens tpm uncount agent cost took
--! uses: settle conclude
-- Store the outcome and push it to the waiting clients; never two results: a request already done keeps its
-- first one. A stream's terminal event is written with the result, atomically, after every delta. `dead` '1':
-- it failed for good, kept as a dead letter. `took`: the bin of its latency (keys.LATENCY_BOUNDS), counted with
-- its tokens, cost and failure in the health hash's bucket for `llm-fleet top`.
if not settle() then return 2 * opened end
tally('l' .. arg_took, 1)
if arg_dead == '1' then tally('fail', 1) end
if arg_tokens ~= '0' then redis.call('HINCRBY', key_health, 'tok:' .. arg_bucket, arg_tokens) end
if tonumber(arg_tpm) > 0 and tonumber(arg_tokens) > 0 then
  local now_ms = tonumber(arg_now) * 1000
  local tat = math.max(tonumber(redis.call('HGET', key_rate, 'tpm') or '0'), now_ms)
  redis.call('HSET', key_rate, 'tpm', string.format('%.3f', tat + 60000 * tonumber(arg_tokens) / tonumber(arg_tpm)))
  redis.call('PEXPIRE', key_rate, 120000)
end
if tonumber(arg_cost) > 0 then
  redis.call('HINCRBYFLOAT', key_health, 'usd:' .. arg_bucket, arg_cost)
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
