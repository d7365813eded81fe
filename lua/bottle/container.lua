--- A docker container as a provisioning target (the docker recipe's
--- counterpart of bottle.vm): the same methods, through the Engine API.
--
-- Files go in through exec stdin (`cat > path`, `tar -x`), so no archive
-- endpoint or docker CLI is needed. Every exec carries the guest env.
local docker = require("rt.docker")
local fs = require("rt.fs")
local proc = require("rt.proc")
local exec = require("bottle.exec")
local errors = require("bottle.errors")

local M = {}

local C = {}
C.__index = C

---@param ctx table
---@param plan table
---@param id string container id
function M.new(ctx, plan, id, name)
  return setmetatable({ ctx = ctx, plan = plan, id = id, name = name, kind = "container" }, C)
end

local HOMES = { node = "/home/node", root = "/root" }

--- The guest env as NAME -> value for an exec as `user`.
function C:env_for(user)
  local env = {}
  for _, e in ipairs(self.plan.guest_env) do
    if e.value ~= nil then
      env[e.name] = e.value
    end
  end
  if user and user ~= "root" then
    env.HOME = HOMES[user] or ("/home/" .. user)
    env.USER = user
  end
  return env
end

--- One exec. opts: user ("root" default), stdin, timeout_ms, workdir.
function C:exec(argv, opts)
  opts = opts or {}
  local r, err = docker.exec(self.id, {
    cmd = argv,
    env = self:env_for(opts.user),
    user = opts.user or "root",
    stdin = opts.stdin,
    workdir = opts.workdir,
    timeout_ms = opts.timeout_ms,
  })
  if not r then
    errors.raise(err)
  end
  return r
end

exec.mixin(C)

function C:put_text(text, guest_path)
  self:must("write " .. guest_path, { "sh", "-c", 'cat > "$1"', "sh", guest_path }, { stdin = text })
end

function C:put(host_path, guest_path)
  local text, err = fs.read(host_path)
  if not text then
    errors.raise(err)
  end
  self:put_text(text, guest_path)
end

function C:put_dir(host_dir, guest_dir)
  local tmp = exec.tar_dir(self.plan.state.dir, host_dir)
  local bytes = fs.read(tmp)
  fs.rm_rf(tmp)
  self:must("unpack " .. guest_dir, { "sh", "-c", 'mkdir -p "$1" && tar -xf - -C "$1"', "sh", guest_dir },
    { stdin = bytes })
end

--- Runs the agent as node through `docker exec -i -u node` (`-t` only on a
--- terminal), the one place the docker CLI is used; secret env values travel
--- in the CLI's environment (`-e NAME`), never on its argv.
function C:run_agent(argv)
  local args = { "docker", "exec", "-i" }
  if proc.isatty(0) and proc.isatty(1) then
    args[#args + 1] = "-t"
  end
  table.move({ "-u", "node", "-w", "/home/node" }, 1, 4, #args + 1, args)
  local env = {}
  for k, v in pairs(self.ctx.env) do
    env[k] = v
  end
  local docker_host = docker.socket and docker.socket()
  if docker_host and not env.DOCKER_HOST then
    env.DOCKER_HOST = "unix://" .. docker_host
  end
  -- Secret values by name (the CLI forwards them from its environment);
  -- the rest as NAME=value, so HOME or the proxy variables of the guest do
  -- not change how the docker CLI itself runs.
  local secret = {}
  for _, e in ipairs(self.plan.guest_env) do
    if e.secret then
      secret[e.name] = true
    end
  end
  local guest = self:env_for("node")
  local names = {}
  for k in pairs(guest) do
    names[#names + 1] = k
  end
  table.sort(names)
  for _, k in ipairs(names) do
    args[#args + 1] = "-e"
    if secret[k] then
      env[k] = guest[k]
      args[#args + 1] = k
    else
      args[#args + 1] = k .. "=" .. guest[k]
    end
  end
  args[#args + 1] = self.name
  table.move(argv, 1, #argv, #args + 1, args)
  local r, err, code = proc.run({ argv = args, env = env, interactive = true })
  if not r then
    if code == "ENOENT" then
      errors.raise("the docker CLI is needed to run the agent interactively: " .. err)
    end
    errors.raise(err)
  end
  return r.code
end

return M
