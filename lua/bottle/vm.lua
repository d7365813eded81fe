--- A smolvm machine as a provisioning target: what the step files use to
--- run commands and put files in the guest.
--
-- Every exec passes the guest env explicitly (the env given at create time
-- reaches only PID 1). Commands for a user other than root run through
-- `runuser -u <user> --` with HOME and USER set, never as root by accident.
local fs = require("rt.fs")
local proc = require("rt.proc")
local exec = require("bottle.exec")

local M = {}

local VM = {}
VM.__index = VM

---@param ctx table
---@param plan table
---@param driver table bottle.smolvm driver
function M.new(ctx, plan, driver)
  return setmetatable({ ctx = ctx, plan = plan, driver = driver, name = plan.machine.name, kind = "vm" }, VM)
end

local USERS = { node = "/home/node", root = "/root" }

--- The guest env entries for an exec as `user`.
function VM:env_for(user, extra)
  local out = {}
  for _, e in ipairs(self.plan.guest_env) do
    if e.value ~= nil then
      out[#out + 1] = { name = e.name, value = e.value, secret = e.secret }
    end
  end
  if user and user ~= "root" then
    out[#out + 1] = { name = "HOME", value = USERS[user] or ("/home/" .. user) }
    out[#out + 1] = { name = "USER", value = user }
  end
  for _, e in ipairs(extra or {}) do
    out[#out + 1] = e
  end
  return out
end

local function as_user(user, argv)
  if not user or user == "root" then
    return argv
  end
  local cmd = { "runuser", "-u", user, "--" }
  table.move(argv, 1, #argv, #cmd + 1, cmd)
  return cmd
end

--- One exec. opts: user ("root" default), stdin, timeout_ms, workdir.
---@return table result {code, stdout, stderr}
function VM:exec(argv, opts)
  opts = opts or {}
  return self.driver:exec(self.name, as_user(opts.user, argv), {
    env = self:env_for(opts.user),
    stdin = opts.stdin,
    timeout_ms = opts.timeout_ms,
    workdir = opts.workdir,
  })
end

-- run (exec with the warm-up retry) and must (raising on failure).
exec.mixin(VM)

--- Copies a host file into the guest (root-owned; chown afterwards).
function VM:put(host_path, guest_path)
  self.driver:cp(self.name, host_path, guest_path)
end

--- Writes text to a guest file through a 0600 file in the state dir.
function VM:put_text(text, guest_path)
  local tmp = self.plan.state.dir .. "/upload-" .. fs.random_hex(4)
  assert(fs.write(tmp, text, 384))
  local ok, err = pcall(self.put, self, tmp, guest_path)
  fs.rm_rf(tmp)
  if not ok then
    error(err, 0)
  end
end

--- Copies a host directory's contents into guest_dir (created) as a tar.
function VM:put_dir(host_dir, guest_dir)
  local tmp = exec.tar_dir(self.plan.state.dir, host_dir)
  local guest_tar = "/tmp/bottle-upload-" .. fs.random_hex(4) .. ".tar"
  local ok, err = pcall(function()
    self:put(tmp, guest_tar)
    self:must("unpack " .. guest_dir, { "sh", "-c", 'mkdir -p "$1" && tar -xf "$2" -C "$1" && rm -f "$2"', "sh",
      guest_dir, guest_tar })
  end)
  fs.rm_rf(tmp)
  if not ok then
    error(err, 0)
  end
end

--- Runs the agent interactively as node with the terminal passed through;
--- returns its exit code.
function VM:run_agent(argv)
  local tty = proc.isatty(0) and proc.isatty(1)
  local r = self.driver:exec(self.name, as_user("node", argv), {
    env = self:env_for("node"),
    interactive = true,
    tty = tty,
    workdir = "/home/node",
  })
  return r.code
end

return M
