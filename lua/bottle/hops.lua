--- The hop-order policy: which proxies sit in the agent's HTTP(S) path, in
--- order, the first being the agent-facing one (the port the agent dials).
--
-- Default: a bottle that declares egress routes sends the
-- agent to egress (which swaps placeholders for real credentials) and egress
-- forwards through pipelock (allowlist, TLS inspection, DLP) to the
-- internet. Without declared routes there is nothing to inject, so the
-- agent dials pipelock directly. Eject this module to change the policy:
--   bottle recipe eject bottle.hops
local M = {}

--- The ordered hops for a plan.
---@param plan table with plan.routes (the routes the bottle(s) declare)
---@return string[] hops, agent-facing first
function M.order(plan)
  if #plan.routes > 0 then
    return { "egress", "pipelock" }
  end
  return { "pipelock" }
end

return M
