-- Provisioning step `supervise`: register the supervise MCP server with
-- Claude Code. A failure is a warning that prints the command to run by
-- hand, not fatal: the agent works without it.
local batch = require("bottle.batch")

local function argv(ctx)
  return { "claude", "mcp", "add", "--scope", "user", "--transport", "http", "supervise", ctx.launch.urls.supervise }
end

return {
  description = "register the supervise MCP server with the agent",
  fatal = false,
  prepare = function(ctx, _, b)
    b:sh(batch.command(argv(ctx)), "node")
  end,
  check = function(ctx, _, part)
    if part.code ~= 0 then
      ctx.log.warn("supervise: could not register the MCP server (exit %d); inside the bottle run: %s",
        part.code, table.concat(argv(ctx), " "))
    end
  end,
}
