--! flags: allow-oom
--! keys: claimed queue workers held slots inbox
--! args: worker
-- Put every job a worker holds back at the head of the queue (next to be claimed), return its tokens, and drop
-- it from the workers (a dead worker's, or ours at shutdown; also when Redis is out of memory). Returns how
-- many jobs moved.
local moved = 0
while redis.call('LMOVE', key_claimed, key_queue, 'LEFT', 'RIGHT') do moved = moved + 1 end
while redis.call('LMOVE', key_inbox, key_queue, 'LEFT', 'RIGHT') do moved = moved + 1 end
while redis.call('LMOVE', key_held, key_slots, 'LEFT', 'RIGHT') do end
redis.call('ZREM', key_workers, arg_worker)
return moved
