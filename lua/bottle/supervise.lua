--- `bottle supervise`: the human's side of the supervise MCP server.
--
-- Each live launch with supervise on has a queue dir in its state dir (the
-- bundle's /var/lib/bottle/supervise). The server writes <id>.request.json
-- there and waits for <id>.decision.json, which only this module writes,
-- after it has applied the decision: an approved request_egress host is
-- added to the launch's routes and pipelock allowlist (bottle.grant), the
-- bundle gets SIGHUP (bottle-init passes it to egress and pipelock), and
-- their reload lines are awaited in the bundle log, so the agent hears
-- "approved" only once the host is open. Every decision is appended to the
-- state dir's audit.jsonl, where the server appends the requests. Approvals
-- last for the launch; no manifest is ever edited.
local docker = require("rt.docker")
local fs = require("rt.fs")
local proc = require("rt.proc")
local time = require("rt.time")
local json = require("bottle.json")
local grant = require("bottle.grant")
local ui = require("bottle.ui")

local M = {}

local RELOAD_WAIT_MS = 5000

-- Seconds since the epoch of an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SSZ).
local function epoch(iso)
  local y, mo, d, h, mi, s = tostring(iso):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)Z$")
  if not y then
    return nil
  end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then
    y = y - 1
  end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + tonumber(d) - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

local function iso_now()
  return os.date("!%Y-%m-%dT%H:%M:%SZ", time.wall())
end

local function age(iso)
  return ui.age(epoch(iso))
end

local function read_json(path)
  local text = fs.read(path)
  if not text then
    return nil
  end
  local v = json.decode(text)
  return type(v) == "table" and v or nil
end

--- Live launches whose bundle runs supervise: { slug, agent, state_dir,
--- bundle (container id), daemons }. nil, message when the engine does not
--- answer (nothing could be decided without it).
---@param env table
function M.launches(env)
  local ok, err = docker.ping()
  if not ok then
    return nil, "cannot reach the docker engine: " .. tostring(err)
  end
  local found = require("bottle.inventory").scan(env)
  local out = {}
  for _, e in pairs(found) do
    local bundle
    for _, c in ipairs(e.containers) do
      if c.role == "bundle" and c.state == "running" then
        bundle = c.id
      end
    end
    local has_supervise = false
    for _, d in ipairs(e.daemons) do
      has_supervise = has_supervise or d == "supervise"
    end
    if e.live and e.state_dir and has_supervise and fs.exists(e.state_dir .. "/supervise") then
      out[#out + 1] = { slug = e.slug, agent = e.agent, state_dir = e.state_dir, bundle = bundle,
        daemons = e.daemons }
    end
  end
  table.sort(out, function(a, b)
    return a.slug < b.slug
  end)
  return out
end

local function state_of(launch)
  local dir = launch.state_dir
  return { dir = dir, queue = dir .. "/supervise", audit = dir .. "/audit.jsonl",
    egress_routes = dir .. "/egress/routes.json", pipelock_yaml = dir .. "/pipelock/pipelock.yaml" }
end

