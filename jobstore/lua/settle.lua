--! piece
--! keys: request claimed held slots health circuit probation
--! args: element release health bucket circuit_min circuit_rate open_ms uncount
-- The common start of finish, defer and reroute: the job leaves the claimed list, its token goes back, the
-- outcome is counted for the circuit (`arg_health`: 'ok' | 'err' | '', opening it when the recent error rate
-- says so: `opened`), the reply channels are kept in `reply`; true while the request is unfinished (a cancel
-- may have ended it; `arg_uncount` '1': its start counted a provider call that was never made, taken back when it
-- is; '2': and a re-run). The scripts return 1 when they changed the job (0: it had ended already), plus 2 when
-- they opened the circuit.
local opened, reply = 0, ''
-- Count `by` in this bucket's `name` field of the provider's health hash. A field's first count in a bucket
-- keeps the hash a minute past it and sheds the buckets no reader uses (any left from before a pause: the
-- hash outlives no gap of more than six buckets). Its fields: the circuit's ok and err, and per finished request
-- (finish.lua) fail, tok, usd and the 16 latency bins l0..l15 (keys.LATENCY_BOUNDS, and one past its last).
local function tally(name, by)
  local bucket = tonumber(arg_bucket)
  if redis.call('HINCRBY', key_health, name .. ':' .. bucket, by) == by then
    redis.call('EXPIRE', key_health, 60)
    local fields, old = {'ok', 'err', 'fail', 'tok', 'usd'}, {}
    for i = 0, 15 do fields[#fields + 1] = 'l' .. i end
    for b = bucket - 8, bucket - 3 do
      for _, field in ipairs(fields) do old[#old + 1] = field .. ':' .. b end
    end
    redis.call('HDEL', key_health, unpack(old))
  end
end
local function settle()
  -- the token goes back once: a script run twice (its reply lost with the connection) finds the job gone
  if redis.call('LREM', key_claimed, -1, arg_element) > 0 and arg_release == '1' then
    redis.call('LMOVE', key_held, key_slots, 'LEFT', 'RIGHT')
  end
  if arg_health ~= '' then
    local bucket = tonumber(arg_bucket)
    tally(arg_health, 1)
    if arg_health == 'err' then
      local ok, err, counted = 0, 0, {}
      for b = bucket - 2, bucket do
        ok = ok + tonumber(redis.call('HGET', key_health, 'ok:' .. b) or '0')
        err = err + tonumber(redis.call('HGET', key_health, 'err:' .. b) or '0')
        counted[#counted + 1] = 'ok:' .. b
        counted[#counted + 1] = 'err:' .. b
      end
      if err >= tonumber(arg_circuit_min) and err / (ok + err) >= tonumber(arg_circuit_rate) then
        redis.call('SET', key_circuit, 'open', 'PX', arg_open_ms)
        redis.call('SET', key_probation, '1', 'PX', arg_open_ms + 30000)
        redis.call('HDEL', key_health, unpack(counted))  -- the circuit counts afresh (the activity stays)
        opened = 1
      end
    end
  end
  local job = redis.call('HMGET', key_request, 'state', 'reply')
  reply = job[2] or ''
  if job[1] == 'done' then return false end
  if arg_uncount ~= '0' then
    redis.call('HINCRBY', key_request, 'attempts', -1)
    if arg_uncount == '2' then redis.call('HINCRBY', key_request, 'reruns', -1) end
  end
  return true
end
