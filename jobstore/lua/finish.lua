--! keys: request claimed held slots health circuit probation events dead rate
--! args: request_id element release health bucket circuit_min circuit_rate open_ms outcome now ttl terminal
--! args: tokens_channel stream_ttl dead dead_ttl tokens tpm uncount
--! uses: settle conclude
-- Store the outcome and push it to the waiting clients; never two results: a request already done keeps its
-- first one. A stream's terminal event is written with the result, atomically, after every delta. `dead` '1':
-- it failed for good, kept as a dead letter. `uncount` '1': the start counted a provider call that was never
-- made; '2': and a re-run.
if not settle() then return 2 * opened end
if tonumber(arg.tpm) > 0 and tonumber(arg.tokens) > 0 then
  local now_ms = tonumber(arg.now) * 1000
  local tat = math.max(tonumber(redis.call('HGET', key.rate, 'tpm') or '0'), now_ms)
  redis.call('HSET', key.rate, 'tpm', string.format('%.3f', tat + 60000 * tonumber(arg.tokens) / tonumber(arg.tpm)))
  redis.call('PEXPIRE', key.rate, 120000)
end
if arg.uncount ~= '0' then
  redis.call('HINCRBY', key.request, 'attempts', -1)
  if arg.uncount == '2' then redis.call('HINCRBY', key.request, 'reruns', -1) end
end
if arg.dead == '1' then
  redis.call('EXPIRE', key.request, arg.dead_ttl)
  redis.call('ZADD', key.dead, arg.now, arg.request_id)
  redis.call('ZREMRANGEBYSCORE', key.dead, '-inf', tonumber(arg.now) - tonumber(arg.dead_ttl))  -- hashes gone
else
  redis.call('EXPIRE', key.request, arg.ttl)
end
conclude(reply, arg.terminal)
return 1 + 2 * opened
