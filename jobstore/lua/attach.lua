--! keys: request
--! args: reply
--! uses: attach_reply
-- Wait for a request already submitted: {'missing'} | attach()'s answer.
if redis.call('EXISTS', key_request) == 0 then return {'missing'} end
return attach()
