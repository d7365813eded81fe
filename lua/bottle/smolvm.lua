--- The smolvm CLI, through rt.proc (docs/smolvm.md is the contract: every
--- command, flag, output and error text used here, cited from smolvm's
--- source).
--
-- The executable is BOTTLE_SMOLVM or `smolvm` on PATH. bottle needs smolvm
-- 1.8.0 or later (`--label`, read back by `machine ls --json`; everything
-- else it uses is older); an older one is refused with one message naming
-- both versions. The version is asked once per binary: the answer is
-- cached under ${XDG_CACHE_HOME:-~/.cache}/bottle/ keyed by the binary's
-- path, size and mtime.
--
-- Secret values (forwarded `${VAR}` values, answers to `?` prompts) are
-- never put on smolvm's argv and never given at create time (smolvm keeps
-- create-time env in its machine record and applies it to every exec).
-- Every exec passes them from smolvm's own environment with
-- `--secret-env NAME=BOTTLE_SECRET_NAME`, which smolvm resolves per exec and
-- never persists. Every function here raises on failure.
local fs = require("rt.fs")
local proc = require("rt.proc")
local errors = require("bottle.errors")
local json = require("bottle.json")
local paths = require("bottle.paths")
local ui = require("bottle.ui")

local M = {}

-- Versions found by this process, by executable (path, size, mtime): a
-- launch makes more than one driver and asks once.
local known = {}

