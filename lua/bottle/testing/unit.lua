--- The runner behind `bottle __test-lua FILE...`: bottle's own Lua tests.
--
-- A test file calls test(name, fn) for each case (test is provided in its
-- environment) and uses bottle.testing.assert. After every case the runner
-- checks that it left nothing behind: no open defer scope, no child
-- process, the same number of open descriptors and the same cwd. Prints
-- `ok - file: name` lines and ends with `N passed, N failed, N skipped`.
local defer = require("rt.defer")
local fs = require("rt.fs")
local host = require("rt.host")
local proc = require("rt.proc")
local A = require("bottle.testing.assert")
local recipes = require("bottle.recipes")

local M = {}

local function snapshot()
  collectgarbage("collect")
  collectgarbage("collect")
  return { scopes = defer.open_count(), fds = proc.fd_count(), cwd = fs.cwd() }
end

local function leaks(before)
  local after = snapshot()
  local found = {}
  if after.scopes ~= before.scopes then
    found[#found + 1] = string.format("%d defer scope(s) left open", after.scopes - before.scopes)
  end
  if proc.children() then
    found[#found + 1] = "a child process was left running or unreaped"
  end
  if after.fds ~= before.fds then
    found[#found + 1] = string.format("open descriptors went from %d to %d", before.fds, after.fds)
  end
  if after.cwd ~= before.cwd then
    found[#found + 1] = "cwd changed to " .. tostring(after.cwd)
  end
  return found
end

local function run_file(path, counts)
  local cases = {}
  local env = recipes.new_env()
  env.test = function(name, fn)
    cases[#cases + 1] = { name = name, fn = fn }
  end
  local src, err = fs.read(path)
  local chunk = src and load(src, "@" .. path, "t", env)
  if not chunk then
    local _, why = load(src or "", "@" .. path, "t", env)
    print(string.format("not ok - %s: cannot load: %s", path, err or why))
    counts.failed = counts.failed + 1
    return
  end
  local ok, lerr = pcall(chunk)
  if not ok then
    print(string.format("not ok - %s: %s", path, tostring(lerr)))
    counts.failed = counts.failed + 1
    return
  end
  local short = path:match("[^/]+$")
  for _, case in ipairs(cases) do
    host.reset_signal()
    local before = snapshot()
    local cok, cerr = xpcall(case.fn, function(e)
      if A.is_skip(e) then
        return e
      end
      return debug.traceback(tostring(e), 2)
    end)
    host.reset_signal()
    if not cok and A.is_skip(cerr) then
      counts.skipped = counts.skipped + 1
      print(string.format("skip - %s: %s: %s", short, case.name, cerr.reason))
    else
      local found = leaks(before)
      if cok and #found == 0 then
        counts.passed = counts.passed + 1
        print(string.format("ok - %s: %s", short, case.name))
      else
        counts.failed = counts.failed + 1
        print(string.format("not ok - %s: %s", short, case.name))
        local why = cok and ("leak: " .. table.concat(found, "; ")) or cerr
        for line in tostring(why):gmatch("[^\n]+") do
          print("#   " .. line)
        end
      end
    end
    io.stdout:flush()
  end
end

---@param files string[]
---@return integer exit code
function M.main(files)
  local counts = { passed = 0, failed = 0, skipped = 0 }
  for _, path in ipairs(files) do
    run_file(path, counts)
  end
  print(string.format("%d passed, %d failed, %d skipped", counts.passed, counts.failed, counts.skipped))
  return counts.failed > 0 and 1 or 0
end

return M
