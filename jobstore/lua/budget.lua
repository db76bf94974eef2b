--! piece
--! keys: budgets spend
-- Whether a source_agent has spent its daily budget (`key_budgets`: USD per day by agent; `key_spend`: today's
-- spend by agent): the spend and the budget when it has, else nil.
local function over_budget(agent)
  if not agent or agent == '' then return nil end
  local budget = redis.call('HGET', key_budgets, agent)
  if not budget then return nil end
  local spent = redis.call('HGET', key_spend, agent) or '0'
  if tonumber(spent) >= tonumber(budget) then return {spent, budget} end
  return nil
end
