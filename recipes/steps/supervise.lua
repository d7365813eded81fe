-- Provisioning step `supervise`: register the supervise MCP server with
-- Claude Code. A failure is a warning that prints the command to run by
-- hand, not fatal: the agent works without it.
local launch = require("bottle.launch")

return {
  description = "register the supervise MCP server with the agent",
  run = function(ctx, _, target)
    local url = launch.guest_value(target.rec, "MCP_SUPERVISE_URL")
    local argv = { "claude", "mcp", "add", "--scope", "user", "--transport", "http", "supervise", url }
    local r = target:run(argv, { user = "node" })
    if r.code ~= 0 then
      ctx.log.warn("supervise: could not register the MCP server (exit %d); inside the bottle run: %s",
        r.code, table.concat(argv, " "))
    end
  end,
}
