--- Readiness of the sidecar bundle: every daemon of the
--- bundle accepts connections before the agent starts, pipelock included
--- when it sits behind egress.
--
-- The check runs inside the bundle as `bottle-init ready`, so it needs no
-- tool in the image beyond bottle's own PID 1, and it works whether or not
-- the bundle publishes anything on the host. A daemon that exited at
-- startup (pipelock refusing its CA, egress refusing its routes) never
-- listens, so it is named here with the bundle's log tail, which holds its
-- own message.
local docker = require("rt.docker")
local errors = require("bottle.errors")

local M = {}

--- Where bottle-init lives in the sidecar image (images/sidecars/Dockerfile).
M.INIT = "/usr/local/bin/bottle-init"

--- Milliseconds the daemons together may take to come up.
M.TIMEOUT_MS = 30000

--- The exec argv checking the plan's daemons.
---@param plan table
---@param timeout_ms? integer
---@return string[]
function M.command(plan, timeout_ms)
  local argv = { M.INIT, "ready", "--timeout-ms", tostring(timeout_ms or M.TIMEOUT_MS) }
  for _, d in ipairs(plan.bundle.daemons) do
    -- relay listens on no port: its sockets answering is its readiness
    -- (bottle.launch.sockets)
    if d ~= "relay" then
      argv[#argv + 1] = d
    end
  end
  return argv
end

local function log_tail(id)
  local out, err = docker.container_logs(id, { tail = 30 })
  return errors.tail(((out or "") .. (err or "")), 30)
end

--- Waits until every daemon of the bundle accepts connections; raises a
--- one-line error naming the first that does not, with the bundle's log
--- tail as detail.
---@param ctx table
---@param plan table
---@param bundle_id string
---@param opts? {timeout_ms: integer}
function M.wait(ctx, plan, bundle_id, opts)
  local timeout_ms = (opts and opts.timeout_ms) or M.TIMEOUT_MS
  local r, err = docker.exec(bundle_id, { cmd = M.command(plan, timeout_ms), timeout_ms = timeout_ms + 10000 })
  if not r then
    errors.raise("ready: cannot check the bundle's daemons: " .. errors.first_line(err), log_tail(bundle_id))
  end
  if r.code == 0 then
    return
  end
  local said = errors.first_line(r.stdout ~= "" and r.stdout or r.stderr):gsub("^bottle%-init ready: ", "")
  local daemon = said:match("^([%w-]+) is not ready")
  if daemon then
    errors.raise("ready: the bundle's " .. said, log_tail(bundle_id))
  end
  errors.raise(string.format("ready: `bottle-init ready` failed in the bundle (exit %d): %s", r.code, said),
    log_tail(bundle_id))
end

return M
