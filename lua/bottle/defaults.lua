--- Built-in defaults: the `claude` agent, the `default` bottle, the hosts
--- every bottle allows, image names and ports.
--
-- Eject this module (`bottle recipe eject bottle.defaults`) to change them
-- for every launch.
local M = {}

--- Hosts Claude Code needs; always on pipelock's allowlist, and pass-through
--- routes in egress's table when egress is agent-facing. They never count
--- as routes a bottle declares.
M.ALLOWLIST = {
  "api.anthropic.com",
  "statsig.anthropic.com",
  "sentry.io",
  "claude.ai",
  "platform.claude.com",
  "downloads.claude.ai",
  "raw.githubusercontent.com",
}

M.IMAGES = { agent = "bottle-agent:latest", sidecars = "bottle-sidecars:latest" }

--- Container ports of the bundle's daemons.
M.PORTS = { egress = 9099, pipelock = 8888, ["git-gate"] = 9418, supervise = 9100 }

--- The agent's command in the guest; the system prompt flag is added by
--- the prompt step when the agent has a prompt.
M.AGENT_COMMAND = { "claude", "--dangerously-skip-permissions" }

--- Private pool the per-bottle /24 is picked from (BOTTLE_SUBNET_POOL
--- overrides it, e.g. "10.213.0.0/16").
M.SUBNET_POOL = "10.213.0.0/16"

local AGENTS = {
  claude = [[
---
# The built-in agent: Claude Code with its own default system prompt.
# Copy this to ~/.config/bottle/agents/<name>.md to make your own.
bottle: default
---
]],
}

local BOTTLES = {
  default = [[
---
# The built-in bottle: no egress routes (the agent reaches only the default
# allowlist through pipelock), no git-gate, no supervise.
---
]],
}

--- The text of a built-in manifest, or nil.
---@param kind "agent"|"bottle"
---@param name string
function M.manifest(kind, name)
  if kind == "agent" then
    return AGENTS[name]
  end
  return BOTTLES[name]
end

return M
