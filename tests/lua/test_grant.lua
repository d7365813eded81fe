-- bottle.grant: one more host in a live launch's routes and pipelock config.
local fs = require("rt.fs")
local yaml = require("rt.yaml")
local json = require("bottle.json")
local grant = require("bottle.grant")
local A = require("bottle.testing.assert")

local ROUTES = [[
{
  "version": 1,
  "routes": [
    {"host": "api.github.com", "auth_scheme": "token", "token_env": "EGRESS_TOKEN_0",
     "matches": [{"paths": [{"type": "prefix", "value": "/repos/"}], "methods": ["GET"]}]},
    {"host": "pypi.org", "auth_scheme": null, "token_env": null, "matches": []}
  ]
}
]]

local PIPELOCK = [[
# pipelock config for bottle x (rendered by bottle; do not edit)
version: 1
mode: strict
api_allowlist:
- api.anthropic.com
- pypi.org
forward_proxy:
  enabled: true
]]

test("host names are checked before they reach a config", function()
  A.eq(grant.host_problem("files.pythonhosted.org"), nil)
  A.eq(grant.host_problem("a-b.example.co"), nil)
  for _, bad in ipairs({ "", "localhost", "Example.com", "a..b", "-a.com", "a-.com", "a.com\n- evil.com",
    "a.com/x", "10.0.0.1", "a b.com", string.rep("a", 64) .. ".com", 3 }) do
    A.eq(type(grant.host_problem(bad)), "string")
  end
end)

test("routes_with adds a pass-through route and keeps every other route as it was", function()
  local out = grant.routes_with(ROUTES, "files.pythonhosted.org")
  local t = json.decode(out)
  A.eq(#t.routes, 3)
  A.eq(t.routes[3].host, "files.pythonhosted.org")
  A.eq(t.routes[3].auth_scheme, json.null)
  A.contains(out, '"matches": []')
  A.eq(t.routes[1].token_env, "EGRESS_TOKEN_0")
  A.eq(t.routes[1].matches[1].paths[1].value, "/repos/")
  A.contains(out, '"methods": [')
  A.eq(grant.routes_with(ROUTES, "pypi.org"), nil)
  local none, err = grant.routes_with("{ not json", "x.org")
  A.eq(none, nil)
  A.contains(err, "does not parse")
end)

test("pipelock_with adds one list item and changes nothing else", function()
  local out = grant.pipelock_with(PIPELOCK, "files.pythonhosted.org")
  A.contains(out, "- pypi.org\n- files.pythonhosted.org\nforward_proxy:")
  A.contains(out, "# pipelock config for bottle x")
  local t = yaml.load(out)
  A.eq(t.api_allowlist, { "api.anthropic.com", "pypi.org", "files.pythonhosted.org" })
  A.eq(t.forward_proxy.enabled, true)
  A.eq(grant.pipelock_with(PIPELOCK, "pypi.org"), nil)
  local indented = PIPELOCK:gsub("\n%- ", "\n  - ")
  A.contains(grant.pipelock_with(indented, "x.org"), "  - pypi.org\n  - x.org\n")
  A.contains(grant.pipelock_with("version: 1\napi_allowlist: []\n", "x.org"), "api_allowlist:\n- x.org\n")
  A.contains(grant.pipelock_with("version: 1\n", "x.org"), "api_allowlist:\n- x.org\n")
  local none, err = grant.pipelock_with("version: [1\n", "x.org")
  A.eq(none, nil)
  A.contains(err, "does not parse")
  none, err = grant.pipelock_with("version: 1\napi_allowlist: [a.com, b.com]\n", "x.org")
  A.eq(none, nil)
  A.contains(err, "block list")
end)

test("add_host rewrites both files in place, or neither", function()
  local dir = assert(fs.tmpdir())
  local st = { egress_routes = dir .. "/routes.json", pipelock_yaml = dir .. "/pipelock.yaml" }
  assert(fs.write(st.egress_routes, ROUTES, 384))
  assert(fs.write(st.pipelock_yaml, PIPELOCK, 384))
  local ino_r, ino_p = fs.stat(st.egress_routes).ino, fs.stat(st.pipelock_yaml).ino
  local changed = grant.add_host(st, "files.pythonhosted.org")
  A.eq(changed, { routes = true, pipelock = true })
  A.eq(fs.stat(st.egress_routes).ino, ino_r)
  A.eq(fs.stat(st.pipelock_yaml).ino, ino_p)
  A.contains(fs.read(st.egress_routes), "files.pythonhosted.org")
  A.contains(fs.read(st.pipelock_yaml), "- files.pythonhosted.org")
  A.eq(grant.add_host(st, "files.pythonhosted.org"), { routes = false, pipelock = false })
  -- a routes file that does not parse: nothing is written, pipelock included
  assert(fs.overwrite(st.egress_routes, "{ broken"))
  local before = fs.read(st.pipelock_yaml)
  local none, err = grant.add_host(st, "other.example.org")
  A.eq(none, nil)
  A.contains(err, "egress routes file " .. st.egress_routes .. " does not parse")
  A.eq(fs.read(st.pipelock_yaml), before)
  none, err = grant.add_host(st, "bad host")
  A.eq(none, nil)
  A.contains(err, "not a valid DNS name")
  fs.rm_rf(dir)
end)
