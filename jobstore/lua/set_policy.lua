--! keys: policy models
--! args: active allow deny channel models...
-- A new allowed-models policy, whole: its patterns (`arg_allow`: JSON, '' for every model; `arg_deny`: JSON)
-- and the ids they allow in this catalog (`arg_models`, what the start step checks a job's model against).
-- `arg_active` '0': back to each process's own starting policy (ALLOWED_MODELS). The version counts every
-- change; every producer and worker is told on `arg_channel`. Returns the new version.
local version = redis.call('HINCRBY', key_policy, 'version', 1)
redis.call('HSET', key_policy, 'active', arg_active, 'allow', arg_allow, 'deny', arg_deny)
redis.call('DEL', key_models)
for i = 1, #arg_models, 1000 do
  redis.call('SADD', key_models, unpack(arg_models, i, math.min(i + 999, #arg_models)))
end
redis.call('PUBLISH', arg_channel, 'policy ' .. version)
return version
