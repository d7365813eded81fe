-- Provisioning step `git`: route every declared repo through git-gate.
--
-- `url.<gate>/<name>.insteadOf <upstream>` makes every fetch and push of
-- the upstream URL go to the gate, which holds the push credential and
-- scans what is pushed. The identity is set when the bottle or agent gives one.
local launch = require("bottle.launch")

return {
  description = "point git at git-gate for the declared repos and set the identity",
  run = function(_, plan, target)
    local gate = launch.guest_value(target.rec, "GIT_GATE_URL")
    for _, repo in ipairs(plan.git_gate.repos) do
      local key = "url." .. gate .. "/" .. repo.name .. ".insteadOf"
      target:must("git config", { "git", "config", "--global", key, repo.url }, { user = "node" })
    end
    local user = plan.git_gate.user or {}
    if user.name then
      target:must("git config", { "git", "config", "--global", "user.name", user.name }, { user = "node" })
    end
    if user.email then
      target:must("git config", { "git", "config", "--global", "user.email", user.email }, { user = "node" })
    end
  end,
}
