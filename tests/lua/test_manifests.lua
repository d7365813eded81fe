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
