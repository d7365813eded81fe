-- Careless and hostile input at the command line: runs the bottle binary
-- (BOTTLE_BIN) in a scratch HOME under a timeout and checks exit codes and
-- messages.
local fs = require("rt.fs")
local proc = require("rt.proc")
local A = require("bottle.testing.assert")

local BOTTLE = os.getenv("BOTTLE_BIN") or fs.realpath("build/bottle")

-- Runs bottle with HOME and the XDG dirs inside a fresh scratch dir.
-- `files` are written under it first. Returns the result and the root (the
-- caller removes it).
local function bottle(args, files, extra_env)
  local root = assert(fs.realpath(assert(fs.tmpdir("bottle-cli"))))
  for rel, text in pairs(files or {}) do
    local path = root .. "/" .. rel
    assert(fs.mkdir_p(path:match("^(.*)/"), 448))
    assert(fs.write(path, text, 384))
  end
  local env = {
    HOME = root .. "/home", XDG_CONFIG_HOME = root .. "/cfg", XDG_STATE_HOME = root .. "/state",
    XDG_CACHE_HOME = root .. "/cache", PATH = os.getenv("PATH"), BOTTLE_SMOLVM = "/nonexistent/smolvm",
    DOCKER_HOST = "unix://" .. root .. "/no-engine.sock",
  }
  for k, v in pairs(extra_env or {}) do
    env[k] = v:gsub("{root}", root)
  end
  local argv = { BOTTLE, "--no-color" }
  for _, a in ipairs(args) do
    argv[#argv + 1] = (a:gsub("{root}", root))
  end
  local r, err = proc.run({ argv = argv, env = env, timeout_ms = 20000 })
  assert(r, err)
  return r, root
end

test("a scenario never loads the user's ejected steps unless it asks to", function()
  local scen = [[
scenario("default launch", function(t)
  local r = t:run({ args = { "--yes" } })
  r:exit(0)
end)
scenario("asking for the user's recipes", function(t)
  local r = t:run({ args = { "--yes" }, user_recipes = true })
  r:exit(1)
  t:contains(r.message, "the user's ejected prompt step ran")
end)
]]
  local r, root = bottle({ "test", "{root}/scen.lua" }, {
    ["scen.lua"] = scen,
    ["cfg/bottle/recipes/steps/prompt.lua"] =
      'return { run = function() error("the user\'s ejected prompt step ran", 0) end }\n',
  })
  fs.rm_rf(root)
  A.eq(r.code, 0, r.stdout .. r.stderr)
  A.ok(r.stdout:find("2 passed, 0 failed", 1, true), r.stdout)
end)

test("--version prints the version", function()
  local r, root = bottle({ "--version" })
  fs.rm_rf(root)
  A.eq(r.code, 0, r.stderr)
  A.ok(r.stdout:match("^bottle %S+"), r.stdout)
end)

test("a recipe subcommand error prints the recipe usage and a did-you-mean", function()
  local r, root = bottle({ "recipe", "rnu" })
  fs.rm_rf(root)
  A.eq(r.code, 2)
  A.ok(r.stderr:find("unknown recipe command 'rnu' (did you mean 'run'?)", 1, true), r.stderr)
  A.ok(r.stderr:find("usage: bottle recipe list|show|which|eject|run", 1, true), r.stderr)
end)

test("an unknown command suggests the close one", function()
  local r, root = bottle({ "cleanpu" })
  fs.rm_rf(root)
  A.eq(r.code, 2)
  A.ok(r.stderr:find("unknown command 'cleanpu' (did you mean 'cleanup'?)", 1, true), r.stderr)
end)

test("recipe run --json without --dry-run is a usage error", function()
  local r, root = bottle({ "recipe", "run", "--json", "--yes" })
  local created = fs.exists(root .. "/state")
  fs.rm_rf(root)
  A.eq(r.code, 2, r.stderr)
  A.ok(r.stderr:find("--json prints the plan and needs --dry-run", 1, true), r.stderr)
  A.falsy(created)
end)

test("a recipe that does not declare dry_run is never run with --dry-run", function()
  local r, root = bottle({ "recipe", "run", "{root}/mine.lua", "--dry-run", "--json" }, {
    ["mine.lua"] = 'return { description = "d", run = function() io.stdout:write("RAN FOR REAL\\n") end }\n',
  })
  fs.rm_rf(root)
  A.eq(r.code, 1, r.stderr)
  A.falsy(r.stdout:find("RAN FOR REAL", 1, true), "the recipe ran")
  A.ok(r.stderr:find("does not support --dry-run", 1, true), r.stderr)
end)

test("the summary keeps the agent command's quoting", function()
  local r, root = bottle({ "recipe", "run", "--dry-run", "--", "bash", "-lc", "echo hi", "it's" })
  fs.rm_rf(root)
  A.eq(r.code, 0, r.stderr)
  A.ok(r.stderr:find("bash -lc 'echo hi' 'it'\\''s'", 1, true), r.stderr)
end)

-- A crashed launch's state dir, as `bottle cleanup` finds it.
local CRASHED = { ["state/bottle/claude-abc123/metadata.json"] =
  '{"slug": "claude-abc123", "backend": "docker", "agent": "claude", "pid": 2147483646}\n' }

test("ls with no engine reachable is an error, not 'no bottles'", function()
  local r, root = bottle({ "ls" })
  fs.rm_rf(root)
  A.eq(r.code, 1, r.stdout .. r.stderr)
  A.falsy(r.stdout:find("no bottles", 1, true), r.stdout)
  A.ok(r.stderr:find("cannot list docker: ", 1, true), r.stderr)
end)

test("ls --json with no engine reachable carries an errors array beside the bottles", function()
  local r, root = bottle({ "ls", "--json" })
  fs.rm_rf(root)
  A.eq(r.code, 1, r.stderr)
  local out = require("bottle.json").decode(r.stdout)
  A.eq(type(out), "table", r.stdout)
  A.eq(#out.bottles, 0)
  A.eq(#out.errors, 1)
  A.ok(out.errors[1]:find("^docker: "), out.errors[1])
end)

test("cleanup --yes with no engine reachable keeps the state dir and fails", function()
  local r, root = bottle({ "cleanup", "--yes", "--json" }, CRASHED)
  local kept = fs.exists(root .. "/state/bottle/claude-abc123/metadata.json")
  fs.rm_rf(root)
  A.eq(r.code, 1, r.stderr)
  A.ok(kept, "the state dir was removed although docker could not be checked")
  local out = require("bottle.json").decode(r.stdout)
  A.eq(out.kept[1].slug, "claude-abc123")
  A.eq(#out.removed, 0)
  A.ok(out.errors[1]:find("^docker: "), r.stdout)
end)

test("cleanup with no engine reachable does not say there is nothing to clean up", function()
  local r, root = bottle({ "cleanup", "--yes" })
  fs.rm_rf(root)
  A.eq(r.code, 1, r.stderr)
  A.falsy(r.stderr:find("nothing to clean up", 1, true), r.stderr)
  A.ok(r.stderr:find("cannot check docker: ", 1, true), r.stderr)
end)