--- The oldest smolvm bottle drives.
M.MIN_VERSION = { 1, 8, 0 }

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
  table.move(args, 1, #args, 2, argv)
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
      errors.raise(string.format("%s: not found. Install smolvm %s or later, point BOTTLE_SMOLVM at it, " ..
        "or run the agent in a container instead: bottle recipe run docker", self.exe,
        table.concat(M.MIN_VERSION, ".")), nil, code)
    end
    errors.raise(string.format("smolvm %s: %s", args[1] .. (args[2] and (" " .. args[2]) or ""), msg), nil, code)
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

--- "smolvm 1.9.3" (stdout of `smolvm --version`) -> { 1, 9, 3 }, or nil.
function M.parse_version(text)
  local a, b, c = tostring(text):match("^%s*smolvm%s+(%d+)%.(%d+)%.(%d+)")
  if not a then
    return nil
  end
  return { tonumber(a), tonumber(b), tonumber(c) }
end

local function older(v, min)
  for i = 1, 3 do
    if v[i] ~= min[i] then
      return v[i] < min[i]
    end
  end
  return false
end

-- The version cache: { [path] = { size, mtime, version } }, one small JSON
-- file. A damaged or unreadable cache is simply asked again.
local function cache_file(env)
  return paths.cache_dir(env) .. "/smolvm-version.json"
end

local function cached_version(env, path, st)
  local text = fs.read(cache_file(env))
  local ok, cache = pcall(json.decode, text or "")
  local hit = ok and type(cache) == "table" and cache[path]
  if type(hit) == "table" and hit.size == st.size and hit.mtime == st.mtime and type(hit.version) == "string" then
    return hit.version, cache
  end
  return nil, (ok and type(cache) == "table") and cache or {}
end

local function remember_version(env, cache, path, st, version)
  cache[path] = { size = st.size, mtime = st.mtime, version = version }
  local dir = paths.cache_dir(env)
  if fs.mkdir_p(dir, 448) then
    local tmp = cache_file(env) .. "." .. fs.random_hex(4)
    if fs.write(tmp, json.encode(cache) .. "\n", 384) then
      fs.rename(tmp, cache_file(env))
    end
    fs.rm_rf(tmp)
  end
end

--- Finds the binary and its version (once per binary, see the header);
--- refuses a smolvm older than MIN_VERSION. Returns the driver.
function Driver:detect()
  if self.version then
    return self
  end
  local path, err, code = proc.which(self.exe, self.host_env)
  if not path then
    if code == "ENOENT" then
      self:run({ "--version" }) -- raises the "not found" message with its advice
    end
    errors.raise(err, nil, code)
  end
  local real = fs.realpath(path)
  local st = real and fs.stat(real)
  local key = st and string.format("%s\0%d\0%d", path, st.size, st.mtime) or path
  local version, cache = known[key], nil
  if not version and st then
    version, cache = cached_version(self.host_env, path, st)
  end
  if not version then
    local r = self:run({ "--version" })
    if r.code ~= 0 then
      failed("--version", r)
    end
    local v = M.parse_version(r.stdout)
    if not v then
      errors.raise(string.format("%s --version printed %q, not `smolvm X.Y.Z`", path,
        errors.first_line(r.stdout)))
    end
    version = table.concat(v, ".")
    if st then
      remember_version(self.host_env, cache or {}, path, st, version)
    end
  end
  known[key] = version
  local v = M.parse_version("smolvm " .. version)
  if older(v, M.MIN_VERSION) then
    errors.raise(string.format("%s is smolvm %s; bottle needs smolvm %s or later (upgrade it, or run the agent " ..
      "in a container instead: bottle recipe run docker)", path, version, table.concat(M.MIN_VERSION, ".")))
  end
  self.version, self.path = version, path
  ui.trace("smolvm %s at %s", version, path)
  return self
end

--- Turns env entries { name, value, secret } into exec flags and the values
--- for smolvm's own environment. `persisted` (create) refuses secrets.
function Driver:env_flags(entries, persisted)
  local flags, secret_env = {}, {}
  for _, e in ipairs(entries or {}) do
    if e.value ~= nil then
      if e.secret then
        if persisted then
          errors.raise(string.format("%s is secret and smolvm would keep it in its machine record; " ..
            "pass it per exec", e.name))
        end
        local host_var = "BOTTLE_SECRET_" .. e.name
        flags[#flags + 1] = "--secret-env"
        flags[#flags + 1] = e.name .. "=" .. host_var
        secret_env[host_var] = e.value
      else
        flags[#flags + 1] = "-e"
        flags[#flags + 1] = e.name .. "=" .. e.value
      end
    end
  end
  return flags, secret_env
end

--- smolvm machine create --name NAME. opts: from (a .smolmachine) or image
--- (a `docker save` archive), sockets ({host, guest} for --mount-socket),
--- labels, env (non-secret entries only).
function Driver:create(name, opts)
  self:detect()
  local args = { "machine", "create", "--name", name }
  if opts.from then
    table.move({ "--from", opts.from }, 1, 2, #args + 1, args)
  elseif opts.image then
    table.move({ "--image", opts.image }, 1, 2, #args + 1, args)
  end
  for _, s in ipairs(opts.sockets or {}) do
    table.move({ "--mount-socket", s.host .. ":" .. s.guest }, 1, 2, #args + 1, args)
  end
  -- Labels let `bottle ls` and `bottle cleanup` recognise their machines.
  for _, k in ipairs(sorted_keys(opts.labels)) do
    table.move({ "--label", k .. "=" .. opts.labels[k] }, 1, 2, #args + 1, args)
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
  local args = { "machine", verb, "--name", name }
  table.move(extra or {}, 1, #(extra or {}), #args + 1, args)
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

--- Deletes a machine (smolvm stops a running one first).
function Driver:delete(name)
  return simple(self, "delete", name, { "--force" })
end

--- smolvm machine exec. opts: env (entries), workdir, interactive (hand
--- over the terminal), tty, stdin (bytes), timeout_ms, detach (-d: start
--- it in the background and return). Returns the result (code is the
--- command's exit code); raises only when smolvm cannot run.
function Driver:exec(name, argv, opts)
  self:detect()
  opts = opts or {}
  local args = { "machine", "exec", "--name", name }
  if opts.workdir then
    table.move({ "-w", opts.workdir }, 1, 2, #args + 1, args)
  end
  if opts.detach then
    args[#args + 1] = "-d"
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

--- True when an exec's result says the guest could not be reached, so the
--- command never ran: smolvm's two "agent operation failed: connect" errors
--- (the machine's agent did not answer its ping, or the connection to it
--- failed after retries; docs/smolvm.md). Anything else ran, or failed for
--- good, and is never tried again.
function M.unreachable(r)
  if r.code ~= 1 then
    return false
  end
  local err = "\n" .. (r.stderr or "")
  return err:find("\nError: agent operation failed: connect", 1, true) ~= nil
end

--- smolvm machine cp HOST NAME:GUEST.
function Driver:cp(name, host_path, guest_path)
  self:detect()
  local r = self:run({ "machine", "cp", host_path, name .. ":" .. guest_path })
  if r.code ~= 0 then
    failed("machine cp", r)
  end
end

--- smolvm machine ls --json -> list of machines { name, state, labels, ... }.
function Driver:ls()
  local r = self:run({ "machine", "ls", "--json" })
  if r.code ~= 0 then
    failed("machine ls", r)
  end
  local ok, list = pcall(json.decode, r.stdout)
  if not ok or type(list) ~= "table" then
    errors.raise("smolvm machine ls --json: the output is not a JSON list", errors.tail(r.stdout))
  end
  return list
end

return M
