-- rt.proc: spawning, capture, timeouts, secrets.
local proc = require("rt.proc")
local fs = require("rt.fs")
local A = require("bottle.testing.assert")

test("captures stdout and stderr separately with the exit code", function()
  local r = proc.run({ argv = { "sh", "-c", "echo out; echo err >&2; exit 7" } })
  A.eq(r.code, 7)
  A.eq(r.stdout, "out\n")
  A.eq(r.stderr, "err\n")
end)

test("feeds stdin and passes an explicit environment only", function()
  local r = proc.run({ argv = { "sh", "-c", 'cat; echo "[$GREETING][$HOME]"' }, stdin = "in\n",
    env = { GREETING = "hi", PATH = "/usr/bin:/bin" } })
  A.eq(r.stdout, "in\n[hi][]\n")
end)

test("a missing program is ENOENT with a clear message", function()
  local r, msg, code = proc.run({ argv = { "no-such-program-xyz" } })
  A.eq(r, nil)
  A.eq(msg, "no-such-program-xyz: not found")
  A.eq(code, "ENOENT")
end)

test("a timeout kills the child and reports TIMEOUT", function()
  local r, msg, code, partial = proc.run({ argv = { "sh", "-c", "echo started; sleep 20" }, timeout_ms = 200 })
  A.eq(r, nil)
  A.eq(code, "TIMEOUT")
  A.contains(msg, "timed out after 200 ms")
  A.eq(partial.stdout, "started\n")
end)

test("a child killed by SIGKILL reads 137", function()
  local r = proc.run({ argv = { "sh", "-c", "kill -KILL $$" } })
  A.eq(r.code, 137)
end)

test("unknown options are rejected", function()
  A.raises(function() proc.run({ argv = { "true" }, shell = true }) end, "unknown option 'shell'")
end)

test("registered secrets are redacted", function()
  proc.secret("tok-very-secret-1")
  A.eq(proc.redact("Bearer tok-very-secret-1!"), "Bearer ***!")
  A.ok(proc.has_secret("x tok-very-secret-1"))
  A.falsy(proc.has_secret("nothing"))
end)

-- Acceptance: a secret registered as such never shows in -v output, even
-- when a (badly written) recipe puts it on an argv and in an error.
test("-v traces commands with secrets redacted", function()
  local bin = assert(os.getenv("BOTTLE_BIN"), "BOTTLE_BIN not set")
  local dir = assert(fs.tmpdir("bottle-test"))
  local recipe = dir .. "/leaky.lua"
  fs.write(recipe, [[
local proc = require("rt.proc")
return { description = "leaky", run = function(ctx)
  local token = ctx.env.LEAKY_TOKEN
  proc.secret(token)
  proc.run({ argv = { "echo", "token=" .. token }, env = { T = token } })
  error("failed with " .. token, 0)
end }
]])
  local r = proc.run({ argv = { bin, "-v", "recipe", "run", recipe },
    env = { LEAKY_TOKEN = "sekrit-7f3a9", PATH = os.getenv("PATH"), HOME = dir } })
  fs.rm_rf(dir)
  A.eq(r.code, 1)
  A.contains(r.stderr, "+ echo token=***")
  A.contains(r.stderr, "error: failed with ***")
  A.not_contains(r.stderr .. r.stdout, "sekrit-7f3a9")
end)

test("is_bottle: this binary is bottle; a pid running another program is not, whatever its argv", function()
  A.eq(proc.is_bottle(proc.getpid()), true)
  A.eq(proc.is_bottle(0), false)
  A.eq(proc.is_bottle(-5), false)
  if not proc.which("bash") then
    A.skip("bash is not installed")
  end
  -- argv[0] says bottle; the executable is sleep
  local bg = assert(proc.spawn({ argv = { "bash", "-c", "exec -a bottle sleep 30" } }))
  local pid = bg:pid()
  local deadline = os.time() + 5
  local has_proc = fs.read("/proc/self/cmdline") ~= nil
  local cmdline
  repeat
    proc.run({ argv = { "sleep", "0.05" } })
    cmdline = has_proc and fs.read("/proc/" .. pid .. "/cmdline") or nil
  until not has_proc or (cmdline and cmdline:find("^bottle%z30")) or os.time() > deadline
  A.eq(bg:wait(0), nil, "the other program still runs")
  if cmdline then
    A.match(cmdline, "^bottle%z30", "its command line says bottle")
  end
  A.eq(proc.is_bottle(pid), false)
  bg:stop(0)
  A.eq(proc.is_bottle(pid), false, "exited and reaped")
end)
