-- bottle.supervise: the host's side of the supervise queue, against state
-- dirs on disk, a scripted rt.docker and a scripted inventory.
local fs = require("rt.fs")
local json = require("bottle.json")
local A = require("bottle.testing.assert")

local ROUTES = '{"version": 1, "routes": [{"host": "pypi.org", "auth_scheme": null, "token_env": null, '
  .. '"matches": []}]}\n'
local PIPELOCK = "version: 1\nmode: strict\napi_allowlist:\n- pypi.org\n"

-- A world: a state root with launches, an engine that answers from a
-- script, and bottle.supervise loaded against both.
local function world(opts)
  opts = opts or {}
  local root = assert(fs.tmpdir())
  local found = {}
  local engine = { calls = {}, log = "", ping = opts.ping ~= false, reload = opts.reload or "ok" }
  local function launch(slug, agent, daemons)
    local dir = root .. "/" .. slug
    for _, d in ipairs({ dir, dir .. "/supervise", dir .. "/egress", dir .. "/pipelock" }) do
      assert(fs.mkdir_p(d, 448))
    end
    assert(fs.write(dir .. "/egress/routes.json", ROUTES, 384))
    assert(fs.write(dir .. "/pipelock/pipelock.yaml", PIPELOCK, 384))
    assert(fs.append(dir .. "/audit.jsonl", "", 384))
    found[slug] = { slug = slug, agent = agent, state_dir = dir, live = true,
      daemons = daemons or { "egress", "pipelock", "supervise" },
      containers = { { id = "bundle-" .. slug, role = "bundle", state = "running" } } }
    return dir
  end
  local docker = {
    ping = function()
      if engine.ping then
        return true
      end
      return nil, "ping: cannot reach the Docker engine at /nowhere.sock: No such file or directory", "UNREACHABLE"
    end,
    container_logs = function(id)
      engine.calls[#engine.calls + 1] = "logs " .. id
      return engine.log, ""
    end,
    container_kill = function(id, sig)
      engine.calls[#engine.calls + 1] = "kill " .. id .. " " .. sig
      if engine.reload == "ok" then
        engine.log = engine.log .. "[egress] egress: SIGHUP: reloaded 2 routes from x\n"
          .. '[pipelock] {"event":"config_reload","message":"configuration reloaded"}\n'
      elseif engine.reload == "fail" then
        engine.log = engine.log .. "[egress] egress: SIGHUP: kept the previous table (1 routes); boom\n"
      end
      return true
    end,
  }
  local saved = { docker = package.loaded["rt.docker"], inventory = package.loaded["bottle.inventory"],
    supervise = package.loaded["bottle.supervise"] }
  package.loaded["rt.docker"] = docker
  package.loaded["bottle.inventory"] = { scan = function() return found, {} end }
  package.loaded["bottle.supervise"] = nil
  local sv = require("bottle.supervise")
  local w = { root = root, engine = engine, sv = sv, launch = launch, found = found }
  function w.request(dir, id, time, tool, input, reason)
    local r = { id = id, time = time, slug = dir:match("[^/]+$"), tool = tool, input = input, reason = reason }
    assert(fs.write(dir .. "/supervise/" .. id .. ".request.json", json.encode(r), 420))
  end
  function w.done()
    package.loaded["rt.docker"] = saved.docker
    package.loaded["bottle.inventory"] = saved.inventory
    package.loaded["bottle.supervise"] = saved.supervise
    fs.rm_rf(root)
  end
  return w
end

-- Runs sv.main with its output (io.write) captured in a file.
local function main(w, opts, pos, env)
  local path = w.root .. "/stdout"
  local f = assert(io.open(path, "w"))
  io.output(f)
  local ok, code = pcall(w.sv.main, opts, pos or {}, env or { USER = "alice" })
  io.output(io.stdout)
  f:close()
  assert(ok, code)
  local out = fs.read(path)
  fs.rm_rf(path)
  return code, out
end

test("pending requests across launches, oldest first; decided and malformed ones left out", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  local b = w.launch("keen-heron-bbbbbb", "reviewer")
  w.request(a, "aaaa0002", "2026-01-01T10:00:05Z", "request_egress", { host = "x.example.org" }, "later")
  w.request(b, "bbbb0001", "2026-01-01T10:00:01Z", "request_capability", { capability = "a token" }, "fi\27[2Jrst")
  w.request(a, "aaaa0003", "2026-01-01T10:00:09Z", "request_egress", { host = "y.example.org", port = 8443 }, "done")
  assert(fs.write(a .. "/supervise/aaaa0003.decision.json", '{"decision":"denied"}', 420))
  assert(fs.write(a .. "/supervise/aaaa0004.request.json", "{ not json", 420))
  local launches = assert(w.sv.launches({}))
  A.eq(#launches, 2)
  local pending = w.sv.pending(launches)
  A.eq(#pending, 2)
  A.eq(pending[1].id, "bbbb0001")
  A.eq(pending[1].bottle, "keen-heron-bbbbbb")
  A.eq(pending[1].agent, "reviewer")
  A.eq(pending[2].id, "aaaa0002")
  A.eq(w.sv.what(pending[2]), "x.example.org")
  local code, out = main(w, { json = true })
  A.eq(code, 0)
  local list = json.decode(out)
  A.eq(#list, 2)
  A.eq(list[1].id, "bbbb0001")
  A.eq(list[1].tool, "request_capability")
  A.eq(list[1].what, "a token")
  A.eq(list[1].why, nil)
  A.eq(list[1].reason, "fi\27[2Jrst")
  code, out = main(w, { once = true })
  A.eq(code, 0)
  A.match(out, "^ID%s+BOTTLE%s+AGENT%s+AGE%s+TOOL%s+WHAT%s+WHY\n")
  A.match(out, "\nbbbb0001%s+keen%-heron%-bbbbbb%s+reviewer%s+%S+%s+request_capability%s+a token%s+fi %[2Jrst\n")
  A.eq(#w.engine.calls, 0)
  w.done()
end)

test("launches without supervise, not live, or without a queue are not asked", function()
  local w = world()
  w.launch("calm-otter-aaaaaa", "claude", { "egress", "pipelock" })
  local dead = w.launch("dead-otter-cccccc", "claude")
  w.found["dead-otter-cccccc"].live = false
  w.request(dead, "cccc0001", "2026-01-01T10:00:01Z", "request_capability", { capability = "c" }, "r")
  local code, out = main(w, { once = true })
  A.eq(code, 0)
  A.eq(out, "no live bottles with supervise\n")
  code, out = main(w, { json = true })
  A.eq(code, 0)
  A.eq(out, "[]\n")
  w.done()
end)

test("approving an egress request opens the host, reloads, then answers and audits", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_egress", { host = "files.pythonhosted.org" }, "wheels")
  local ino = fs.stat(a .. "/egress/routes.json").ino
  local code, out = main(w, {}, { "approve", "aaaa", }, { USER = "alice" })
  A.eq(code, 0)
  A.eq(out, "approved aaaa0001: request_egress files.pythonhosted.org (bottle calm-otter-aaaaaa)\n")
  A.contains(fs.read(a .. "/egress/routes.json"), '"host": "files.pythonhosted.org"')
  A.eq(fs.stat(a .. "/egress/routes.json").ino, ino)
  A.contains(fs.read(a .. "/pipelock/pipelock.yaml"), "- pypi.org\n- files.pythonhosted.org\n")
  A.eq(w.engine.calls[2], "kill bundle-calm-otter-aaaaaa SIGHUP")
  local d = json.decode(fs.read(a .. "/supervise/aaaa0001.decision.json"))
  A.eq(d.decision, "approved")
  A.eq(d.note, "")
  A.eq(d.by, "alice")
  local line = json.decode(fs.read(a .. "/audit.jsonl"))
  A.eq(line.event, "decision")
  A.eq(line.id, "aaaa0001")
  A.eq(line.tool, "request_egress")
  A.eq(line.input.host, "files.pythonhosted.org")
  A.eq(line.user, "alice")
  -- decided: no longer pending
  code = main(w, {}, { "approve", "aaaa0001" })
  A.eq(code, 1)
  w.done()
end)

test("a failed reload leaves the request pending and says why", function()
  local w = world({ reload = "fail" })
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_egress", { host = "x.example.org" }, "r")
  local code = main(w, {}, { "approve", "aaaa0001" })
  A.eq(code, 1)
  A.eq(fs.exists(a .. "/supervise/aaaa0001.decision.json"), false)
  A.eq(fs.read(a .. "/audit.jsonl"), "")
  w.done()
end)

test("a routes file that does not parse: nothing is written, nothing signalled", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  assert(fs.overwrite(a .. "/egress/routes.json", "{ broken"))
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_egress", { host = "x.example.org" }, "r")
  local code = main(w, {}, { "approve", "aaaa0001" })
  A.eq(code, 1)
  A.eq(#w.engine.calls, 0)
  A.eq(fs.read(a .. "/pipelock/pipelock.yaml"), PIPELOCK)
  A.eq(fs.exists(a .. "/supervise/aaaa0001.decision.json"), false)
  w.done()
end)

test("a host from the queue that is not a DNS name is never written", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_egress", { host = "x.org\n- evil.org" }, "r")
  A.eq(main(w, {}, { "approve", "aaaa0001" }), 1)
  A.eq(fs.read(a .. "/pipelock/pipelock.yaml"), PIPELOCK)
  A.eq(#w.engine.calls, 0)
  w.done()
end)

test("a denial changes nothing but the answer and the audit", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_egress", { host = "x.example.org" }, "r")
  local code, out = main(w, { reason = "  not today " }, { "deny", "aaaa0001" })
  A.eq(code, 0)
  A.eq(out, "denied aaaa0001: request_egress x.example.org (bottle calm-otter-aaaaaa)\n")
  A.eq(fs.read(a .. "/egress/routes.json"), ROUTES)
  A.eq(#w.engine.calls, 0)
  local d = json.decode(fs.read(a .. "/supervise/aaaa0001.decision.json"))
  A.eq(d.decision, "denied")
  A.eq(d.note, "not today")
  A.eq(json.decode(fs.read(a .. "/audit.jsonl")).decision, "denied")
  w.done()
end)

test("usage, unknown and ambiguous ids, and an unreachable engine", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "abcd0001", "2026-01-01T10:00:00Z", "request_capability", { capability = "c" }, "r")
  w.request(a, "abcd0002", "2026-01-01T10:00:01Z", "request_capability", { capability = "c" }, "r")
  A.eq(main(w, {}, { "deny", "abcd0001" }), 2)          -- deny needs --reason
  A.eq(main(w, {}, { "approve" }), 2)                  -- no id
  A.eq(main(w, {}, { "grant", "abcd0001" }), 2)        -- unknown action
  A.eq(main(w, { reason = "x" }, {}), 2)               -- --reason without an action
  A.eq(main(w, { once = true }, { "approve", "abcd0001" }), 2)
  A.eq(main(w, {}, { "approve", "abcd" }), 1)          -- ambiguous prefix
  A.eq(main(w, {}, { "approve", "ffff0000" }), 1)      -- no such request
  A.eq(main(w, {}, { "approve", "abc" }), 1)           -- too short to be a prefix
  w.done()
  w = world({ ping = false })
  A.eq(main(w, { once = true }), 1)
  w.done()
end)

-- A scripted terminal: answers in order, an editor that returns edited.
local function term(answers, edited)
  local asked = {}
  return {
    asked = asked,
    ask = function(q)
      asked[#asked + 1] = q
      return table.remove(answers, 1)
    end,
    edit = function(text)
      asked[#asked + 1] = "edit:" .. text
      return edited
    end,
  }
end

local function loop(w, t)
  local path = w.root .. "/stdout"
  local f = assert(io.open(path, "w"))
  io.output(f)
  local ok, code = pcall(w.sv.loop, assert(w.sv.launches({})), { USER = "bob" }, t)
  io.output(io.stdout)
  f:close()
  assert(ok, code)
  local out = fs.read(path)
  fs.rm_rf(path)
  return code, out
end

test("the terminal loop: skip, deny without then with a reason, approve, oldest first", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_capability", { capability = "a token" }, "first")
  w.request(a, "aaaa0002", "2026-01-01T10:00:01Z", "request_egress", { host = "x.example.org" }, "second")
  w.request(a, "aaaa0003", "2026-01-01T10:00:02Z", "request_egress", { host = "y.example.org" }, "third")
  local t = term({ "s", "d", "", "d", "not now", "a", "ok" })
  local code, out = loop(w, t)
  A.eq(code, 0)
  A.match(out, "^\naaaa0001  bottle calm%-otter%-aaaaaa  agent claude")
  A.contains(out, "  request_capability: a token\n  why: first\n")
  A.contains(out, "denied aaaa0002\n")
  A.contains(out, "approved aaaa0003\n")
  A.contains(out, "no more pending requests\n")
  A.eq(t.asked[1], "[a]pprove, [d]eny, [s]kip, [q]uit? ")
  A.eq(t.asked[2], "[a]pprove, [e]dit the host and approve, [d]eny, [s]kip, [q]uit? ")
  A.eq(t.asked[3], "reason (required): ")
  A.eq(fs.exists(a .. "/supervise/aaaa0001.decision.json"), false, "skipped stays pending")
  A.eq(json.decode(fs.read(a .. "/supervise/aaaa0002.decision.json")).note, "not now")
  A.contains(fs.read(a .. "/pipelock/pipelock.yaml"), "- y.example.org\n")
  A.eq(fs.read(a .. "/pipelock/pipelock.yaml"):find("x.example.org", 1, true), nil)
  w.done()
end)

test("the terminal loop: an edited host is what is opened, and the agent is told", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_egress", { host = "www.example.org" }, "docs")
  local t = term({ "e", "", "q" }, "# comment\n  Docs.Example.org \n")
  local code = loop(w, t)
  A.eq(code, 0)
  A.contains(t.asked[2], "edit:# the host to open")
  A.contains(t.asked[2], "\nwww.example.org\n")
  local pl = fs.read(a .. "/pipelock/pipelock.yaml")
  A.contains(pl, "- docs.example.org\n")
  A.eq(pl:find("www.example.org", 1, true), nil)
  local d = json.decode(fs.read(a .. "/supervise/aaaa0001.decision.json"))
  A.eq(d.decision, "approved")
  A.eq(d.input.host, "docs.example.org")
  A.eq(d.note, "approved docs.example.org instead of www.example.org")
  local line = json.decode(fs.read(a .. "/audit.jsonl"))
  A.eq(line.input.host, "www.example.org")
  A.eq(line.approved_input.host, "docs.example.org")
  A.eq(line.user, "bob")
  w.done()
end)

test("the terminal loop: a bad edited host approves nothing; EOF ends the loop", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_egress", { host = "www.example.org" }, "docs")
  local code = loop(w, term({ "e" }, "not a host\n"))
  A.eq(code, 0)
  A.eq(fs.exists(a .. "/supervise/aaaa0001.decision.json"), false)
  A.eq(fs.read(a .. "/pipelock/pipelock.yaml"), PIPELOCK)
  w.done()
end)

test("a request decided meanwhile is not decided again", function()
  local w = world()
  local a = w.launch("calm-otter-aaaaaa", "claude")
  w.request(a, "aaaa0001", "2026-01-01T10:00:00Z", "request_egress", { host = "x.example.org" }, "r")
  local r = w.sv.pending(assert(w.sv.launches({})))[1]
  assert(fs.write(a .. "/supervise/aaaa0001.decision.json", '{"decision":"denied","note":"n"}', 420))
  local ok, err = w.sv.decide(r, "approved", "", { USER = "bob" })
  A.eq(ok, nil)
  A.contains(err, "decided meanwhile")
  A.eq(fs.read(a .. "/pipelock/pipelock.yaml"), PIPELOCK)
  A.eq(#w.engine.calls, 0)
  w.done()
end)
