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
