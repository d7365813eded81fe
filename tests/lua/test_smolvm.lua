-- bottle.smolvm: the version is asked once per binary (cache keyed by path,
-- size and mtime), an old smolvm is refused naming both versions, and only
-- smolvm's "could not reach the guest" errors count as unreachable.
local fs = require("rt.fs")
local A = require("bottle.testing.assert")
local smolvm = require("bottle.smolvm")

-- A smolvm stand-in script answering --version with `version`, counting
-- its runs in a file beside it.
local function fixture(version)
  local dir = assert(fs.tmpdir("bottle-smolvm"))
  local exe = dir .. "/smolvm"
  assert(fs.write(exe, "#!/bin/sh\necho run >> '" .. dir .. "/runs'\necho 'smolvm " .. version .. "'\n", 493))
  local env = { HOME = dir, PATH = os.getenv("PATH"), BOTTLE_SMOLVM = exe, XDG_CACHE_HOME = dir .. "/cache" }
  local function runs()
    local text = fs.read(dir .. "/runs") or ""
    local n = 0
    for _ in text:gmatch("run") do
      n = n + 1
    end
    return n
  end
  return env, runs, function() fs.rm_rf(dir) end, exe
end

test("the version is asked once per binary and cached by path, size and mtime", function()
  local env, runs, done, exe = fixture("1.9.3")
  local d = smolvm.new({ env = env }):detect()
  A.eq(d.version, "1.9.3")
  A.eq(runs(), 1)
  smolvm.new({ env = env }):detect()
  smolvm.new({ env = env }):detect()
  A.eq(runs(), 1, "a second launch reads the cache")
  -- a new binary at the same path (another size) is asked again
  assert(fs.write(exe, "#!/bin/sh\necho run >> '" .. env.HOME .. "/runs'\necho 'smolvm 1.10.0'   \n", 493))
  A.eq(smolvm.new({ env = env }):detect().version, "1.10.0")
  A.eq(runs(), 2)
  done()
end)

test("a smolvm older than 1.8.0 is refused with both versions", function()
  local env, _, done = fixture("1.7.9")
  local ok, err = pcall(function()
    smolvm.new({ env = env }):detect()
  end)
  done()
  A.falsy(ok)
  A.contains(err.message, "is smolvm 1.7.9; bottle needs smolvm 1.8.0 or later")
end)

test("output that is not `smolvm X.Y.Z` is an error naming it", function()
  local env, _, done = fixture("nightly")
  local ok, err = pcall(function()
    smolvm.new({ env = env }):detect()
  end)
  done()
  A.falsy(ok)
  A.contains(err.message, "not `smolvm X.Y.Z`")
end)

test("only smolvm's connect errors mean the guest was not reached", function()
  A.ok(smolvm.unreachable({ code = 1, stderr = "Error: agent operation failed: connect: machine 'm' is not " ..
    "running. Use 'smolvm machine start --name m' first.\n" }))
  A.ok(smolvm.unreachable({ code = 1, stderr = "Error: agent operation failed: connect to agent: Connection " ..
    "refused (os error 111)\n" }))
  A.falsy(smolvm.unreachable({ code = 137, stderr = "" }), "137 is a killed command")
  A.falsy(smolvm.unreachable({ code = 1, stderr = "Error: vm not found: m\n" }))
  A.falsy(smolvm.unreachable({ code = 1, stderr = "bash: connect: refused\n" }), "the command's own output")
end)
