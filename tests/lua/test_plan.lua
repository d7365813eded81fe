-- The plan: token slots, hops, bundle spec, merging, and that no secret
-- value reaches the plan JSON, the summary or any rendered file.
local fs = require("rt.fs")
local proc = require("rt.proc")
local A = require("bottle.testing.assert")
local plan = require("bottle.plan")
local json = require("bottle.json")
local environment = require("bottle.environment")

-- A private config home with the given bottles/agents; returns ctx, cleanup.
local function fixture(files, extra_env, opts)
  local home = assert(fs.tmpdir("bottle-plan"))
  for rel, text in pairs(files) do
    local path = home .. "/.config/bottle/" .. rel
    assert(fs.mkdir_p(path:match("^(.*)/"), 493))
    assert(fs.write(path, text))
  end
  local env = { HOME = home, PATH = os.getenv("PATH") }
  for k, v in pairs(extra_env or {}) do
    env[k] = v
  end
  local ctx = { env = env, opts = opts or { bottles = {} }, cwd = home, name = "smolmachines" }
  return ctx, function() fs.rm_rf(home) end, home
end

local function build(files, extra_env, opts, backend)
  local ctx, done, home = fixture(files, extra_env, opts)
  local ok, p = pcall(plan.build, ctx, backend or "smolmachines")
  if not ok then
    done()
    error(p, 0)
  end
  return p, done, home, ctx
end

local THREE_ROUTES = [[
---
egress:
  routes:
    - host: a.example.com
      auth: {scheme: Bearer, token_ref: X}
    - host: b.example.com
    - host: c.example.com
      auth: {scheme: token, token_ref: X}
---
]]

test("routes sharing a token_ref share one slot; unauthenticated routes get none", function()
  local p, done = build({ ["bottles/work.md"] = THREE_ROUTES }, { X = "xval-1234" }, { bottles = { "work" } })
  local j = json.decode(plan.to_json(p))
  done()
  local by_host = {}
  for _, r in ipairs(j.egress.routes) do
    by_host[r.host] = r
  end
  A.eq(by_host["a.example.com"].token_env, "EGRESS_TOKEN_0")
  A.eq(by_host["c.example.com"].token_env, "EGRESS_TOKEN_0")
  A.eq(by_host["b.example.com"].token_env, json.null)
  A.eq(by_host["c.example.com"].auth_scheme, "token")
  A.contains(j.bundle.env, "EGRESS_TOKEN_0")
  A.falsy(plan.to_json(p):find("EGRESS_TOKEN_1", 1, true))
end)

test("slots count from 0 in declaration order, one per distinct token_ref", function()
  local p, done = build({ ["bottles/w.md"] = [[
---
egress:
  routes:
    - host: one.example
      auth: {scheme: Bearer, token_ref: B}
    - host: two.example
      auth: {scheme: Bearer, token_ref: A}
    - host: three.example
      auth: {scheme: Bearer, token_ref: B}
---
]] }, { A = "aaaa1", B = "bbbb1" }, { bottles = { "w" } })
  done()
  A.eq(p.token_slots, { { slot = "EGRESS_TOKEN_0", ref = "B" }, { slot = "EGRESS_TOKEN_1", ref = "A" } })
  A.eq(p.routes[3].token_env, "EGRESS_TOKEN_0")
end)

