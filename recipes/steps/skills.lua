-- Provisioning step `skills`: copy each of the agent's skills from the host
-- (~/.claude/skills/<name>/) into the guest, replacing what is there.
local fs = require("rt.fs")
local errors = require("bottle.errors")

return {
  description = "copy the agent's skills into ~/.claude/skills",
  run = function(_, plan, target)
    for _, skill in ipairs(plan.agent.skills) do
      local st = fs.stat(skill.dir)
      if not st or st.type ~= "dir" then
        errors.raise(string.format("skill '%s' vanished since planning (%s is gone)", skill.name, skill.dir))
      end
      local dest = "/home/node/.claude/skills/" .. skill.name
      target:must("remove the old copy", { "rm", "-rf", dest })
      target:put_dir(skill.dir, dest, { uname = "node", gname = "node", uid = 1000, gid = 1000 })
      target:must("chown", { "chown", "-R", "node:node", "/home/node/.claude" })
    end
  end,
}
