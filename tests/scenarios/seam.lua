-- Scenarios for the launch seam (docs/recipes.md): an ejected hop policy
-- is what the launch follows, a bad one is refused before anything exists,
-- and a step a user adds through the bottle's `provision:` list runs.

local TOKEN = "ghp-seam-token-3c9d21"

local ROUTES = [[
---
egress:
  routes:
    - host: api.github.com
      auth: {scheme: Bearer, token_ref: GH_PAT}
---
]]

local function hops_module(order)
  return "local M = {}\nfunction M.order(plan)\n  return " .. order .. "\nend\nreturn M\n"
end

local function with_hops(order, extra)
  local spec = {
    args = { "--bottle", "work", "--yes" },
    files = { ["bottles/work.md"] = ROUTES },
    env = { GH_PAT = TOKEN },
    lua = { ["lua/bottle/hops.lua"] = hops_module(order) },
  }
  for k, v in pairs(extra or {}) do
    spec[k] = v
  end
  return spec
end

local function bundle_of(r)
  return r:has("docker container_create bottle-bundle-").args[1]
end

scenario("an ejected hop policy of {pipelock} with routes: the agent faces pipelock, egress holds nothing", function(t)
  local r = t:run(with_hops('{ "pipelock" }'))
  r:exit(0)
  r:has("ca mint pipelock/ca")
  r:lacks("ca mint egress/ca")
  local bundle = bundle_of(r)
  t:match(bundle.env.BOTTLE_RELAY_ROUTES, "^/run/bottle/sockets/pipelock%.sock=127%.0%.0%.1:8888$",
    "the guest's one socket leads to pipelock")
  t:eq(bundle.env.EGRESS_TOKEN_0, nil, "egress is out of the path and gets no token")
  t:eq(bundle.env.EGRESS_UPSTREAM_PROXY, nil)
  -- the CA installed in the guest is pipelock's
  t:contains(r.output, "trusting pipelock's CA")
  for _, c in ipairs(r:all("smolvm machine exec")) do
    t:eq(c.guest_env.HTTPS_PROXY, "http://127.0.0.1:8888")
  end
  r:removed_all()
end)

scenario("an ejected hop policy of {egress}: egress faces the agent and goes direct", function(t)
  local r = t:run(with_hops('{ "egress" }'))
  r:exit(0)
  r:has("ca mint egress/ca")
  local bundle = bundle_of(r)
  t:match(bundle.env.BOTTLE_RELAY_ROUTES, "^/run/bottle/sockets/egress%.sock=127%.0%.0%.1:9099$")
  t:eq(bundle.env.EGRESS_TOKEN_0, TOKEN)
  t:eq(bundle.env.EGRESS_UPSTREAM_PROXY, nil, "no next hop: egress dials the internet itself")
  t:contains(r.output, "trusting egress's CA")
  -- egress's upstream trust holds no pipelock CA when pipelock is not next
  local trust = r:has("ca bundle")
  t:eq(trust.args.extra, {})
end)