test("with declared routes egress faces the agent; its socket is the guest's way out", function()
  local p, done = build({ ["bottles/work.md"] = THREE_ROUTES }, { X = "xval-1234" }, { bottles = { "work" } })
  done()
  A.eq(p.hops, { "egress", "pipelock" })
  A.eq(p.bundle.publish, {}, "nothing is published on the host")
  A.eq(p.bundle.daemons, { "egress", "pipelock", "relay" })
  A.eq(#p.sockets, 1)
  A.eq(p.sockets[1].service, "egress")
  A.eq(p.sockets[1].guest_port, 9099)
  -- the default hosts ride along as pass-through routes in egress's table
  local hosts = {}
  for _, r in ipairs(p.egress_table) do
    hosts[r.host] = r.passthrough or false
  end
  A.eq(hosts["api.anthropic.com"], true)
  A.eq(hosts["a.example.com"], false)
end)

test("without routes pipelock faces the agent; with BOTTLE_SOCKETS=host its port is published", function()
  local p, done = build({}, {}, { bottles = {} })
  done()
  A.eq(p.bottles, { "default" })
  A.eq(p.hops, { "pipelock" })
  A.eq(p.bundle.publish, {})
  A.eq(p.sockets[1].service, "pipelock")
  A.eq(p.bundle.daemons, { "egress", "pipelock", "relay" })
  local h, hdone = build({}, { BOTTLE_SOCKETS = "host" }, { bottles = {} })
  hdone()
  A.eq(h.bundle.publish, { 8888 })
  A.eq(h.bundle.daemons, { "egress", "pipelock" }, "bottle relays the sockets itself")
  A.eq(#p.routes, 0)
  -- egress's table has no pass-through entries when it is not agent-facing
  A.eq(#p.egress_table, 0)
  A.contains(p.allowlist, "api.anthropic.com")
end)

test("git-gate and supervise add their daemons and sockets", function()
  local home_key = "id_test"
  local p, done = build({ ["bottles/g.md"] = [[
---
git-gate:
  user: {name: Ada, email: ada@example.org}
  repos:
    myrepo:
      url: ssh://git@git.example.org:2222/ada/myrepo.git
      identity: ~/.config/bottle/id_test
      host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"
supervise: true
---
]], [home_key] = "" }, {}, { bottles = { "g" } })
  done()
  A.eq(p.bundle.daemons, { "egress", "pipelock", "git-gate", "supervise", "relay" })
  local services = {}
  for _, sk in ipairs(p.sockets) do
    services[#services + 1] = sk.service .. ":" .. sk.guest_port
  end
  A.eq(services, { "pipelock:8888", "git-gate:9418", "supervise:9100" })
  A.eq(p.provision, { "relay", "ca", "prompt", "git", "supervise" })
  local known
  for _, f in ipairs(p.files) do
    if f.path:match("known_hosts$") then
      known = f.content
    end
  end
  A.eq(known, "[git.example.org]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n")
end)

test("extends merges env per key and replaces egress wholesale", function()
  local p, done = build({
    ["bottles/base.md"] = "---\nenv: {A: base, B: base}\negress:\n  routes:\n    - host: base.example\n" ..
      "supervise: true\n---\n",
    ["bottles/child.md"] = "---\nextends: base\nenv: {B: child}\negress:\n  routes: []\n---\n",
  }, {}, { bottles = { "child" } })
  done()
  local env = {}
  for _, e in ipairs(p.env) do
    env[e.name] = e.value
  end
  A.eq(env, { A = "base", B = "child" })
  A.eq(#p.routes, 0, "an explicit empty routes list clears the parent's")
  A.eq(p.supervise, true, "supervise is inherited when the child does not declare it")
end)

test("several --bottle merge in order with the same rules", function()
  local p, done = build({
    ["bottles/one.md"] = "---\nenv: {A: one}\nsupervise: true\n---\n",
    ["bottles/two.md"] = "---\nenv: {A: two, C: two}\nsupervise: false\n---\n",
  }, {}, { bottles = { "one", "two" } })
  done()
  A.eq(p.bottles, { "one", "two" })
  A.eq(p.env[1].value, "two")
  A.eq(p.supervise, false)
end)

test("env forms: literal, host copy, asked", function()
  local p, done = build({ ["bottles/e.md"] = [[
---
env:
  LIT: "pa$$word $5"
  FROM_HOST: "${SOME_HOST_VAR}"
  ASKED: "?Your Gitea token"
---
]] }, { SOME_HOST_VAR = "hostval-99" }, { bottles = { "e" } })
  done()
  local by = {}
  for _, e in ipairs(p.env) do
    by[e.name] = e
  end
  A.eq(by.LIT.kind, "literal")
  A.eq(by.LIT.value, "pa$$word $5")
  A.eq(by.FROM_HOST.kind, "host")
  A.eq(by.FROM_HOST.value, "hostval-99")
  A.eq(by.ASKED.kind, "prompt")
  A.eq(by.ASKED.question, "Your Gitea token")
end)

test("an api.anthropic.com route gives the guest a placeholder token", function()
  local p, done = build({ ["bottles/c.md"] = "---\negress:\n  routes:\n    - host: api.anthropic.com\n" ..
    "      auth: {scheme: Bearer, token_ref: OAUTH}\n---\n" },
    { OAUTH = "oauth-real-secret" }, { bottles = { "c" } })
  done()
  local found
  for _, e in ipairs(p.guest_env) do
    if e.name == "CLAUDE_CODE_OAUTH_TOKEN" then
      found = e.value
    end
  end
  A.eq(found, plan.PLACEHOLDER_TOKEN)
end)

-- Acceptance: distinctive secret values appear in no output and no file.
test("no secret reaches the plan JSON, the summary or a rendered file", function()
  local secrets = { "tok-AAAA-9f8e7d", "hostenv-BBBB-1a2b3c", "asked-CCCC-4d5e6f" }
  local p, done, home = build({ ["bottles/s.md"] = [[
---
env:
  FWD: "${HOST_SECRET}"
  ASK: "?secret please"
  PLAIN: visible-literal
egress:
  routes:
    - host: api.github.com
      auth: {scheme: Bearer, token_ref: GH_PAT}
---
]] }, { GH_PAT = secrets[1], HOST_SECRET = secrets[2] }, { bottles = { "s" } })
  environment.ask(p.env, function() return secrets[3] end)
  local outputs = { plan.to_json(p), plan.summary(p) }
  plan.materialize(p)
  local function scan_dir(dir)
    for _, name in ipairs(fs.list(dir) or {}) do
      local path = dir .. "/" .. name
      local st = fs.stat(path)
      if st.type == "dir" then
        scan_dir(path)
      else
        outputs[#outputs + 1] = assert(fs.read(path))
      end
    end
  end
  scan_dir(p.state.dir)
  local st = fs.stat(p.state.dir)
  done()
  A.eq(st.mode, 448, "state dir must be 0700")
  for _, out in ipairs(outputs) do
    for _, s in ipairs(secrets) do
      A.not_contains(out, s)
    end
  end
  A.not_contains(outputs[1], "visible-literal", "literal env values stay out of the plan JSON")
  -- the values are registered with the redactor, and the token does reach
  -- the bundle's env (the engine request body) under its slot name
  A.ok(proc.has_secret(secrets[1]) and proc.has_secret(secrets[2]) and proc.has_secret(secrets[3]))
  local bundle_env = require("bottle.bundle").env_values(p.bundle)
  A.eq(bundle_env.EGRESS_TOKEN_0, secrets[1])
  local _ = home
end)

test("the rendered pipelock config is YAML with the allowlist and CA paths", function()
  local p, done = build({}, {}, { bottles = {} })
  done()
  local yaml = require("rt.yaml")
  local doc = assert(yaml.load(p.files[1].content))
  A.eq(doc.mode, "strict")
  A.eq(doc.tls_interception.ca_cert, "/etc/pipelock/ca.pem")
  A.eq(doc.api_allowlist[1], "api.anthropic.com")
  A.eq(doc.request_body_scanning.action, "block")
end)

-- pipelock v2.3.0's defaults that would break a session (docs/bundle.md):
-- each is set explicitly, with the values render.PIPELOCK documents.
test("the rendered pipelock config sets every session-breaking default explicitly", function()
  local p, done = build({}, {}, { bottles = {} })
  done()
  local yaml = require("rt.yaml")
  local doc = assert(yaml.load(p.files[1].content))
  A.eq(doc.mode, "strict")
  A.eq(doc.enforce, true)
  A.eq(doc.request_body_scanning.enabled, true)
  A.eq(doc.request_body_scanning.action, "block")
  A.eq(doc.request_body_scanning.scan_headers, true)
  A.eq(doc.response_scanning.enabled, true)
  A.eq(doc.response_scanning.action, "warn")
  A.eq(doc.response_scanning.sse_streaming.enabled, true)
  A.eq(doc.response_scanning.sse_streaming.action, "warn")
  A.eq(doc.tls_interception.max_response_bytes, 64 * 1024 * 1024)
  A.eq(doc.tls_interception.passthrough_domains[1], "downloads.claude.ai")
  A.eq(doc.fetch_proxy.monitoring.max_requests_per_minute, 1200)
  A.eq(doc.dlp.scan_env, false)
  A.eq(doc.dlp.include_defaults, true)
  A.eq(doc.forward_proxy.enabled, true)
  A.eq(doc.forward_proxy.max_tunnel_seconds, 3600)
  A.eq(doc.forward_proxy.idle_timeout_seconds, 600)
  A.eq(doc.trusted_domains, nil)
end)

test("BOTTLE_BUNDLE_HOSTS names become pipelock's trusted_domains (private upstreams)", function()
  local p, done = build({}, { BOTTLE_BUNDLE_HOSTS = "upstream.test:10.9.8.7,git.internal:172.20.0.5" },
    { bottles = {} })
  done()
  local doc = assert(require("rt.yaml").load(p.files[1].content))
  A.eq(#doc.trusted_domains, 2)
  A.eq(doc.trusted_domains[1], "upstream.test")
  A.eq(doc.trusted_domains[2], "git.internal")
end)

test("a subnet is picked from the pool, skipping used ones", function()
  local bundle = require("bottle.bundle")
  local a = bundle.pick_subnet("10.213.0.0/16", "slug-x", {})
  A.match(a.subnet, "^10%.213%.%d+%.0/24$")
  A.eq(a.gateway, a.subnet:gsub("0/24$", "1"))
  local b = bundle.pick_subnet("10.213.0.0/16", "slug-x", { a.subnet })
  A.neq(b.subnet, a.subnet)
  local c = bundle.pick_subnet("10.213.0.0/16", "slug-x", { "10.0.0.0/8" })
  A.eq(c, nil)
  local full = {}
  for i = 0, 255 do
    full[#full + 1] = string.format("10.213.%d.0/24", i)
  end
  local _, err = bundle.pick_subnet("10.213.0.0/16", "s", full)
  A.contains(err, "no free /24")
end)

test("--label names the slug; a bad label is refused", function()
  local p, done = build({}, {}, { bottles = {}, label = "review" })
  done()
  A.match(p.slug, "^review%-%x%x%x%x%x%x$")
  A.raises(function() build({}, {}, { bottles = {}, label = "Bad Label" }) end, "bad --label")
end)

test("resources are ours only under our own state root (a shared engine holds others' launches)", function()
  local names = require("bottle.names")
  local labels = names.labels({ slug = "a-123456", backend = "docker", agent = { name = "claude" },
    state = { dir = "/home/ada/.local/state/bottle/a-123456" } }, "bundle")
  A.eq(labels["io.bottle.state"], "/home/ada/.local/state/bottle/a-123456")
  A.ok(names.ours(labels, "/home/ada/.local/state/bottle"))
  A.falsy(names.ours(labels, "/home/bob/.local/state/bottle"))
  A.falsy(names.ours(labels, "/home/ada/.local/state/bot"), "a prefix that is not a directory")
  A.ok(names.ours({ ["io.bottle.slug"] = "old-123456" }, "/anywhere"), "made before the label: ours")
end)

-- bottle.ready against a scripted rt.docker: the exec it makes, and the
-- one-line error naming the daemon with the bundle's log tail.
local function with_fake_docker(exec_reply, fn)
  local saved_docker, saved_ready = package.loaded["rt.docker"], package.loaded["bottle.ready"]
  local calls = {}
  package.loaded["rt.docker"] = {
    exec = function(id, opts)
      calls[#calls + 1] = { id = id, opts = opts }
      return exec_reply()
    end,
    container_logs = function()
      return "[pipelock] load TLS CA: parse CA key: x509: failed\n[bottle-init] pipelock exited with status 1\n", ""
    end,
  }
  package.loaded["bottle.ready"] = nil
  local ok, err = pcall(fn, require("bottle.ready"), calls)
  package.loaded["rt.docker"], package.loaded["bottle.ready"] = saved_docker, saved_ready
  if not ok then
    error(err, 0)
  end
end

test("ready runs bottle-init ready in the bundle for every daemon", function()
  local bp = { bundle = { daemons = { "egress", "pipelock", "git-gate" } } }
  with_fake_docker(function() return { code = 0, stdout = "bottle-init ready: ...\n", stderr = "" } end,
    function(ready, calls)
      ready.wait({}, bp, "bundle-id", { timeout_ms = 1234 })
      A.eq(#calls, 1)
      A.eq(calls[1].id, "bundle-id")
      A.eq(table.concat(calls[1].opts.cmd, " "),
        "/usr/local/bin/bottle-init ready --timeout-ms 1234 egress pipelock git-gate")
    end)
end)

test("a daemon that is not ready fails the launch naming it, with the log tail", function()
  local bp = { bundle = { daemons = { "egress", "pipelock" } } }
  with_fake_docker(function()
    return { code = 1, stdout = "bottle-init ready: pipelock is not ready: it exited with status 1 "
      .. "(nothing listens on 127.0.0.1:8888)\n", stderr = "" }
  end, function(ready)
    local ok, err = pcall(ready.wait, {}, bp, "b")
    A.ok(not ok)
    A.ok(tostring(err.message):find("^ready: the bundle's pipelock is not ready: it exited with status 1"),
      err.message)
    A.ok(tostring(err.detail):find("load TLS CA", 1, true), err.detail)
  end)
  with_fake_docker(function() return nil, "exec: container b is not running", 409 end, function(ready)
    local ok, err = pcall(ready.wait, {}, bp, "b")
    A.ok(not ok and err.message:find("cannot check the bundle's daemons: exec: container b is not running", 1, true))
  end)
end)
