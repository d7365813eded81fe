--- `bottle test`: scripted scenarios that drive a recipe against fake
--- docker and smolvm drivers (docs/recipes.md).
--
-- A scenario file registers cases with scenario(name, fn). fn gets `t`;
-- t:run{...} launches a recipe with the fakes in place and returns what
-- happened: the recorded calls in order, the exit code, the output, and
-- which resources are left. See docs/recipes.md for the full reference.
--
--   scenario("declining the prompt creates nothing", function(t)
--     local r = t:run{ args = {}, confirm = false }
--     r:exit(0)
--     r:lacks("docker network_create")
--   end)
local fs = require("rt.fs")
local host = require("rt.host")
local log = require("rt.log")
local A = require("bottle.testing.assert")
local fakes = require("bottle.testing.fakes")

local M = {}

-- Modules holding references to the primitives the fakes replace; they are
-- dropped from package.loaded around each run so they load against the fakes.
local FAKED = { "rt.docker", "rt.proc", "rt.net", "rt.ca", "rt.time" }
local KEEP = { ["bottle.errors"] = true, ["bottle.json"] = true, ["bottle.cli"] = true }

local function drop_bottle_modules()
  for name in pairs(package.loaded) do
    if (name:match("^bottle%.") and not KEEP[name] and not name:match("^bottle%.testing%."))
      or name:match("^recipes%.") then
      package.loaded[name] = nil
    end
  end
end

local function write_tree(root, files)
  for rel, text in pairs(files or {}) do
    local path = root .. "/" .. rel
    assert(fs.mkdir_p(path:match("^(.*)/"), 448))
    assert(fs.write(path, text, rel:match("%.sh$") and 493 or 384))
  end
end

-- The first difference between a plan and its snapshot, as "path: was
-- X, now Y", or nil when they are the same.
local function difference(now, was, path, seen)
  if type(now) ~= "table" or type(was) ~= "table" then
    if now ~= was then
      return string.format("%s: was %s, now %s", path, tostring(was), tostring(now))
    end
    return nil
  end
  seen = seen or {}
  if seen[now] then
    return nil
  end
  seen[now] = true
  for k, x in pairs(now) do
    local d = difference(x, was[k], path .. "." .. tostring(k), seen)
    if d then
      return d
    end
  end
  for k, x in pairs(was) do
    if now[k] == nil then
      return string.format("%s.%s: was %s, now removed", path, tostring(k), tostring(x))
    end
  end
  return nil
end

-- ---- results ---------------------------------------------------------------

local Result = {}
Result.__index = Result

--- Index of the first call whose text contains `text` (plain), at or
--- after `from`; nil when there is none.
function Result:find(text, from)
  for i = from or 1, #self.calls do
    if self.calls[i].text and self.calls[i].text:find(text, 1, true) then
      return i
    end
  end
  return nil
end

