--- The backend seam: what a backend implements so a recipe can run the
--- agent in it.
--
-- A backend is one module, `bottle.target.<name>` (lua/bottle/target/
-- <name>.lua), returned through target.define. It has module functions,
-- called before and after any launch, and a target class, whose objects
-- stand for one launch's guest:
--
--   module (M)                       when
--   M.name                           the backend's name ("smolmachines")
--   M.plan(plan, ctx) -> table       planning: the backend's own part of the
--                                    plan (pure; may raise on bad input)
--   M.check(ctx, plan)               before asking anything: executables,
--                                    versions, images (creates nothing)
--   M.new(ctx, plan, rec) -> target  the guest of one launch (not created yet)
--   M.inventory(env) -> items, err   ls / cleanup: guests bottle made,
--                                    { slug, name, state, kind }
--   M.remove(env, item) -> ok, err   cleanup: remove one leftover guest
--
--   target object (T)
--   T:create()                       create and start the guest; register
--                                    its removal on ctx.scope at once
--   T:exec(argv, opts) -> result     one command: {code, stdout, stderr};
--                                    opts: user, stdin, timeout_ms, workdir
--   T:put(host_path, guest_path)     copy one host file in (root-owned)
--   T:run_agent(argv) -> code        the agent, interactively, as node
--
-- Every target gets these from the base (a backend may override them):
-- T:run and T:must (exec with the backend's retry rule; must raises),
-- T:put_text, T:put_archive, T:put_dir, T:settle and T:env_for. Names and labels come
-- from bottle.names. docs/recipes.md walks through writing a backend.
local fs = require("rt.fs")
local host = require("rt.host")
local time = require("rt.time")
local errors = require("bottle.errors")

local M = {}

M.MODULE_FIELDS = { name = "string", plan = "function", check = "function", new = "function",
  inventory = "function", remove = "function" }
M.METHODS = { "create", "exec", "put", "run_agent" }

--- Delays between settle polls, in ms; their sum bounds the wait.
M.SETTLE_DELAYS = { 25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800 }

local HOMES = { node = "/home/node", root = "/root" }

local Base = {}

--- The guest env for an exec as `user`: the launch record's resolved
--- entries {name, value, secret}, plus HOME and USER for a non-root user.
---@param user? string
---@return table[] entries
function Base:env_for(user)
  local out = {}
  for _, e in ipairs(self.rec.guest_env) do
    out[#out + 1] = e
  end
  if user and user ~= "root" then
    out[#out + 1] = { name = "HOME", value = HOMES[user] or ("/home/" .. user) }
    out[#out + 1] = { name = "USER", value = user }
  end
  return out
end

--- Whether a failed exec result means the guest was not reachable yet (the
--- command did not run), so it may be tried again. Backends override it;
--- by default nothing is retried.
---@return boolean
function Base:unreachable(_)
  return false
end

--- One command, tried again only while the backend reports the guest not
--- reachable (a command that ran is never run twice).
---@return table result {code, stdout, stderr}
function Base:run(argv, opts)
  local r = self:exec(argv, opts)
  local i = 0
  while self:unreachable(r) and i < #M.SETTLE_DELAYS and not (opts and opts.retry == false) do
    i = i + 1
    time.sleep_ms(M.SETTLE_DELAYS[i])
    r = self:exec(argv, opts)
  end
  return r
end

--- Like run, but a non-zero exit raises "<what>: `cmd` exited N: <stderr>".
---@param what string names the step for the message
function Base:must(what, argv, opts)
  local r = self:run(argv, opts)
  if r.code ~= 0 then
    local out = (r.stderr ~= "" and r.stderr) or r.stdout
    local shown = table.concat(argv, " ", 1, math.min(#argv, 4)) .. (#argv > 4 and " ..." or "")
    errors.raise(string.format("%s`%s` exited %d%s", what ~= argv[1] and (what .. ": ") or "", shown, r.code,
      out ~= "" and (": " .. errors.first_line(errors.tail(out, 1))) or ""), errors.tail(out))
  end
  return r
end

--- Proves the guest answers: one trivial exec, retried (short growing
--- delays, bounded) only while the guest is not reachable yet.
---@return table result
function Base:settle()
  return self:must("settle", { "true" })
end

-- A private file in the state dir, removed after fn(path) whatever happens.
local function with_upload(self, suffix, write, fn)
  local tmp = self.plan.state.dir .. "/upload-" .. fs.random_hex(4) .. suffix
  local ok, err = pcall(function()
    write(tmp)
    fn(tmp)
  end)
  fs.rm_rf(tmp)
  if not ok then
    error(err, 0)
  end
end

--- Writes text to a guest file (root-owned; chown afterwards).
function Base:put_text(text, guest_path)
  with_upload(self, "", function(tmp)
    errors.must(fs.write(tmp, text, 384))
  end, function(tmp)
    self:put(tmp, guest_path)
  end)
end

--- Unpacks a ustar archive (bytes, from bottle.tar) at the guest's `/` as
--- root, so entries keep their owners and modes. The default copies the
--- archive in with put and unpacks it with one exec; a backend that can
--- feed an exec's stdin does it in one round trip.
---@param bytes string
---@param what string names the step for an error
function Base:put_archive(bytes, what)
  with_upload(self, ".tar", function(tmp)
    errors.must(fs.write(tmp, bytes, 384))
  end, function(tmp)
    local guest_tar = "/tmp/bottle-upload-" .. fs.random_hex(4) .. ".tar"
    self:put(tmp, guest_tar)
    self:must(what, { "sh", "-c", 'tar -xf "$1" -C / && rm -f "$1"', "sh", guest_tar })
  end)
end

--- Copies a host directory into guest_dir (replacing nothing; the caller
--- removes an old copy first). meta: owner of every entry (uid, gid,
--- uname, gname).
function Base:put_dir(host_dir, guest_dir, meta)
  local w = require("bottle.tar").writer()
  w:tree(host_dir, guest_dir, meta)
  self:put_archive(w:finish(), "unpack " .. guest_dir)
end

--- A target class for a backend: objects get the base methods unless the
--- class defines its own.
---@return table class
function M.class()
  local class = setmetatable({}, { __index = Base })
  class.__index = class
  return class
end

--- Checks a backend module's fields and its class's methods, naming what is
--- missing; returns the module.
---@param mod table
---@param origin? string where it was loaded from, for the message
function M.define(mod, origin)
  local missing = {}
  for field, kind in pairs(M.MODULE_FIELDS) do
    if type(mod[field]) ~= kind then
      missing[#missing + 1] = field .. " (" .. kind .. ")"
    end
  end
  local class = mod.class
  if type(class) ~= "table" then
    missing[#missing + 1] = "class (from target.class())"
  else
    for _, m in ipairs(M.METHODS) do
      if type(class[m]) ~= "function" then
        missing[#missing + 1] = "class:" .. m
      end
    end
  end
  if #missing > 0 then
    table.sort(missing)
    errors.raise(string.format("backend %s: missing %s", origin or tostring(mod.name),
      table.concat(missing, ", ")))
  end
  return mod
end

--- The backend module for a name (bottle.target.<name>).
---@param name string
---@return table backend
function M.load(name)
  if type(name) ~= "string" or not name:match("^[%w_-]+$") then
    errors.raise(string.format("no backend named %s", tostring(name)))
  end
  local mod = "bottle.target." .. name
  if not host.locate(mod) then
    errors.raise(string.format("no backend named '%s' (looked for the module %s)", name, mod))
  end
  return require(mod)
end

--- Every backend bottle can find (built in, or in a search root), by name.
---@return string[] names
function M.names()
  local seen, out = {}, {}
  local function add(name)
    if not seen[name] then
      seen[name] = true
      out[#out + 1] = name
    end
  end
  for _, r in ipairs(host.roots()) do
    for _, f in ipairs(fs.list(r.dir .. "/lua/bottle/target") or {}) do
      local n = f:match("^([%w_-]+)%.lua$")
      if n then
        add(n)
      end
    end
  end
  for _, tree in ipairs(host.builtins()) do
    local n = tree:match("^lua/bottle/target/([%w_-]+)%.lua$")
    if n then
      add(n)
    end
  end
  table.sort(out)
  return out
end

return M
