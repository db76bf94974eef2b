--! keys: claimed held slots cooldown circuit rate dropped policy policy_models budgets spend queue
--! args: request_prefix worker release max_reruns rpm tpm again element
--! uses: budget start_job
-- A job already in our claimed list that no task runs (adopted: its claim's reply was lost with the
-- connection, or the task that ran it died).
local verdict, body = start(arg_element)
return {{{arg_element, verdict, body}}, redis.call('LLEN', key_queue)}
