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
local function settle()
  -- the token goes back once: a script run twice (its reply lost with the connection) finds the job gone
  if redis.call('LREM', key_claimed, -1, arg_element) > 0 and arg_release == '1' then
    redis.call('LMOVE', key_held, key_slots, 'LEFT', 'RIGHT')
  end
  if arg_health ~= '' then
    local bucket = tonumber(arg_bucket)
    if redis.call('HINCRBY', key_health, arg_health .. ':' .. bucket, 1) == 1 then
      -- a new bucket: the hash lives a minute past it, and sheds the buckets the circuit no longer reads
      -- (any left from before a pause: the hash outlives no gap of more than six buckets)
      redis.call('EXPIRE', key_health, 60)
      local old = {}
      for b = bucket - 8, bucket - 3 do
        old[#old + 1] = 'ok:' .. b
        old[#old + 1] = 'err:' .. b
      end
      redis.call('HDEL', key_health, unpack(old))
    end
    if arg_health == 'err' then
      local ok, err = 0, 0
      for b = bucket - 2, bucket do
        ok = ok + tonumber(redis.call('HGET', key_health, 'ok:' .. b) or '0')
        err = err + tonumber(redis.call('HGET', key_health, 'err:' .. b) or '0')
      end
      if err >= tonumber(arg_circuit_min) and err / (ok + err) >= tonumber(arg_circuit_rate) then
        redis.call('SET', key_circuit, 'open', 'PX', arg_open_ms)
        redis.call('SET', key_probation, '1', 'PX', arg_open_ms + 30000)
        redis.call('DEL', key_health)
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
