--! keys: delayed queue
--! args: now
--! uses: promote_due
-- Queue the retries that are due; returns when the next one is (-1: none).
promote(key_delayed, key_queue, arg_now)
local next = redis.call('ZRANGE', key_delayed, 0, 0, 'WITHSCORES')
return next[2] or '-1'
