--! keys: claimed held slots cooldown circuit rate dropped policy policy_models budgets spend queue
--! args: request_prefix worker release max_reruns rpm tpm again most
--! uses: budget start_job
-- The claim under load: up to `most` queued jobs, oldest first, each started, without waiting; it stops at a
-- job that must wait (the provider is paused or at a rate limit: the rest stay queued).
local taken = {}
for _ = 1, tonumber(arg_most) do
  local element = redis.call('LMOVE', key_queue, key_claimed, 'RIGHT', 'LEFT')
  if not element then break end
  local verdict, body = start(element)
  taken[#taken + 1] = {element, verdict, body}
  if verdict[1] == 'wait' then break end
end
return {taken, redis.call('LLEN', key_queue)}