scenario("the default policy with routes: egress first, pipelock as its upstream", function(t)
  local r = t:run(with_hops('#plan.routes > 0 and { "egress", "pipelock" } or { "pipelock" }'))
  r:exit(0)
  local bundle = bundle_of(r)
  t:eq(bundle.env.EGRESS_UPSTREAM_PROXY, "http://127.0.0.1:8888")
  local trust = r:has("ca bundle")
  t:eq(#trust.args.extra, 1, "egress trusts pipelock's CA upstream")
end)

scenario("a hop policy naming an unknown daemon is refused before anything exists", function(t)
  local r = t:run(with_hops('{ "egress", "squid" }'))
  r:exit(1)
  t:contains(r.message, "bottle.hops.order")
  t:contains(r.message, "unknown daemon 'squid' at position 2")
  t:contains(r.message, "hops are egress and pipelock")
  t:eq(#r.calls, 0)
  t:eq(r.state_dirs, {})
end)

scenario("a hop policy putting a hop after pipelock, or naming none, is refused", function(t)
  local r = t:run(with_hops('{ "pipelock", "egress" }'))
  r:exit(1)
  t:contains(r.message, "puts egress after pipelock")
  r = t:run(with_hops("{}"))
  r:exit(1)
  t:contains(r.message, "must return a non-empty list")
  r = t:run(with_hops('{ "egress", "egress" }'))
  r:exit(1)
  t:contains(r.message, "names egress twice")
end)

-- The worked example of docs/recipes.md ("Adding a provisioning step"),
-- read from the document itself so the two cannot drift apart.
local function doc_example()
  local doc = assert(require("rt.fs").read("docs/recipes.md"), "run from the repository's top directory")
  local code = doc:match("`~/%.config/bottle/recipes/steps/workspace%.lua`:\n\n```lua\n(.-)```")
  return assert(code, "docs/recipes.md has no workspace.lua example")
end
local WORKSPACE_STEP = doc_example()

-- The guest's answer to the workspace fragment: what the real commands
-- print (the scenario fakes know only the built-in steps' output).
local function guest(ready)
  return function(_, call)
    if call.step == "workspace" then
      return ready and { stdout = "workspace ready\n" } or { code = 1, stderr = "mkdir: Permission denied\n" }
    end
  end
end

scenario("a step the bottle adds with `provision:` runs after the defaults, before the agent", function(t)
  local r = t:run({
    args = { "--bottle", "work", "--yes" },
    files = { ["bottles/work.md"] = "---\nprovision: [workspace]\n---\n" },
    lua = { ["recipes/steps/workspace.lua"] = WORKSPACE_STEP },
    exec = guest(true),
  })
  r:exit(0)
  r:order({ "part ca", "part prompt", "part workspace", "runuser -u node -- claude" })
  local part = r:has("part workspace")
  t:contains(part.text, "runuser -u node --")
  t:contains(part.text, "mkdir -p /home/node/work && git config --global --add safe.directory /home/node/work")
  t:contains(r.output, "provision relay, ca, prompt, workspace")
  t:contains(r.output, "workspace: /home/node/work is ready")
  local dry = t:run({
    args = { "--bottle", "work", "--dry-run", "--json" },
    files = { ["bottles/work.md"] = "---\nprovision: [workspace]\n---\n" },
    lua = { ["recipes/steps/workspace.lua"] = WORKSPACE_STEP },
  })
  dry:exit(0)
  t:eq(require("bottle.json").decode(dry.stdout).provision, { "relay", "ca", "prompt", "workspace" })
  -- its own check decides: a guest that could not make the directory fails the launch
  local bad = t:run({
    args = { "--bottle", "work", "--yes" },
    files = { ["bottles/work.md"] = "---\nprovision: [workspace]\n---\n" },
    lua = { ["recipes/steps/workspace.lua"] = WORKSPACE_STEP },
    exec = guest(false),
  })
  bad:exit(1)
  t:contains(bad.message, "provision workspace: the work directory was not made: mkdir: Permission denied")
  bad:lacks("runuser -u node -- claude")
  bad:removed_all()
end)

scenario("a bottle naming a step that does not exist is refused with its file and line", function(t)
  local r = t:run({
    args = { "--bottle", "work", "--yes" },
    files = { ["bottles/work.md"] = "---\nenv:\n  A: b\nprovision:\n  - workspace\n---\n" },
  })
  r:exit(1)
  t:match(r.message, "bottles/work%.md:5: provision%[1%]: no provisioning step named 'workspace'")
  t:eq(#r.calls, 0)
  r = t:run({
    args = { "--bottle", "work", "--yes" },
    files = { ["bottles/work.md"] = "---\nprovision: [ca]\n---\n" },
  })
  r:exit(1)
  t:contains(r.message, "step 'ca' already runs by default")
end)

scenario("a recipe that writes into its plan after plan.build is caught", function(t)
  local ok, err = pcall(t.run, t, {
    recipe = "mutating",
    args = { "--yes" },
    lua = { ["recipes/mutating.lua"] = [[
local launch = require("bottle.launch")
return {
  description = "writes the bundle id into the plan, as launches once did",
  run = function(ctx)
    local rec = launch.start(ctx, "smolmachines")
    rec.plan.bundle.id = "abc"
    return 0
  end,
}
]] },
  })
  t:falsy(ok)
  t:contains(tostring(err), "changed its plan after plan.build: plan.bundle.id: was nil, now abc")
end)
