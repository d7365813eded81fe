-- rt.fs.overwrite and rt.fs.append: in-place writes for bind-mounted files
-- and logs with several writers.
local fs = require("rt.fs")
local proc = require("rt.proc")
local A = require("bottle.testing.assert")

local function tmp()
  local dir = assert(fs.tmpdir())
  return dir, function() fs.rm_rf(dir) end
end

test("overwrite keeps the inode and the mode", function()
  local dir, done = tmp()
  local path = dir .. "/routes.json"
  assert(fs.write(path, "old contents, longer than the new\n", 384))
  local before = fs.stat(path)
  A.eq(fs.overwrite(path, "new\n"), true)
  local after = fs.stat(path)
  A.eq(fs.read(path), "new\n")
  A.eq(after.ino, before.ino)
  A.eq(after.mode, 384)
  done()
end)

test("overwrite refuses a missing file, a directory and a symlink", function()
  local dir, done = tmp()
  local ok, msg, code = fs.overwrite(dir .. "/missing", "x")
  A.eq(ok, nil)
  A.eq(code, "ENOENT")
  A.contains(msg, "overwrite " .. dir .. "/missing")
  local _
  ok, _, code = fs.overwrite(dir, "x")
  A.eq(ok, nil)
  A.eq(code == "EISDIR" or code == "EINVAL", true)
  assert(fs.write(dir .. "/target", "keep", 384))
  proc.run({ argv = { "ln", "-s", dir .. "/target", dir .. "/link" } })
  ok, _, code = fs.overwrite(dir .. "/link", "x")
  A.eq(ok, nil)
  A.eq(code, "ELOOP")
  A.eq(fs.read(dir .. "/target"), "keep")
  done()
end)

test("append creates with the mode, then appends", function()
  local dir, done = tmp()
  local path = dir .. "/audit.jsonl"
  A.eq(fs.append(path, "one\n", 384), true)
  A.eq(fs.append(path, "two\n"), true)
  A.eq(fs.read(path), "one\ntwo\n")
  A.eq(fs.stat(path).mode, 384)
  local ok, _, code = fs.append(dir .. "/no/such/dir", "x")
  A.eq(ok, nil)
  A.eq(code, "ENOENT")
  done()
end)

test("lines appended by concurrent processes never interleave", function()
  local dir, done = tmp()
  local path = dir .. "/audit.jsonl"
  local writers, lines, width = 4, 200, 3000
  local child = dir .. "/writer.lua"
  assert(fs.write(child, string.format([[
local fs = require("rt.fs")
test("writer", function()
  local tag = os.getenv("WRITER")
  local line = tag .. ":" .. string.rep(tag, %d) .. "\n"
  for _ = 1, %d do
    assert(fs.append(%q, line))
  end
end)
]], width, lines, path)))
  local self = proc.self_exe()
  local r = proc.run({ argv = { "sh", "-c", [[
for w in a b c d; do WRITER=$w "$0" __test-lua "$1" >/dev/null 2>&1 & done; wait]], self, child },
    env = { PATH = os.getenv("PATH") }, timeout_ms = 60000 })
  A.eq(r.code, 0)
  local count = 0
  for line in fs.read(path):gmatch("([^\n]*)\n") do
    local tag = line:sub(1, 1)
    A.eq(line, tag .. ":" .. string.rep(tag, width))
    count = count + 1
  end
  A.eq(count, writers * lines)
  done()
end)

test("lock excludes another process until it is released", function()
  local dir, done = tmp()
  local path = dir .. "/state.lock"
  local child = dir .. "/locker.lua"
  assert(fs.write(child, string.format([[
local fs = require("rt.fs")
test("locker", function()
  local h, msg, code = fs.lock(%q, 100)
  assert(fs.append(%q, (h and "got" or (code .. " " .. msg)) .. "\n"))
  if h then h:unlock() end
end)
]], path, dir .. "/result")))
  local function try()
    local r = proc.run({ argv = { proc.self_exe(), "__test-lua", child }, timeout_ms = 30000 })
    A.eq(r.code, 0)
  end
  do
    local held <close> = assert(fs.lock(path))
    A.eq(getmetatable(held) ~= nil, true)
    try()
    A.eq(fs.stat(path).mode, 384)
  end
  try()
  local h = assert(fs.lock(path, 0))
  h:unlock()
  h:unlock()
  local lines = fs.read(dir .. "/result")
  A.match(lines, "^TIMEOUT lock " .. dir:gsub("%p", "%%%0") .. "/state%.lock: still taken after 100 ms\ngot\n$")
  done()
end)
