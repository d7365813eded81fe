-- Provisioning step `prompt`: the agent manifest's body is its system prompt.
--
-- The file is always written (empty when the agent has no prompt) so the
-- agent's home looks the same for every launch; the launch adds
-- `--append-system-prompt-file` to the command only for a non-empty prompt.
local plan_mod = require("bottle.plan")

return {
  description = "copy the agent's system prompt into the guest",
  run = function(_, plan, target)
    local path = plan_mod.PROMPT_FILE
    target:put_text(plan.agent.prompt or "", path)
    target:must("chown", { "chown", "node:node", path })
  end,
}