--- The requests of one launch: pending (no decision yet) and decided ids.
local function requests_of(launch)
  local st = state_of(launch)
  local pending = {}
  for _, name in ipairs(fs.list(st.queue) or {}) do
    local id = name:match("^([0-9a-f]+)%.request%.json$")
    if id and not fs.exists(st.queue .. "/" .. id .. ".decision.json") then
      local r = read_json(st.queue .. "/" .. name)
      if r and r.id == id and type(r.input) == "table" then
        r.bottle, r.agent, r.launch = launch.slug, launch.agent, launch
        pending[#pending + 1] = r
      end
    end
  end
  return pending
end

--- Pending requests across the launches, oldest first.
---@param launches table
function M.pending(launches)
  local all = {}
  for _, l in ipairs(launches) do
    for _, r in ipairs(requests_of(l)) do
      all[#all + 1] = r
    end
  end
  table.sort(all, function(a, b)
    if a.time ~= b.time then
      return tostring(a.time) < tostring(b.time)
    end
    return a.id < b.id
  end)
  return all
end

--- What a request asks for, in one short line.
function M.what(r)
  if r.tool == "request_egress" then
    return tostring(r.input.host) .. (r.input.port and (":" .. tostring(r.input.port)) or "")
  end
  return tostring(r.input.capability)
end

-- The egress routes file of a launch, checked the way egress loads it
-- (enough to see it will not keep the old table on the next reload).
local function routes_problem(launch)
  local path = state_of(launch).egress_routes
  local text = fs.read(path)
  local t = text and json.decode(text)
  if type(t) ~= "table" or type(t.routes) ~= "table" then
    return string.format("bottle %s: its egress routes file %s does not parse; egress keeps its previous "
      .. "table until it does", launch.slug, path)
  end
end

local function count(s, needle)
  local n, at = 0, 1
  while true do
    local i = s:find(needle, at, true)
    if not i then
      return n
    end
    n, at = n + 1, i + #needle
  end
end

-- The reload lines each daemon prints: { daemon, ok needle, failed needle }.
local RELOAD_LINES = {
  { "egress", "egress: SIGHUP: reloaded", "egress: SIGHUP: kept the previous table" },
  -- pipelock v2.3.0: audit event "configuration reloaded" on success,
  -- "pipelock: config reload failed: ..." on stderr (docs/bundle.md)
  { "pipelock", "configuration reloaded", "config reload failed" },
}

local function bundle_log(id)
  local out, err = docker.container_logs(id, { tail = 5000 })
  if not out then
    return nil, err
  end
  return out .. "\n" .. err
end

local function failed_line(text, needle)
  local last
  for line in text:gmatch("[^\n]+") do
    if line:find(needle, 1, true) then
      last = line
    end
  end
  return last
end

--- SIGHUP to the launch's bundle, then waits for each reloading daemon's
--- line in its log. Returns true, or nil and what went wrong.
function M.reload(launch)
  if not launch.bundle then
    return nil, "bottle " .. launch.slug .. " has no running bundle"
  end
  local watch = {}
  for _, r in ipairs(RELOAD_LINES) do
    for _, d in ipairs(launch.daemons) do
      if d == r[1] then
        watch[#watch + 1] = r
      end
    end
  end
  local before, err = bundle_log(launch.bundle)
  if not before then
    return nil, "bundle log: " .. tostring(err)
  end
  local base = {}
  for i, r in ipairs(watch) do
    base[i] = { count(before, r[2]), count(before, r[3]) }
  end
  local ok, kerr = docker.container_kill(launch.bundle, "SIGHUP")
  if not ok then
    return nil, "SIGHUP to the bundle: " .. tostring(kerr)
  end
  local deadline = time.now_ms() + RELOAD_WAIT_MS
  local done = {}
  while true do
    local text = bundle_log(launch.bundle) or ""
    local left = 0
    for i, r in ipairs(watch) do
      if not done[i] then
        if count(text, r[3]) > base[i][2] then
          return nil, string.format("%s did not reload: %s", r[1], failed_line(text, r[3]))
        elseif count(text, r[2]) > base[i][1] then
          done[i] = true
        else
          left = left + 1
        end
      end
    end
    if left == 0 then
      return true
    end
    if time.now_ms() > deadline then
      local missing = {}
      for i, r in ipairs(watch) do
        if not done[i] then
          missing[#missing + 1] = r[1]
        end
      end
      -- A daemon's log line may sit in its output buffer: not a failure,
      -- but worth saying.
      ui.warn("no reload line from %s within %d s yet (see the bundle log: docker logs %s)",
        table.concat(missing, " and "), RELOAD_WAIT_MS // 1000, launch.bundle:sub(1, 12))
      return true
    end
    time.sleep_ms(200)
  end
end

local function user(env)
  return env.USER or env.LOGNAME or "?"
end

--- Decides one request: applies an approved egress host, writes the
--- decision the server waits for, appends the audit line.
---@param r table a pending request (from M.pending)
---@param decision string "approved" | "denied"
---@param note string
---@param env table
---@param input? table what is approved when the human edited it ({host=} for request_egress)
---@return boolean|nil, string|nil message
function M.decide(r, decision, note, env, input)
  local st = state_of(r.launch)
  input = input or r.input
  -- Two humans (or terminals) deciding at once: one read-modify-write of
  -- the launch's files at a time, and a request is decided once.
  local held <close>, lerr = fs.lock(st.dir .. "/supervise.lock")
  if not held then
    return nil, lerr
  end
  if fs.exists(st.queue .. "/" .. r.id .. ".decision.json") then
    return nil, string.format("request %s (bottle %s) was decided meanwhile", r.id, r.bottle)
  end
  if decision == "approved" and r.tool == "request_egress" then
    local changed, err = grant.add_host(st, input.host)
    if not changed then
      return nil, string.format("request %s (bottle %s): %s", r.id, r.bottle, err)
    end
    if changed.routes or changed.pipelock then
      local ok, rerr = M.reload(r.launch)
      if not ok then
        return nil, string.format("request %s (bottle %s): %s; the request stays pending", r.id, r.bottle, rerr)
      end
    end
  end
  local by = user(env)
  local now = iso_now()
  local d = { id = r.id, decision = decision, note = note, by = by, time = now, input = input }
  local ok, err = fs.write(st.queue .. "/" .. r.id .. ".decision.json", json.encode(d) .. "\n", 420)
  if not ok then
    return nil, err
  end
  local line = { event = "decision", id = r.id, time = now, slug = r.bottle, tool = r.tool, input = r.input,
    decision = decision, note = note, user = by }
  if input ~= r.input then
    line.approved_input = input
  end
  ok, err = fs.append(st.audit, json.encode(line) .. "\n", 384)
  if not ok then
    return nil, "audit: " .. err
  end
  return true
end

-- Text from the queue, made safe for a terminal: no control characters
-- (no escape sequences), one line.
local function clean(v)
  return (tostring(v):gsub("%c", " "))
end

local function find(pending, id)
  local hits = {}
  for _, r in ipairs(pending) do
    if r.id == id or (#id >= 4 and r.id:sub(1, #id) == id) then
      hits[#hits + 1] = r
    end
  end
  return hits
end

local function as_json(r)
  return { id = r.id, bottle = r.bottle, agent = r.agent or json.null, time = r.time, age = age(r.time),
    tool = r.tool, input = r.input, what = M.what(r), reason = r.reason }
end

local function print_table(pending)
  io.write(string.format("%-9s %-24s %-10s %-5s %-18s %-30s %s\n", "ID", "BOTTLE", "AGENT", "AGE", "TOOL",
    "WHAT", "WHY"))
  for _, r in ipairs(pending) do
    io.write(string.format("%-9s %-24s %-10s %-5s %-18s %-30s %s\n", r.id, r.bottle, r.agent or "?",
      age(r.time), clean(r.tool), clean(M.what(r)), clean(r.reason)))
  end
end

local function decide_one(pending, id, decision, note, env, as_json_out)
  local hits = find(pending, id)
  if #hits == 0 then
    ui.error("no pending request %s (see: bottle supervise --once)", id)
    return 1
  elseif #hits > 1 then
    ui.error("request id %s is ambiguous; give more of it", id)
    return 1
  end
  local r = hits[1]
  local ok, err = M.decide(r, decision, note, env)
  if not ok then
    ui.error("%s", err)
    return 1
  end
  if as_json_out then
    local out = as_json(r)
    out.decision, out.note = decision, note
    io.write(json.encode(out), "\n")
  else
    io.write(string.format("%s %s: %s %s (bottle %s)\n", decision, r.id, clean(r.tool), clean(M.what(r)), r.bottle))
  end
  return 0
end

-- The terminal: a question on stderr, one line from stdin.
local function terminal_ask(q)
  io.stderr:write(q)
  io.stderr:flush()
  return io.stdin:read("l")
end

-- $VISUAL / $EDITOR (run by sh, as git does, so "code -w" works) on a file
-- holding text; returns the edited text, or nil, message.
local function terminal_edit(text, env)
  local dir, err = fs.tmpdir()
  if not dir then
    return nil, err
  end
  local path = dir .. "/request.txt"
  local result
  local ok
  ok, err = fs.write(path, text, 384)
  if ok then
    local editor = env.VISUAL or env.EDITOR or "vi"
    local r, rerr = proc.run({ argv = { "sh", "-c", editor .. ' "$1"', "sh", path }, env = env, interactive = true })
    if not r then
      err = rerr
    elseif r.code ~= 0 then
      err = string.format("%s exited with status %d", editor, r.code)
    else
      result, err = fs.read(path)
    end
  end
  fs.rm_rf(dir)
  return result, err
end

-- The host named in an edited buffer: its first line that is neither
-- empty nor a # comment.
local function edited_host(text)
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local v = line:match("^%s*(.-)%s*$")
    if v ~= "" and v:sub(1, 1) ~= "#" then
      return v:lower()
    end
  end
end

--- The terminal loop: each pending request in turn, oldest first:
--- approve, approve an edited host (request_egress, in $EDITOR), deny with
--- a reason, skip, quit. Requests that arrive meanwhile are asked too.
---@param launches table
---@param env table
---@param term? table { ask = fn(question) -> line|nil, edit = fn(text, env) -> text|nil, msg }
---@return integer exit code
function M.loop(launches, env, term)
  term = term or { ask = terminal_ask, edit = terminal_edit }
  local seen = {}
  while true do
    local r
    for _, p in ipairs(M.pending(launches)) do
      if not seen[p.id] then
        r = p
        break
      end
    end
    if not r then
      io.write("no more pending requests\n")
      return 0
    end
    seen[r.id] = true
    io.write(string.format("\n%s  bottle %s  agent %s  %s ago\n  %s: %s\n  why: %s\n", r.id, r.bottle,
      r.agent or "?", age(r.time), clean(r.tool), clean(M.what(r)), clean(r.reason)))
    local egress = r.tool == "request_egress"
    local choices = egress and "[a]pprove, [e]dit the host and approve, [d]eny, [s]kip, [q]uit? "
      or "[a]pprove, [d]eny, [s]kip, [q]uit? "
    while true do
      local a = term.ask(choices)
      if a == nil then
        io.write("\n")
        return 0
      end
      a = a:lower():match("^%s*(%a)")
      if a == "q" then
        return 0
      elseif a == "s" then
        break
      elseif a == "a" or a == "d" or (a == "e" and egress) then
        local input
        if a == "e" then
          local text, err = term.edit("# the host to open for this launch (one line; the agent asked for it)\n"
            .. r.input.host .. "\n", env)
          local host = text and edited_host(text)
          local problem = host and grant.host_problem(host)
          if not text then
            ui.error("editor: %s", err)
          elseif not host then
            ui.error("no host in the edited text; nothing approved")
          elseif problem then
            ui.error("%s; nothing approved", problem)
          else
            input = { host = host, port = r.input.port }
          end
        end
        if a ~= "e" or input then
          local note = term.ask(a == "d" and "reason (required): " or "note for the agent (optional): ") or ""
          note = note:match("^%s*(.-)%s*$")
          if a == "d" and note == "" then
            ui.error("a denial needs a reason")
          else
            local decision = a == "d" and "denied" or "approved"
            if input and input.host ~= r.input.host then
              note = "approved " .. input.host .. " instead of " .. r.input.host
                .. (note ~= "" and ("; " .. note) or "")
            end
            local ok, err = M.decide(r, decision, note, env, input)
            if ok then
              io.write(decision, " ", r.id, "\n")
              break
            end
            ui.error("%s", err)
          end
        end
      end
    end
  end
end

--- `bottle supervise [--json] [--once]`, `bottle supervise approve|deny ID
--- [--reason TEXT]`.
---@param opts table { json, once, reason }
---@param pos string[]
---@param env? table
---@return integer exit code
function M.main(opts, pos, env)
  env = env or proc.environ()
  local action, id = pos[1], pos[2]
  local function usage(fmt, ...)
    ui.error(fmt, ...)
    io.stderr:write("usage: bottle supervise [--json] [--once] | approve ID [--reason TEXT] | deny ID --reason TEXT\n")
    return 2
  end
  if action ~= nil and action ~= "approve" and action ~= "deny" then
    return usage("unknown supervise action '%s' (approve, deny)", action)
  end
  if action and not id then
    return usage("bottle supervise %s needs a request ID", action)
  end
  if action == "deny" and not (opts.reason and opts.reason:match("%S")) then
    return usage("bottle supervise deny needs --reason TEXT (the agent is told why)")
  end
  if not action and opts.reason then
    return usage("--reason goes with approve or deny")
  end
  if action and opts.once then
    return usage("--once goes with the listing, not with %s", action)
  end
  local launches, err = M.launches(env)
  if not launches then
    ui.error("%s", err)
    return 1
  end
  for _, l in ipairs(launches) do
    local problem = routes_problem(l)
    if problem then
      ui.warn("%s", problem)
    end
  end
  if action then
    return decide_one(M.pending(launches), id, action == "approve" and "approved" or "denied",
      (opts.reason or ""):match("^%s*(.-)%s*$"), env, opts.json)
  end
  if #launches == 0 then
    if opts.json then
      io.write("[]\n")
    else
      io.write("no live bottles with supervise\n")
    end
    return 0
  end
  local pending = M.pending(launches)
  if opts.json then
    local out = json.array()
    for _, r in ipairs(pending) do
      out[#out + 1] = as_json(r)
    end
    io.write(json.encode(out, true), "\n")
    return 0
  end
  if opts.once or not ui.interactive() then
    if #pending == 0 then
      io.write("no pending requests\n")
    else
      print_table(pending)
    end
    return 0
  end
  return M.loop(launches, env)
end

return M
