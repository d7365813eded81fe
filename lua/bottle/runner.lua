--- Runs a recipe and decides bottle's exit code.
--
-- The recipe's run(ctx) executes under a traceback handler with ctx.scope
-- as its cleanup scope; the scope is closed afterwards whatever happened
-- (interrupts masked, so a second ^C does not cut teardown short). Exit
-- code: 128+N when signal N arrived, 1 on error (one line on stderr; -v
-- adds the traceback), else the integer run returned (0 for nil).
local defer = require("rt.defer")
local host = require("rt.host")
local proc = require("rt.proc")
local errors = require("bottle.errors")
local ui = require("bottle.ui")

local M = {}

--- A new context for a recipe run.
---@param fields table name, args, opts, env (defaults filled in)
---@return table ctx
function M.context(fields)
  local ctx = {
    name = fields.name,
    origin = fields.origin,
    args = fields.args or {},
    opts = fields.opts or {},
    env = fields.env or proc.environ(),
    scope = defer.scope(),
    log = ui,
  }
  return ctx
end

-- After a teardown that failed: what of the launch is still there (asked
-- of the backends by its slug) and how to remove it.
local function leftovers_hint(ctx)
  if not ctx.launch then
    return ""
  end
  local plan = ctx.launch.plan
  local ok, left = pcall(function()
    return require("bottle.inventory").leftovers(ctx.env, plan.slug)
  end)
  local names = ok and left or {}
  if ctx.launch.kept then
    names[#names + 1] = "state dir " .. require("bottle.paths").pretty(ctx.env, plan.state.dir)
  end
  if #names == 0 then
    return "; run bottle cleanup to remove whatever is left"
  end
  return "; left behind: " .. table.concat(names, ", ") .. "; run bottle cleanup to remove them"
end

local function describe(err)
  if errors.is(err) then
    return err.message, err.detail
  end
  return tostring(err), nil
end

--- Runs recipe.run(ctx); always closes ctx.scope. Returns the exit code and
--- the error message (nil on success).
---@param recipe table
---@param ctx table
---@return integer code
---@return string|nil message
function M.run(recipe, ctx)
  if ctx.opts.dry_run and recipe.dry_run ~= true then
    -- Running it would create real resources: the flag is only a promise
    -- when the recipe says it keeps it.
    local message = string.format("recipe %s does not support --dry-run (a recipe that plans without creating " ..
      "anything says so with dry_run = true); nothing was run", ctx.name)
    ui.error("%s", message)
    ctx.scope:close()
    return 1, message
  end
  local trace
  local ok, result = xpcall(recipe.run, function(e)
    if not errors.is(e) then
      -- A step (ui.step) already attached the traceback of where a bug was
      -- raised; keep that one, it names the failing frame.
      local text = tostring(e)
      trace = text:find("\nstack traceback:", 1, true) and text or debug.traceback(text, 2)
      return (text:match("^[^\n]*"))
    end
    return e
  end, ctx)
  -- The final teardown: a signal arriving now is not raised afterwards (it
  -- still decides the exit code below).
  host.mask(1)
  local closed, cleanup_err = ctx.scope:close()
  host.drop_pending()
  host.mask(-1)
  local sig, signame = host.signal()

  if not closed then
    cleanup_err = cleanup_err .. leftovers_hint(ctx)
  end
  if sig ~= 0 then
    if closed then
      ui.error("interrupted by %s; cleaned up", signame)
    else
      ui.error("interrupted by %s; %s", signame, cleanup_err)
    end
    return 128 + sig, "interrupted by " .. signame
  end
  if not ok then
    local message, detail = describe(result)
    if not closed then
      message = message .. " (" .. cleanup_err .. ")"
    end
    ui.error("%s", message)
    if detail and detail ~= "" then
      ui.detail(detail)
    end
    if trace and ui.verbose() then
      ui.trace("%s", trace)
    end
    return 1, message
  end
  if not closed then
    ui.error("%s", cleanup_err)
    return 1, cleanup_err
  end
  if result == nil or result == true then
    return 0
  end
  local code = math.tointeger(result)
  if not code then
    ui.error("recipe %s returned %s; expected an exit code (integer) or nothing", ctx.name, tostring(result))
    return 1, "bad return value"
  end
  return code
end

return M
