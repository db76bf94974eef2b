--! piece
--! keys: claimed held slots cooldown circuit rate dropped policy policy_models budgets spend
--! args: request_prefix worker release max_reruns rpm tpm again
-- Whether a claimed job runs now and, when it does, the record that its provider call starts: the one step
-- between a claim and the call. Returns the verdict {verdict, attempts, retries, rerun[, wait ms, reason]} (run:
-- {..., seconds since it was enqueued}) and the job's body. Redis's clock decides: a claim's script may run long
-- after it was sent. `arg_again` '1': an adopted job of ours may be one whose verdict never reached us, so no call
-- was made for it.
local function start(element)
  local job_key = arg_request_prefix .. string.match(element, '^[^\n]*')
  local job = redis.call('HMGET', job_key, 'state', 'retries', 'deadline_at', 'reruns', 'attempts', 'worker', 'body',
    'cancel', 'model', 'agent', 'enqueued_at')
  local state = job[1]
  if state ~= 'queued' and state ~= 'running' then
    if redis.call('LREM', key_claimed, -1, element) > 0 and arg_release == '1' then
      redis.call('LMOVE', key_held, key_slots, 'LEFT', 'RIGHT')
    end
    if not state then  -- no job behind it: garbage pushed onto the queue (or a job long expired), counted
      redis.call('INCR', key_dropped)
      return {'gone', 0, 0, 0}, ''
    end
    return {'ended', 0, 0, 0}, ''
  end
  local retries = tonumber(job[2] or '0')
  if job[8] then return {'cancelled', 0, retries, 0}, job[7] or '' end  -- cancelled while its worker ran it
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
  local deadline = tonumber(job[3] or '0')
  if deadline > 0 and now >= deadline then return {'expired', 0, retries, 0}, job[7] or '' end
  local again = state == 'running' and arg_again == '1' and job[6] == arg_worker
  local rerun = state == 'running' and not again
  if rerun and tonumber(job[4] or '0') >= tonumber(arg_max_reruns) then
    return {'lost', tonumber(job[5] or '0'), retries, 0}, job[7] or ''
  end
  -- the allowed-models policy, when an operator set one: a job queued before a deny never reaches a provider
  -- (a job written before jobs named their model passes)
  if job[9] and redis.call('HGET', key_policy, 'active') == '1'
      and redis.call('SISMEMBER', key_policy_models, job[9]) == 0 then
    return {'denied', 0, retries, 0}, job[7] or ''
  end
  local over = over_budget(job[10])
  if over then return {'over_budget', 0, retries, 0, over[1], over[2]}, job[7] or '' end
  local function wait(ms, reason) return {'wait', 0, retries, 0, ms, reason}, job[7] or '' end
  if redis.call('EXISTS', key_cooldown, key_circuit) > 0 then
    local ms = redis.call('PTTL', key_cooldown)
    if ms > 0 then return wait(ms, 'cooldown') end
    ms = redis.call('PTTL', key_circuit)
    if ms > 0 then return wait(ms, 'circuit') end
  end
  local now_ms = now * 1000
  local rpm, tpm = tonumber(arg_rpm), tonumber(arg_tpm)
  if tpm > 0 then
    local tat = tonumber(redis.call('HGET', key_rate, 'tpm') or '0')
    if tat - now_ms > 60000 then return wait(math.ceil(tat - now_ms - 60000), 'tpm') end
  end
  if rpm > 0 then
    local tat = math.max(tonumber(redis.call('HGET', key_rate, 'rpm') or '0'), now_ms) + 60000 / rpm
    if tat - now_ms > 60000 then return wait(math.ceil(tat - now_ms - 60000), 'rpm') end
    redis.call('HSET', key_rate, 'rpm', string.format('%.3f', tat))
    redis.call('PEXPIRE', key_rate, 120000)
  end
  local stamp = string.format('%.6f', now)
  redis.call('HSET', job_key, 'state', 'running', 'worker', arg_worker, 'claimed_at', stamp, 'upstream_at', stamp)
  if rerun then redis.call('HINCRBY', job_key, 'reruns', 1) end
  local attempts = again and tonumber(job[5] or '0') or redis.call('HINCRBY', job_key, 'attempts', 1)
  local waited = string.format('%.6f', math.max(now - tonumber(job[11] or now), 0))
  return {'run', attempts, retries, rerun and 1 or 0, waited}, job[7] or ''
end
