-- Signals and errors during a recipe unwind its cleanup scope and decide
-- the exit code (128+N for signal N, 1 for an error).
local proc = require("rt.proc")
local fs = require("rt.fs")
local A = require("bottle.testing.assert")

local bin = os.getenv("BOTTLE_BIN")

local RECIPE = [[
local time = require("rt.time")
local fs = require("rt.fs")
return { description = "marker", run = function(ctx)
  ctx.scope:defer(function()
    if ctx.env.SLOW_CLEANUP then time.sleep_ms(700) end
    fs.write(ctx.env.MARKER, "cleaned")
  end)
  if ctx.env.FAIL then error("step failed: " .. ctx.env.FAIL, 0) end
  fs.write(ctx.env.MARKER .. ".ready", "")
  time.sleep_ms(20000)
end }
]]

-- Starts bottle in the background, waits until the recipe is running, then
-- runs `signals` (shell commands using $pid); returns exit code, stderr and
-- whether the marker exists.
local function launch(env_extra, signals)
  local dir = assert(fs.tmpdir("bottle-sig"))
  fs.write(dir .. "/r.lua", RECIPE)
  local marker = dir .. "/marker"
  local script = [[
"$BIN" recipe run "$DIR/r.lua" 2>"$DIR/err" &
pid=$!
i=0
while [ ! -e "$MARKER.ready" ] && [ -z "$FAIL" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
]] .. signals .. [[

wait $pid
echo $?
]]
  local env = { BIN = bin, DIR = dir, MARKER = marker, PATH = os.getenv("PATH"), HOME = dir }
  for k, v in pairs(env_extra) do
    env[k] = v
  end
  local r = assert(proc.run({ argv = { "sh", "-c", script }, env = env, timeout_ms = 30000 }))
  local code = tonumber(r.stdout:match("(%d+)%s*$"))
  local err = fs.read(dir .. "/err") or ""
  local cleaned = fs.read(marker) == "cleaned"
  fs.rm_rf(dir)
  return code, err, cleaned
end

test("SIGINT runs the cleanup and exits 130", function()
  local code, err, cleaned = launch({}, "kill -INT $pid")
  A.eq(code, 130)
  A.ok(cleaned, "cleanup did not run")
  A.contains(err, "interrupted by SIGINT")
end)

test("SIGTERM runs the cleanup and exits 143", function()
  local code, _, cleaned = launch({}, "kill -TERM $pid")
  A.eq(code, 143)
  A.ok(cleaned, "cleanup did not run")
end)

test("SIGHUP runs the cleanup and exits 129", function()
  local code, _, cleaned = launch({}, "kill -HUP $pid")
  A.eq(code, 129)
  A.ok(cleaned)
end)

test("a second SIGINT during cleanup does not cut it short", function()
  local code, _, cleaned = launch({ SLOW_CLEANUP = "1" }, "kill -INT $pid; sleep 0.3; kill -INT $pid")
  A.eq(code, 130)
  A.ok(cleaned, "the second ^C cut the cleanup short")
end)

test("an error in run cleans up, exits 1 with a one-line message", function()
  local code, err, cleaned = launch({ FAIL = "no network" }, "")
  A.eq(code, 1)
  A.ok(cleaned)
  A.eq(err, "error: step failed: no network\n")
end)
