-- Every malformed manifest under tests/manifests/bad/<case>/ must produce
-- exactly the one-line message in <case>/expect (naming file, line and
-- key), and planning must create nothing.
local fs = require("rt.fs")
local A = require("bottle.testing.assert")
local plan = require("bottle.plan")
local errors = require("bottle.errors")

local ROOT = fs.realpath("tests/manifests/bad")

local function parse_args(line)
  local opts = { bottles = {} }
  local words = {}
  for w in line:gmatch("%S+") do
    words[#words + 1] = w
  end
  for i = 1, #words, 2 do
    if words[i] == "--bottle" then
      table.insert(opts.bottles, words[i + 1])
    elseif words[i] == "--agent" then
      opts.agent = words[i + 1]
    end
  end
  return opts
end

local cases = assert(fs.list(ROOT))
test("there are at least 40 malformed manifests", function()
  A.ok(#cases >= 40, "only " .. #cases .. " cases")
end)

for _, case in ipairs(cases) do
  test("bad manifest: " .. case, function()
    local dir = ROOT .. "/" .. case
    local home = assert(fs.tmpdir("bottle-bad"))
    local env = { HOME = home, XDG_CONFIG_HOME = dir, PATH = os.getenv("PATH") }
    local want = assert(fs.read(dir .. "/expect")):gsub("\n$", ""):gsub("{dir}", dir .. "/bottle")
    local ok, err = pcall(plan.build, { env = env, opts = parse_args(assert(fs.read(dir .. "/args"))),
      cwd = home }, "smolmachines")
    local created = fs.exists(home .. "/.local/state")
    fs.rm_rf(home)
    A.falsy(ok, "planning succeeded")
    A.ok(errors.is(err), "not a bottle error: " .. tostring(err))
    A.eq(err.message, want)
    A.falsy(err.message:find("\n"), "message spans lines")
    A.falsy(created, "planning created a state dir")
  end)
end

-- Files that are not plain manifests: each gives one message on stderr,
-- exit 1 and nothing created, and none may hang or read without bound
-- (the binary runs under a timeout, so a regression fails instead of
-- hanging the suite).
local proc = require("rt.proc")
local BOTTLE = os.getenv("BOTTLE_BIN") or fs.realpath("build/bottle")

local function sh(...)
  local r = assert(proc.run({ argv = { ... } }))
  assert(r.code == 0, table.concat({ ... }, " ") .. ": " .. r.stderr)
end

local function hostile(name, setup, args, want)
  test("hostile manifest: " .. name, function()
    local root = assert(fs.realpath(assert(fs.tmpdir("bottle-hostile"))))
    local cfg, home, proj = root .. "/cfg", root .. "/home", root .. "/proj"
    for _, d in ipairs({ cfg .. "/bottle/bottles", cfg .. "/bottle/agents", home, proj .. "/.bottle/agents" }) do
      assert(fs.mkdir_p(d, 448))
    end
    setup({ cfg = cfg .. "/bottle", home = home, proj = proj, root = root })
    -- run from the project directory: project agents are found from the cwd
    local argv = { "sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", proj, BOTTLE, "--no-color", "recipe", "run",
      "--yes" }
    for w in args:gmatch("%S+") do
      argv[#argv + 1] = w
    end
    local r, err = proc.run({ argv = argv, timeout_ms = 5000, max_output = 65536, env = {
      HOME = home, XDG_CONFIG_HOME = cfg, XDG_STATE_HOME = root .. "/state", XDG_CACHE_HOME = root .. "/cache",
      PATH = os.getenv("PATH"), BOTTLE_SMOLVM = "/nonexistent/smolvm", DOCKER_HOST = "unix://" .. root .. "/no.sock",
    } })
    local created = fs.exists(root .. "/state") or fs.exists(root .. "/cache")
    fs.rm_rf(root)
    A.ok(r, "bottle did not finish: " .. tostring(err))
    A.eq(r.code, 1, "exit code; stderr: " .. r.stderr)
    local lines = {}
    for l in r.stderr:gmatch("[^\n]+") do
      lines[#lines + 1] = l
    end
    A.eq(#lines, 1, "one message; stderr: " .. r.stderr)
    local expected = want:gsub("{root}", root)
    A.ok(lines[1]:find(expected, 1, true), "message: " .. lines[1] .. "\nwant: " .. expected)
    A.falsy(created, "something was created")
  end)
end

hostile("symlink to a device", function(d)
  sh("ln", "-s", "/dev/zero", d.cfg .. "/bottles/zero.md")
end, "--bottle zero", "error: {root}/cfg/bottle/bottles/zero.md -> /dev/zero: not a regular file (a character device)")

hostile("FIFO", function(d)
  sh("mkfifo", d.cfg .. "/bottles/fifo.md")
end, "--bottle fifo", "error: {root}/cfg/bottle/bottles/fifo.md: not a regular file (a FIFO)")

hostile("oversized file", function(d)
  local line = "# " .. string.rep("x", 1021) .. "\n"
  assert(fs.write(d.cfg .. "/bottles/big.md", "---\nenv: {A: b}\n---\n" .. string.rep(line, 1025)))
end, "--bottle big", "error: {root}/cfg/bottle/bottles/big.md: too large (over 1048576 bytes)")

hostile("too many env keys", function(d)
  local keys = {}
  for i = 1, 501 do
    keys[#keys + 1] = string.format("  K%d: v\n", i)
  end
  assert(fs.write(d.cfg .. "/bottles/many.md", "---\nenv:\n" .. table.concat(keys) .. "---\n"))
end, "--bottle many", "env: 501 variables; a bottle declares at most 500")

hostile("project agent symlink leaving the repository", function(d)
  assert(fs.write(d.home .. "/notes.md", "---\n---\nprivate notes\n"))
  sh("ln", "-s", d.home .. "/notes.md", d.proj .. "/.bottle/agents/x.md")
end, "--agent x", "error: {root}/proj/.bottle/agents/x.md -> ~/notes.md: refused: it resolves " ..
  "outside the project directory {root}/proj")

hostile("NUL byte", function(d)
  assert(fs.write(d.cfg .. "/bottles/nul.md", "---\nenv: {A: b}\n---\nhi\0there\n"))
end, "--bottle nul", "error: {root}/cfg/bottle/bottles/nul.md:4: contains a NUL byte")

hostile("not UTF-8", function(d)
  assert(fs.write(d.cfg .. "/bottles/latin.md", "---\nenv: {A: \"caf\233\"}\n---\n"))
end, "--bottle latin", "error: {root}/cfg/bottle/bottles/latin.md:2: is not valid UTF-8")

hostile("identity file that is a FIFO", function(d)
  sh("mkfifo", d.home .. "/key")
  assert(fs.write(d.cfg .. "/bottles/gg.md", "---\ngit-gate:\n  repos:\n    r:\n      url: ssh://git@h/x.git\n" ..
    "      identity: ~/key\n      host_key: ssh-ed25519 AAAA\n---\n"))
end, "--bottle gg", "git-gate.repos.r.identity: identity file ~/key is not a regular file")

hostile("skill holding a FIFO", function(d)
  assert(fs.mkdir_p(d.home .. "/.claude/skills/pdf", 448))
  sh("mkfifo", d.home .. "/.claude/skills/pdf/pipe")
  assert(fs.write(d.cfg .. "/agents/coder.md", "---\nskills: [pdf]\n---\n"))
end, "--agent coder", "skills[1]: skill 'pdf' cannot be copied: ~/.claude/skills/pdf holds pipe, which is not " ..
  "a regular file, directory or link")

hostile("skill too large", function(d)
  assert(fs.mkdir_p(d.home .. "/.claude/skills/big", 448))
  sh("truncate", "-s", "65M", d.home .. "/.claude/skills/big/blob")
  assert(fs.write(d.cfg .. "/agents/coder.md", "---\nskills: [big]\n---\n"))
end, "--agent coder", "skill 'big' cannot be copied: ~/.claude/skills/big holds over 64 MiB")
