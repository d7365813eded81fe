-- Recipe loading: search order, the recipe contract, which/show/eject/list.
local proc = require("rt.proc")
local fs = require("rt.fs")
local A = require("bottle.testing.assert")

local bin = os.getenv("BOTTLE_BIN")

-- Runs bottle with a private config home; returns the result.
local function bottle(home, args, cwd_dir)
  local argv = { bin }
  for _, a in ipairs(args) do
    argv[#argv + 1] = a
  end
  local env = { HOME = home, XDG_CONFIG_HOME = home .. "/config", PATH = os.getenv("PATH") }
  if cwd_dir then
    -- run from another directory through sh (rt.proc has no cwd option)
    local quoted = {}
    for i, a in ipairs(argv) do
      quoted[i] = "'" .. a:gsub("'", "'\\''") .. "'"
    end
    return assert(proc.run({ argv = { "sh", "-c", "cd '" .. cwd_dir .. "' && exec " .. table.concat(quoted, " ") },
      env = env }))
  end
  return assert(proc.run({ argv = argv, env = env }))
end

local function recipe_src(text, code)
  return string.format('return { description = "%s", run = function(ctx) print("%s") return %d end }\n',
    text, text, code or 0)
end

local function with_home(fn)
  local home = assert(fs.tmpdir("bottle-home"))
  local ok, err = pcall(fn, home)
  fs.rm_rf(home)
  if not ok then
    error(err, 0)
  end
end

test("a user recipe runs and its return value is the exit code", function()
  with_home(function(home)
    fs.mkdir_p(home .. "/config/bottle/recipes")
    fs.write(home .. "/config/bottle/recipes/hello.lua", recipe_src("from user dir", 3))
    local r = bottle(home, { "recipe", "run", "hello" })
    A.eq(r.code, 3)
    A.eq(r.stdout, "from user dir\n")
  end)
end)

test("--lua-dir and BOTTLE_PATH beat the user dir; the cwd is never searched", function()
  with_home(function(home)
    fs.mkdir_p(home .. "/config/bottle/recipes")
    fs.mkdir_p(home .. "/ld/recipes")
    fs.mkdir_p(home .. "/cwd/recipes")
    fs.write(home .. "/config/bottle/recipes/hello.lua", recipe_src("user"))
    fs.write(home .. "/ld/recipes/hello.lua", recipe_src("lua-dir"))
    fs.write(home .. "/cwd/hello.lua", recipe_src("cwd"))
    fs.write(home .. "/cwd/recipes/hello.lua", recipe_src("cwd"))
    A.eq(bottle(home, { "--lua-dir", home .. "/ld", "recipe", "run", "hello" }).stdout, "lua-dir\n")
    A.eq(bottle(home, { "recipe", "run", "hello" }, home .. "/cwd").stdout, "user\n")
    A.eq(bottle(home, { "recipe", "which", "hello" }, home .. "/cwd").stdout,
      home .. "/config/bottle/recipes/hello.lua\n")
    local r = bottle(home, { "--lua-dir=" .. home .. "/ld", "recipe", "which", "hello" })
    A.eq(r.stdout, home .. "/ld/recipes/hello.lua\n")
    -- global options may also follow the command
    r = bottle(home, { "recipe", "which", "--lua-dir", home .. "/ld", "hello" })
    A.eq(r.stdout, home .. "/ld/recipes/hello.lua\n")
  end)
end)

test("a module override in the user dir replaces the built-in module", function()
  with_home(function(home)
    local r = bottle(home, { "recipe", "which", "bottle.errors" })
    A.eq(r.stdout, "builtin:lua/bottle/errors.lua\n")
    r = bottle(home, { "recipe", "eject", "bottle.errors" })
    A.eq(r.code, 0)
    local path = home .. "/config/bottle/lua/bottle/errors.lua"
    A.eq(r.stdout, path .. "\n")
    A.eq(bottle(home, { "recipe", "which", "bottle.errors" }).stdout, path .. "\n")
    -- eject again refuses without --force
    r = bottle(home, { "recipe", "eject", "bottle.errors" })
    A.eq(r.code, 1)
    A.contains(r.stderr, "already exists; use --force")
    A.eq(bottle(home, { "recipe", "eject", "--force", "bottle.errors" }).code, 0)
  end)
end)

-- Acceptance: eject the main recipe, edit it, and the edit is what runs;
-- --lua-dir still wins; a smolmachines.lua in the cwd is ignored.
test("an ejected and edited smolmachines is the one that runs", function()
  with_home(function(home)
    local r = bottle(home, { "recipe", "eject", "smolmachines" })
    local path = home .. "/config/bottle/recipes/smolmachines.lua"
    A.eq(r.code, 0)
    A.eq(r.stdout, path .. "\n")
    A.eq(bottle(home, { "recipe", "which", "smolmachines" }).stdout, path .. "\n")
    local src = assert(fs.read(path))
    local edited = src:gsub("run = function%(ctx%)", 'run = function(ctx)\n    print("edited copy") do return 5 end', 1)
    A.neq(edited, src)
    assert(fs.write(path, edited))
    r = bottle(home, { "recipe", "run", "smolmachines" })
    A.eq(r.code, 5)
    A.eq(r.stdout, "edited copy\n")
    -- the default recipe is the edited one too
    A.eq(bottle(home, { "recipe", "run" }).stdout, "edited copy\n")
    fs.mkdir_p(home .. "/ld/recipes")
    fs.write(home .. "/ld/recipes/smolmachines.lua", recipe_src("from lua-dir", 0))
    A.eq(bottle(home, { "--lua-dir", home .. "/ld", "recipe", "run", "smolmachines" }).stdout, "from lua-dir\n")
    fs.mkdir_p(home .. "/cwd")
    fs.write(home .. "/cwd/smolmachines.lua", recipe_src("from cwd", 0))
    A.eq(bottle(home, { "recipe", "run", "smolmachines" }, home .. "/cwd").stdout, "edited copy\n")
  end)
end)

test("the recipe contract is checked and what is missing is named", function()
  with_home(function(home)
    fs.mkdir_p(home .. "/config/bottle/recipes")
    fs.write(home .. "/config/bottle/recipes/bad.lua", "return { run = 42 }\n")
    local r = bottle(home, { "recipe", "run", "bad" })
    A.eq(r.code, 1)
    A.contains(r.stderr, "missing description (a string) and run (a function run(ctx))")
    r = bottle(home, { "recipe", "run", "nonexistent" })
    A.eq(r.code, 1)
    A.contains(r.stderr, "no recipe or module named 'nonexistent'")
  end)
end)

test("recipes run in their own environment", function()
  with_home(function(home)
    fs.mkdir_p(home .. "/config/bottle/recipes")
    fs.write(home .. "/config/bottle/recipes/g.lua", [[
leaked_global = "x"
return { description = "g", run = function(ctx)
  print(rawget(_G, "leaked_global"), require("bottle.errors").leaked_global)
end }
]])
    A.eq(bottle(home, { "recipe", "run", "g" }).stdout, "x\tnil\n")
  end)
end)

test("a path to a .lua file runs that file", function()
  with_home(function(home)
    fs.write(home .. "/my.lua", recipe_src("by path", 0))
    A.eq(bottle(home, { "recipe", "run", home .. "/my.lua" }).stdout, "by path\n")
  end)
end)

test("recipe list shows where each recipe comes from", function()
  with_home(function(home)
    fs.mkdir_p(home .. "/config/bottle/recipes/steps")
    fs.write(home .. "/config/bottle/recipes/hello.lua", recipe_src("x"))
    fs.write(home .. "/config/bottle/recipes/steps/extra.lua", "return { run = function() end }\n")
    local r = bottle(home, { "recipe", "list" })
    A.eq(r.code, 0)
    A.match(r.stdout, "hello%s+" .. home:gsub("%p", "%%%0") .. "/config/bottle/recipes/hello.lua")
    A.match(r.stdout, "steps/extra%s+")
  end)
end)

test("usage errors exit 2, help exits 0 and acts on nothing", function()
  with_home(function(home)
    A.eq(bottle(home, { "frobnicate" }).code, 2)
    A.eq(bottle(home, { "recipe", "run", "--bogus" }).code, 2)
    A.eq(bottle(home, { "help" }).code, 0)
    A.eq(bottle(home, { "recipe", "--help" }).code, 0)
    local r = bottle(home, { "recipe", "eject", "bottle.errors", "--help" })
    A.eq(r.code, 0)
    A.falsy(fs.exists(home .. "/config/bottle/lua/bottle/errors.lua"), "--help must not act")
    A.contains(bottle(home, { "help", "recipe", "run" }).stdout, "--dry-run")
    A.eq(bottle(home, { "version" }).code, 0)
  end)
end)