--- Every call whose text contains `text`.
function Result:all(text)
  local out = {}
  for _, c in ipairs(self.calls) do
    if c.text and c.text:find(text, 1, true) then
      out[#out + 1] = c
    end
  end
  return out
end

function Result:has(text)
  if not self:find(text) then
    error(string.format("no call contains %q; calls were:\n%s", text, self:listing()), 2)
  end
  return self.calls[self:find(text)]
end

function Result:lacks(text)
  local i = self:find(text)
  if i then
    error(string.format("call %d contains %q: %s", i, text, self.calls[i].text), 2)
  end
end

--- The calls containing each text appear in this order.
function Result:order(texts)
  local at = 0
  for _, text in ipairs(texts) do
    local i = self:find(text, at + 1)
    if not i then
      error(string.format("%q does not come after call %d; calls were:\n%s", text, at, self:listing()), 2)
    end
    at = i
  end
end

function Result:exit(code)
  if self.code ~= code then
    error(string.format("exit code %d, want %d; output:\n%s", self.code, code, self.output), 2)
  end
end

--- Nothing the launch created is left: every network, container and
--- machine created was removed (and machines stopped before deletion).
function Result:removed_all()
  local left = {}
  for name in pairs(self.rec.networks) do
    left[#left + 1] = "network " .. name
  end
  for _, c in pairs(self.rec.containers) do
    left[#left + 1] = "container " .. c.name
  end
  for name in pairs(self.rec.machines) do
    left[#left + 1] = "machine " .. name
  end
  for _, h in ipairs(self.rec.spawned) do
    if not h.stopped then
      left[#left + 1] = "a background program (bottle's relay)"
    end
  end
  if #left > 0 then
    table.sort(left)
    error("left behind: " .. table.concat(left, ", ") .. "\ncalls were:\n" .. self:listing(), 2)
  end
end

--- No secret value appears in any recorded argv or engine request, except
--- the env of a container-create or exec request body (how values reach the
--- bundle and the agent container without a command line).
function Result:no_secret(values)
  values = values or self.secrets
  local function scan(v, where)
    if type(v) == "table" then
      for k, x in pairs(v) do
        scan(k, where)
        scan(x, where)
      end
    elseif type(v) == "string" then
      for _, s in ipairs(values) do
        if v:find(s, 1, true) then
          error(string.format("secret %q found in %s", s, where), 3)
        end
      end
    end
  end
  for _, c in ipairs(self.calls) do
    if c.argv then
      scan(c.argv, "argv of call " .. c.index .. ": " .. (c.text or ""))
    end
    if c.args then
      local args = c.args
      local body = (c.op == "container_create" and 1) or (c.op == "exec" and 2) or nil
      if body and type(args[body]) == "table" then
        args = { table.unpack(c.args) }
        args[body] = {}
        for k, v in pairs(c.args[body]) do
          if k ~= "env" then
            args[body][k] = v
          end
        end
      end
      scan(args, "arguments of call " .. c.index .. ": " .. (c.text or ""))
    end
  end
  scan(self.output, "the output")
  scan(self.stdout, "stdout")
end

function Result:listing()
  local lines = {}
  for i, c in ipairs(self.calls) do
    lines[#lines + 1] = string.format("  %3d%s %s", i, c.n and ("#" .. c.n) or "  ", c.text or c.kind)
  end
  return table.concat(lines, "\n")
end

-- ---- running -----------------------------------------------------------

local T = {}
T.__index = T
for k, v in pairs(A) do
  T[k] = function(_, ...)
    return v(...)
  end
end

local function secrets_of(spec)
  local out = {}
  for _, v in pairs(spec.env or {}) do
    if #v >= 6 then
      out[#out + 1] = v
    end
  end
  for _, v in pairs(spec.answers or {}) do
    out[#out + 1] = v
  end
  for _, v in ipairs(spec.secrets or {}) do
    out[#out + 1] = v
  end
  return out
end

-- The fields t:run accepts; anything else is a misspelling and raises.
local SPEC_FIELDS = {
  recipe = "string", args = "table", files = "table", home = "table", lua = "table", env = "table",
  answers = "table", confirm = "boolean", tty = "boolean", user_recipes = "boolean", docker = "table",
  smolvm = "table", net = "table", exec = "function", agent_exit = "number", fail = "number|table",
  signal = "table", delay = "table", secrets = "table", uid = "number",
}

local function check_spec(spec)
  if type(spec) ~= "table" then
    error(string.format("t:run: expected a table, got %s", type(spec)), 3)
  end
  local names = {}
  for k in pairs(SPEC_FIELDS) do
    names[#names + 1] = k
  end
  table.sort(names)
  for k, v in pairs(spec) do
    local want = SPEC_FIELDS[k]
    if not want then
      local hint = require("bottle.schema").suggest(tostring(k), names)
      error(string.format("t:run: unknown field '%s'%s (fields: %s)", tostring(k),
        hint and (" (did you mean '" .. hint .. "'?)") or "", table.concat(names, ", ")), 3)
    end
    if not ("|" .. want .. "|"):find("|" .. type(v) .. "|", 1, true) then
      error(string.format("t:run: field '%s' must be a %s, got %s%s", k, want:gsub("|", " or "), type(v),
        k == "confirm" and " (true launches, false declines)" or ""), 3)
    end
  end
end

-- Puts the fakes in place of the primitives; returns the function that
-- puts everything back.
local function install_fakes(spec, rec, env)
  local saved = {}
  for _, name in ipairs(FAKED) do
    saved[name] = package.loaded[name]
  end
  package.loaded["rt.docker"] = fakes.docker(rec)
  package.loaded["rt.proc"] = fakes.proc(rec, env.BOTTLE_SMOLVM, env)
  package.loaded["rt.net"] = fakes.net(rec)
  package.loaded["rt.ca"] = fakes.ca(rec)
  package.loaded["rt.time"] = fakes.time(rec)
  drop_bottle_modules()
  host.reset_signal()
  local had_user_roots = host.user_roots(spec.user_recipes == true)
  return function()
    host.user_roots(had_user_roots)
    for _, name in ipairs(FAKED) do
      package.loaded[name] = saved[name]
    end
    drop_bottle_modules()
    host.reset_signal()
  end
end

-- Captures stdout and the log; returns the function that stops and gives
-- back (log text, stdout text).
local function capture_output()
  local out = {}
  local real_stdout = io.stdout
  local capture = {}
  function capture.write(file, ...)
    for _, s in ipairs({ ... }) do
      out[#out + 1] = tostring(s)
    end
    return file
  end
  function capture.flush() end
  io.stdout = capture -- luacheck: ignore 122
  log.capture(true)
  return function()
    local output = log.capture(false)
    io.stdout = real_stdout -- luacheck: ignore 122
    return output, table.concat(out)
  end
end

-- Every plan the run builds is checked afterwards: the launch writes to its
-- launch record, never to the plan (docs/api.md). Returns the check.
local function watch_plans()
  local built = {}
  local plan_mod = require("bottle.plan")
  local build = plan_mod.build
  plan_mod.build = function(...)
    local p = build(...)
    built[#built + 1] = { plan = p, copy = fakes.copy(p) }
    return p
  end
  return function()
    for _, b in ipairs(built) do
      local d = difference(b.plan, b.copy, "plan")
      if d then
        error("the launch changed its plan after plan.build: " .. d, 0)
      end
    end
  end
end

-- Runs the recipe as `bottle recipe run` would, with the scenario's
-- answers to every question. Returns the exit code and message.
local function launch(spec, env, home)
  local cli = require("bottle.cli")
  local recipes = require("bottle.recipes")
  local runner = require("bottle.runner")
  local opts, pos, rest = cli.parse_run_args(spec.args or { "--yes" })
  if not opts then
    error("scenario args: " .. pos, 0)
  end
  local recipe, origin = recipes.load(spec.recipe or pos[1] or "smolmachines")
  local ctx = runner.context({ name = spec.recipe or pos[1] or "smolmachines", origin = origin, args = rest,
    opts = opts, env = env })
  ctx.cwd = home
  ctx.ask_secret = function(_, name)
    if spec.tty == false then
      -- what rt.term.ask_secret reports without a terminal
      require("bottle.errors").raise("cannot ask for a value: no terminal")
    end
    return spec.answers and spec.answers[name]
  end
  ctx.confirm = function()
    return spec.confirm ~= false
  end
  ctx.interactive = function()
    return spec.tty ~= false
  end
  return runner.run(recipe, ctx)
end

-- The number of the last engine/VM call before the agent ran.
local function count_launch_calls(calls)
  local n = 0
  for _, c in ipairs(calls) do
    if c.agent then
      break
    end
    n = c.n or n
  end
  return n
end

--- Runs a recipe with the fakes. spec fields (all optional):
---   recipe    recipe name or path (default: the one in args, else smolmachines)
---   args      `recipe run` words, e.g. {"--bottle", "work", "--yes", "--", "sh"}
---   files     config dir files: { ["bottles/work.md"] = "..." }
---   home      files under HOME: { [".claude/skills/pdf/SKILL.md"] = "..." }
---   lua       files of an extra search root: { ["recipes/steps/ca.lua"] = "..." }
---   env       host environment additions (a leading ~/ is the scenario's HOME)
---   answers   values for `?` prompts, by variable name
---   confirm   answer to `launch this agent?` (boolean; default true) when args lack --yes
---   tty       false: no terminal (confirming and asking fail as they would)
---   user_recipes  true: also search the user's own recipe dirs (~/.config/bottle,
---             BOTTLE_PATH); by default a scenario sees only the built-ins, `lua`
---             and `--lua-dir`, so an ejected recipe cannot change what it tests
---   secrets   further values that must appear nowhere
---   docker, smolvm, net, exec, agent_exit, fail, signal, delay: see fakes.lua
---   uid       the uid bottle runs as (default 1000; 0 is a root launch)
--- An unknown field or a field of the wrong type raises.
function T:run(spec)
  spec = spec or {}
  check_spec(spec)
  local home = assert(fs.tmpdir("bottle-scenario"))
  write_tree(home .. "/.config/bottle", spec.files)
  write_tree(home, spec.home)
  local root
  if spec.lua then
    root = home .. "/lua-root"
    write_tree(root, spec.lua)
    host.push_root(root)
  end
  local env = { HOME = home, PATH = os.getenv("PATH"), BOTTLE_SMOLVM = "smolvm" }
  for k, v in pairs(spec.env or {}) do
    env[k] = v:gsub("^~/", home .. "/")
  end
  local rec = fakes.recorder({
    docker = spec.docker, smolvm = spec.smolvm, net = spec.net, exec = spec.exec, agent_exit = spec.agent_exit,
    fail = spec.fail, signal = spec.signal, delay = spec.delay, uid = spec.uid,
  })

  local restore = install_fakes(spec, rec, env)
  local stop_capture = capture_output()
  local check_plans = watch_plans()
  local code, message
  local ok, err = pcall(function()
    code, message = launch(spec, env, home)
  end)
  local output, stdout = stop_capture()
  restore()
  if root then
    host.pop_root()
  end
  local state_dirs = fs.list(home .. "/.local/state/bottle") or {}
  local cached = fs.list(home .. "/.cache/bottle/smolmachines") or {}
  fs.rm_rf(home)
  if not ok then
    error(err, 0)
  end
  check_plans()

  return setmetatable({
    rec = rec,
    calls = rec.calls,
    code = code,
    message = message,
    output = output,
    stdout = stdout,
    state_dirs = state_dirs,
    cached = cached,
    launch_calls = count_launch_calls(rec.calls),
    sleeps = rec.sleeps,
    secrets = secrets_of(spec),
    home = home,
  }, Result)
end

-- ---- the runner --------------------------------------------------------

local function scenario_files(paths)
  local files = {}
  for _, p in ipairs(paths) do
    local st = fs.stat(p)
    if st and st.type == "dir" then
      for _, name in ipairs(fs.list(p)) do
        if name:match("%.lua$") then
          files[#files + 1] = p .. "/" .. name
        end
      end
    else
      files[#files + 1] = p
    end
  end
  return files
end

---@param paths string[] scenario files or directories
---@return integer exit code
function M.main(paths)
  if #paths == 0 then
    io.stderr:write("bottle test: give scenario files or directories (see docs/recipes.md)\n")
    return 2
  end
  local passed, failed, skipped = 0, 0, 0
  for _, file in ipairs(scenario_files(paths)) do
    local cases = {}
    local env = require("bottle.recipes").new_env()
    env.scenario = function(name, fn)
      cases[#cases + 1] = { name = name, fn = fn }
    end
    local src, rerr = fs.read(file)
    local chunk, lerr
    if src then
      chunk, lerr = load(src, "@" .. file, "t", env)
    end
    local ok, perr = chunk ~= nil, lerr or rerr
    if chunk then
      ok, perr = pcall(chunk)
    end
    if not ok then
      failed = failed + 1
      print(string.format("not ok - %s: %s", file, tostring(perr)))
    end
    local short = file:match("[^/]+$")
    for _, case in ipairs(cases) do
      local t = setmetatable({ name = case.name }, T)
      local cok, cerr = xpcall(case.fn, function(e)
        if A.is_skip(e) then
          return e
        end
        return debug.traceback(tostring(e), 2)
      end, t)
      if cok then
        passed = passed + 1
        print(string.format("ok - %s: %s", short, case.name))
      elseif A.is_skip(cerr) then
        skipped = skipped + 1
        print(string.format("skip - %s: %s: %s", short, case.name, cerr.reason))
      else
        failed = failed + 1
        print(string.format("not ok - %s: %s", short, case.name))
        for line in tostring(cerr):gmatch("[^\n]+") do
          print("#   " .. line)
        end
      end
      io.stdout:flush()
    end
  end
  print(string.format("%d passed, %d failed%s", passed, failed,
    skipped > 0 and string.format(", %d skipped", skipped) or ""))
  return failed > 0 and 1 or 0
end

return M
