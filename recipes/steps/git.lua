-- Provisioning step `git`: route every declared repo through git-gate.
--
-- `url.<gate>/<name>.insteadOf <upstream>` makes every fetch and push of
-- the upstream URL go to the gate, which holds the push credential and
-- scans what is pushed. The identity is set when the bottle or agent gives
-- one. All of it as node, in the launch's one provisioning exec.
local batch = require("bottle.batch")

return {
  description = "point git at git-gate for the declared repos and set the identity",
  prepare = function(ctx, plan, b)
    local gate = ctx.launch.urls.git_gate
    local cmds = {}
    for _, repo in ipairs(plan.git_gate.repos) do
      cmds[#cmds + 1] = batch.command({ "git", "config", "--global", "url." .. gate .. "/" .. repo.name ..
        ".insteadOf", repo.url })
    end
    local user = plan.git_gate.user or {}
    if user.name then
      cmds[#cmds + 1] = batch.command({ "git", "config", "--global", "user.name", user.name })
    end
    if user.email then
      cmds[#cmds + 1] = batch.command({ "git", "config", "--global", "user.email", user.email })
    end
    b:sh(table.concat(cmds, " &&\n"), "node")
  end,
}
