-- Provisioning step `skills`: copy each of the agent's skills from the host
-- (~/.claude/skills/<name>/) into the guest, replacing what is there,
-- owned by node.
local fs = require("rt.fs")
local errors = require("bottle.errors")
local batch = require("bottle.batch")

return {
  description = "copy the agent's skills into ~/.claude/skills",
  prepare = function(_, plan, b)
    local lines = { "mkdir -p /home/node/.claude/skills" }
    for _, skill in ipairs(plan.agent.skills) do
      local st = fs.stat(skill.dir)
      if not st or st.type ~= "dir" then
        errors.raise(string.format("skill '%s' vanished since planning (%s is gone)", skill.name, skill.dir))
      end
      local staged = b:tree(skill.dir, "skills/" .. skill.name)
      local dest = batch.quote("/home/node/.claude/skills/" .. skill.name)
      lines[#lines + 1] = string.format("rm -rf %s && cp -R %s %s", dest, staged, dest)
    end
    lines[#lines + 1] = "chown -R node:node /home/node/.claude"
    b:sh(table.concat(lines, " &&\n"))
  end,
}
