-- What a bottle process costs to start: BOTTLE_STATS, and libcurl loaded
-- only by commands that reach the engine.
local proc = require("rt.proc")
local A = require("bottle.testing.assert")

local function bottle(args, env)
  local argv = { proc.self_exe() }
  table.move(args, 1, #args, 2, argv)
  -- A HOME that does not exist: none of these commands writes anything.
  local base = { PATH = "/usr/bin:/bin", HOME = "/nonexistent/bottle-test-home" }
  for k, v in pairs(env or {}) do
    base[k] = v
  end
  return assert(proc.run({ argv = argv, env = base, timeout_ms = 20000 }))
end

test("BOTTLE_STATS=1 ends stderr with one line of bottle's own CPU and peak RSS", function()
  local r = bottle({ "version" }, { BOTTLE_STATS = "1" })
  A.eq(r.code, 0)
  local cpu, rss = r.stderr:match("^bottle%-stats: cpu_us=(%d+) maxrss_kb=(%d+)\n$")
  A.ok(cpu and rss, "stderr: " .. r.stderr)
  A.ok(tonumber(rss) > 0, "a peak RSS is reported")
  A.eq(bottle({ "version" }, { BOTTLE_STATS = "0" }).stderr, "")
  A.eq(bottle({ "version" }).stderr, "")
end)

-- glibc's loader reports every library it loads under LD_DEBUG=libs.
local function loaded(args, env)
  env = env or {}
  env.LD_DEBUG = "libs"
  local r = bottle(args, env)
  if not r.stderr:find("find library=liblua", 1, true) and not r.stderr:find("liblua5.4", 1, true) then
    A.skip("the dynamic loader does not report libraries under LD_DEBUG=libs (not glibc)")
  end
  return r.stderr
end

test("version, help and recipe list do not load libcurl; an engine command does", function()
  for _, args in ipairs({ { "version" }, { "help" }, { "recipe", "list" } }) do
    local out = loaded(args)
    A.falsy(out:find("libcurl", 1, true), table.concat(args, " ") .. " loaded libcurl")
  end
  -- The control: `ls` asks the engine (here a socket that does not exist),
  -- so it loads libcurl first.
  local out = loaded({ "ls" }, { DOCKER_HOST = "unix:///nonexistent/bottle-test.sock" })
  A.ok(out:find("libcurl", 1, true), "ls did not load libcurl")
end)
