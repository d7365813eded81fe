-- Provisioning step `prompt`: the agent manifest's body is its system prompt.
--
-- The file is always written (empty when the agent has no prompt) so the
-- agent's home looks the same for every launch; the launch adds
-- `--append-system-prompt-file` to the command only for a non-empty prompt.
local batch = require("bottle.batch")
local plan_mod = require("bottle.plan")

return {
  description = "copy the agent's system prompt into the guest",
  prepare = function(_, plan, b)
    local staged = b:file("prompt.txt", plan.agent.prompt or "", { mode = 420 })
    b:sh(string.format("install -o node -g node -m 644 %s %s", staged, batch.quote(plan_mod.PROMPT_FILE)))
  end,
}
