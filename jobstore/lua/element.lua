--! piece
-- A job's queue element: its id, the route (index into the model and its fallbacks) it waits for, and its
-- deadline. The body stays in the job hash; the element is how the job is found in lists and sets.
local function element_of(id, route, deadline)
  return id .. '\n' .. route .. '\n' .. deadline
end
