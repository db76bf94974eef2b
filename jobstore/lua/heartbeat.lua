--! flags: allow-oom
--! keys: workers delayed queue claimed held slots inbox
--! args: worker now dead_after
--! uses: promote_due
-- Refresh this worker's heartbeat (on Redis's clock: the workers' clocks may disagree by more than a beat),
-- queue the retries that are due (a dead worker's too), move to the claimed list a job left in the inbox (a
-- claim whose start script did not run: Redis went down between the two; it is then adopted like any claimed
-- job no task runs), and give back tokens held for nothing: every held token belongs to a claimed job, except
-- at most one taken for the next claim, so more than claimed + 1 means a token BLMOVE whose reply was lost.
-- Returns how many jobs our claimed list holds, the workers whose heartbeat is older than `dead_after`, and
-- the tokens given back. It runs when Redis is out of memory too (it adds next to nothing), or the worker
-- would be presumed dead and its running jobs re-run.
local time = redis.call('TIME')
local beat = tonumber(time[1]) + tonumber(time[2]) / 1000000
redis.call('ZADD', key_workers, beat, arg_worker)
promote(key_delayed, key_queue, arg_now)
while redis.call('LMOVE', key_inbox, key_claimed, 'LEFT', 'LEFT') do end
local claimed = redis.call('LLEN', key_claimed)
local extra = redis.call('LLEN', key_held) - claimed - 1
for _ = 1, extra do redis.call('LMOVE', key_held, key_slots, 'LEFT', 'RIGHT') end
return {claimed, redis.call('ZRANGEBYSCORE', key_workers, '-inf', beat - tonumber(arg_dead_after), 'LIMIT', 0, 10),
        math.max(extra, 0)}
