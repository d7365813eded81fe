--- The smolvm CLI, through rt.proc.
--
-- The executable is BOTTLE_SMOLVM or `smolvm` on PATH. Two syntaxes exist:
-- releases before 1.1 take the machine name positionally for `create` and
-- `delete` (the 0.8 form), later ones take `--name`. The syntax is detected
-- once (from `smolvm --version`, else from `machine create --help`) and the
-- difference stays inside this module.
--
-- Secret values (forwarded `${VAR}` values, answers to `?` prompts) are
-- never put on smolvm's argv and never given at create time (smolvm keeps
-- create-time env in its machine record on disk; it reaches only PID 1
-- anyway). Every exec passes them from smolvm's own environment: with
-- `--secret-env NAME=BOTTLE_SECRET_NAME` (smolvm 1.0+, never persisted),
-- else `-e NAME` (Docker's `-e NAME` semantics, smolvm 0.8.1+).
local proc = require("rt.proc")
local errors = require("bottle.errors")
local ui = require("bottle.ui")

local M = {}

local Driver = {}
Driver.__index = Driver

--- A driver for ctx's environment.
---@param ctx table
function M.new(ctx)
  local self = setmetatable({}, Driver)
  self.exe = ctx.env.BOTTLE_SMOLVM or "smolvm"
  self.host_env = ctx.env
  return self
end

--- Runs smolvm with args. `secret_env` values go into smolvm's environment
--- only. Returns the rt.proc result; raises when smolvm cannot be run.
function Driver:run(args, opts)
  opts = opts or {}
  local argv = { self.exe }
  for _, a in ipairs(args) do
    argv[#argv + 1] = a
  end
  local env = self.host_env
  if opts.secret_env and next(opts.secret_env) then
    env = {}
    for k, v in pairs(self.host_env) do
      env[k] = v
    end
    for k, v in pairs(opts.secret_env) do
      env[k] = v
    end
  end
  local r, msg, code = proc.run({ argv = argv, env = env, stdin = opts.stdin, timeout_ms = opts.timeout_ms,
    interactive = opts.interactive })
  if not r then
    if code == "ENOENT" then
      errors.raise(string.format("%s: not found. Install smolvm, point BOTTLE_SMOLVM at it, " ..
        "or run the agent in a container instead: bottle recipe run docker", self.exe))
    end
    errors.raise(string.format("smolvm %s: %s", args[1] .. (args[2] and (" " .. args[2]) or ""), msg))
  end
  return r
end

local function failed(what, r)
  local err = (r.stderr ~= "" and r.stderr) or r.stdout
  errors.raise(string.format("smolvm %s exited %d%s", what, r.code,
    err ~= "" and (": " .. errors.first_line(errors.tail(err, 1))) or ""), errors.tail(err))
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t or {}) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

local function parse_version(text)
  local a, b, c = tostring(text):match("(%d+)%.(%d+)%.(%d+)")
  if not a then
    return nil
  end
  return { tonumber(a), tonumber(b), tonumber(c) }
end

local function at_least(v, a, b, c)
  if v[1] ~= a then
    return v[1] > a
  end
  if v[2] ~= b then
    return v[2] > b
  end
  return v[3] >= c
end

--- Detects the CLI's syntax once: self.named (create/delete take --name)
--- and self.forward_env (understands `-e NAME`).
function Driver:detect()
  if self.named ~= nil then
    return self
  end
  local r = self:run({ "--version" })
  if r.code ~= 0 then
    failed("--version", r)
  end
  local v = parse_version(r.stdout)
  if v then
    self.version = table.concat(v, ".")
    self.named = at_least(v, 1, 1, 0)
    self.forward_env = at_least(v, 0, 8, 1)
    self.secret_flag = at_least(v, 1, 0, 0)
    self.local_images = at_least(v, 1, 1, 0)
    self.labels = at_least(v, 1, 8, 0)
  else
    local help = self:run({ "machine", "create", "--help" })
    self.named = (help.stdout .. help.stderr):find("%-%-name") ~= nil
    self.forward_env = true
  end
  ui.trace("smolvm %s: machine name %s", self.version or "(unknown version)",
    self.named and "by --name" or "positional")
  return self
end

--- Turns env entries into flags and the values for smolvm's own
--- environment. Entries: { name, value, secret }. `create` leaves secrets
--- out (see the header).
function Driver:env_flags(entries, create)
  local flags, secret_env = {}, {}
  for _, e in ipairs(entries or {}) do
    if e.value ~= nil and not (e.secret and create) then
      if e.secret and self.secret_flag then
        local host_var = "BOTTLE_SECRET_" .. e.name
        flags[#flags + 1] = "--secret-env"
        flags[#flags + 1] = e.name .. "=" .. host_var
        secret_env[host_var] = e.value
      elseif e.secret then
        if not self.forward_env then
          errors.raise(string.format("smolvm %s cannot take %s without putting its value on the command line; " ..
            "upgrade smolvm to 0.8.1 or later", self.version or "?", e.name))
        end
        flags[#flags + 1] = "-e"
        flags[#flags + 1] = e.name
        secret_env[e.name] = e.value
      else
        flags[#flags + 1] = "-e"
        flags[#flags + 1] = e.name .. "=" .. e.value
      end
    end
  end
  return flags, secret_env
end

--- smolvm machine create. opts: from (artifact path), allow_cidrs, env.
function Driver:create(name, opts)
  self:detect()
  local args = { "machine", "create" }
  if self.named then
    args[#args + 1] = "--name"
  end
  args[#args + 1] = name
  if opts.from then
    args[#args + 1] = "--from"
    args[#args + 1] = opts.from
  elseif opts.image then
    args[#args + 1] = "--image"
    args[#args + 1] = opts.image
  end
  -- Labels (smolvm 1.8+) let `bottle ls` and `bottle cleanup` recognise
  -- their machines without relying on the name alone.
  if self.labels then
    for _, k in ipairs(sorted_keys(opts.labels)) do
      args[#args + 1] = "--label"
      args[#args + 1] = k .. "=" .. opts.labels[k]
    end
  end
  for _, cidr in ipairs(opts.allow_cidrs or {}) do
    args[#args + 1] = "--allow-cidr"
    args[#args + 1] = cidr
  end
  local flags = self:env_flags(opts.env, true)
  table.move(flags, 1, #flags, #args + 1, args)
  local r = self:run(args)
  if r.code ~= 0 then
    failed("machine create", r)
  end
end

local function simple(self, verb, name, extra)
  self:detect()
  local args = { "machine", verb }
  if verb ~= "delete" or self.named then
    args[#args + 1] = "--name"
  end
  args[#args + 1] = name
  for _, a in ipairs(extra or {}) do
    args[#args + 1] = a
  end
  local r = self:run(args)
  if r.code ~= 0 then
    failed("machine " .. verb, r)
  end
  return r
end

function Driver:start(name)
  return simple(self, "start", name)
end

function Driver:stop(name)
  return simple(self, "stop", name)
end

function Driver:delete(name)
  return simple(self, "delete", name, { "--force" })
end

--- smolvm machine exec. opts: env (entries), workdir, interactive (hand
--- over the terminal), tty, stdin (bytes), timeout_ms. Returns the result
--- (code is the command's exit code); raises only when smolvm cannot run.
function Driver:exec(name, argv, opts)
  self:detect()
  opts = opts or {}
  local args = { "machine", "exec", "--name", name }
  if opts.workdir then
    args[#args + 1] = "-w"
    args[#args + 1] = opts.workdir
  end
  if opts.interactive or opts.stdin then
    args[#args + 1] = "-i"
  end
  if opts.tty then
    args[#args + 1] = "-t"
  end
  local flags, secret_env = self:env_flags(opts.env)
  table.move(flags, 1, #flags, #args + 1, args)
  args[#args + 1] = "--"
  table.move(argv, 1, #argv, #args + 1, args)
  return self:run(args, { secret_env = secret_env, stdin = opts.stdin, interactive = opts.interactive,
    timeout_ms = opts.timeout_ms })
end

--- smolvm machine cp HOST NAME:GUEST.
function Driver:cp(name, host_path, guest_path)
  self:detect()
  local r = self:run({ "machine", "cp", host_path, name .. ":" .. guest_path })
  if r.code ~= 0 then
    failed("machine cp", r)
  end
end

--- smolvm machine ls --json -> list of machines (decoded).
function Driver:ls()
  local r = self:run({ "machine", "ls", "--json" })
  if r.code ~= 0 then
    failed("machine ls", r)
  end
  local ok, list = pcall(require("bottle.json").decode, r.stdout)
  if not ok or type(list) ~= "table" then
    errors.raise("smolvm machine ls --json: the output is not a JSON list", errors.tail(r.stdout))
  end
  if list.machines then
    list = list.machines
  end
  return list
end

--- smolvm pack create --from-vm NAME -o OUT: packs a stopped machine
--- (OUT.smolmachine is the artifact).
function Driver:pack_from_vm(name, out)
  local r = self:run({ "pack", "create", "--from-vm", name, "-o", out })
  if r.code ~= 0 then
    failed("pack create", r)
  end
end

return M
