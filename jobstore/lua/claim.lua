--! keys: claimed held slots cooldown circuit rate dropped policy policy_models budgets spend queue inbox
--! args: request_prefix worker release max_reruns rpm tpm again
--! uses: budget start_job
-- Sent with the BLMOVE that waits for a job (into our inbox), so Redis runs it the moment that BLMOVE is
-- served: the job moves on to the claimed list, started. Nothing in the inbox: the BLMOVE timed out.
-- Returns {{element, verdict, body}...} and how many jobs are still queued.
local element = redis.call('LMOVE', key_inbox, key_claimed, 'LEFT', 'LEFT')
if not element then return {{}, 0} end
local verdict, body = start(element)
return {{{element, verdict, body}}, redis.call('LLEN', key_queue)}
