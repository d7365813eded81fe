--- Finding, loading and ejecting recipes and modules.
--
-- A recipe is a Lua file under recipes/ that returns
--   { description = "...", run = function(ctx) ... end }
-- It is loaded in its own environment (its globals do not leak into
-- bottle's) and its fields are checked after loading. The search order is
-- rt.host's: --lua-dir and BOTTLE_PATH, the user dir, the share dir, then
-- the copy built into the binary.
local host = require("rt.host")
local fs = require("rt.fs")
local proc = require("rt.proc")
local errors = require("bottle.errors")

local M = {}

--- A fresh environment for a recipe or step: reads fall through to the
--- globals, writes stay local, and print() is redacted like every log.
---@return table
function M.new_env()
  local env = {}
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do
      parts[i] = tostring(parts[i])
    end
    io.stdout:write(proc.redact(table.concat(parts, "\t", 1, parts.n)), "\n")
  end
  env._G = env
  return setmetatable(env, { __index = _G })
end

--- The module names a user may mean by NAME: `smolmachines` is the recipe
--- recipes.smolmachines, `steps/ca` is recipes.steps.ca, a dotted name is
--- taken as is, and a bare name that is no recipe may be a bottle module.
---@param name string
---@return string[]
function M.candidates(name)
  if name:find("%.") and not name:find("/") then
    return { name }
  end
  local dotted = name:gsub("%.lua$", ""):gsub("/", ".")
  return { "recipes." .. dotted, "bottle." .. dotted }
end

--- Where a recipe or module loads from.
---@param name string NAME or MODULE
---@return table|nil where {module=, path=, kind=, builtin=, tree=}
---@return string|nil err
function M.locate(name)
  for _, mod in ipairs(M.candidates(name)) do
    local where = host.locate(mod)
    if where then
      where.module = mod
      return where
    end
  end
  return nil, string.format("no recipe or module named '%s'", name)
end

local function is_path(name)
  return name:find("/") ~= nil and name:match("%.lua$") ~= nil
end

--- Checks a loaded recipe table and names what is missing.
local function check_recipe(recipe, origin)
  if type(recipe) ~= "table" then
    errors.raise(string.format("recipe %s: must return a table with description and run (got %s)",
      origin, type(recipe)))
  end
  local missing = {}
  if type(recipe.description) ~= "string" then
    missing[#missing + 1] = "description (a string)"
  end
  if type(recipe.run) ~= "function" then
    missing[#missing + 1] = "run (a function run(ctx))"
  end
  if #missing > 0 then
    errors.raise(string.format("recipe %s: missing %s", origin, table.concat(missing, " and ")))
  end
  return recipe
end

--- Loads a recipe by name, module name, or path to a .lua file.
---@param name string
---@return table recipe
---@return string origin where it came from (a path or builtin/<path>)
function M.load(name)
  local env = M.new_env()
  local chunk, origin
  if is_path(name) or (name:match("%.lua$") and fs.exists(name)) then
    local src, err = fs.read(name)
    if not src then
      errors.raise("recipe " .. err)
    end
    local why
    chunk, why = load(src, "@" .. name, "t", env)
    if not chunk then
      errors.raise("recipe " .. why)
    end
    origin = name
  else
    local where, err = M.locate(name)
    if not where or not where.module:match("^recipes%.") then
      errors.raise(err or string.format("'%s' is a module, not a recipe", name))
    end
    chunk, origin = host.load(where.module, env)
    if not chunk then
      errors.raise(origin)
    end
  end
  local ok, recipe = pcall(chunk)
  if not ok then
    errors.raise(string.format("recipe %s failed to load: %s", origin, tostring(recipe)))
  end
  return check_recipe(recipe, origin), origin
end

--- Loads a step file (recipes/steps/<name>.lua) the same way: own
--- environment, must return a table with a run function.
---@param name string
---@return table step
function M.load_step(name)
  local env = M.new_env()
  local chunk, origin = host.load("recipes.steps." .. name, env)
  if not chunk then
    errors.raise(string.format("no provisioning step named '%s'", name))
  end
  local ok, step = pcall(chunk)
  if not ok then
    errors.raise(string.format("step %s failed to load: %s", origin, tostring(step)))
  end
  if type(step) ~= "table" or (type(step.run) ~= "function" and type(step.prepare) ~= "function") then
    errors.raise(string.format("step %s: must return a table with prepare (a function prepare(ctx, plan, " ..
      "batch)) or run (a function run(ctx, plan, target))", origin))
  end
  step.origin = origin
  return step
end

--- The user dir root (where eject writes).
---@return string
function M.user_root()
  for _, r in ipairs(host.roots()) do
    if r.kind == "user" then
      return r.dir
    end
  end
  errors.raise("cannot find the user config dir (set HOME or XDG_CONFIG_HOME)")
end

--- Every recipe (and step) visible, with the origin that wins.
---@return table[] list of {name=, tree=, kind=, path=, overrides=bool}
function M.list()
  local found, order = {}, {}
  local function add(name, tree, kind, path)
    if found[name] then
      if kind == "builtin" then
        found[name].overrides = true
      end
      return
    end
    found[name] = { name = name, tree = tree, kind = kind, path = path }
    order[#order + 1] = name
  end
  local function scan(dir, prefix, kind)
    local names = fs.list(dir)
    for _, f in ipairs(names or {}) do
      local base = f:match("^(.-)%.lua$")
      if base then
        add(prefix .. base, "recipes/" .. prefix .. f, kind, dir .. "/" .. f)
      end
    end
  end
  for _, r in ipairs(host.roots()) do
    scan(r.dir .. "/recipes", "", r.kind)
    scan(r.dir .. "/recipes/steps", "steps/", r.kind)
  end
  for _, tree in ipairs(host.builtins()) do
    local rel = tree:match("^recipes/(.-)%.lua$")
    if rel then
      add(rel, tree, "builtin", "builtin/" .. tree)
    end
  end
  table.sort(order, function(a, b)
    local sa, sb = a:find("/") ~= nil, b:find("/") ~= nil
    if sa ~= sb then
      return sb
    end
    return a < b
  end)
  local out = {}
  for _, name in ipairs(order) do
    out[#out + 1] = found[name]
  end
  return out
end

--- The source text of a recipe or module, and where it came from.
---@param name string
---@return string source
---@return table where
function M.source(name)
  local where, err = M.locate(name)
  if not where then
    errors.raise(err)
  end
  if where.builtin then
    return host.builtin_source(where.path), where
  end
  local src, rerr = fs.read(where.path)
  if not src then
    errors.raise(rerr)
  end
  return src, where
end

--- Writes the built-in source of NAME into the user dir, where it then
--- overrides the built-in. Refuses to replace an existing file unless
--- force.
---@param name string
---@param force boolean
---@return string path written
function M.eject(name, force)
  local tree
  for _, mod in ipairs(M.candidates(name)) do
    local t = host.tree_path(mod)
    if t and host.builtin_source(t) then
      tree = t
      break
    end
  end
  if not tree then
    errors.raise(string.format("no built-in recipe or module named '%s' (see: bottle recipe list)", name))
  end
  local target = M.user_root() .. "/" .. tree
  if fs.exists(target) and not force then
    errors.raise(string.format("%s already exists; use --force to replace it", target))
  end
  local dir = target:match("^(.*)/[^/]+$")
  local ok, err = fs.mkdir_p(dir, 493) -- 0755
  if not ok then
    errors.raise(err)
  end
  ok, err = fs.write(target, host.builtin_source(tree), 420) -- 0644
  if not ok then
    errors.raise(err)
  end
  return target
end

return M
