--- Scripted fakes of the engine, smolvm and the other primitives a recipe
--- touches, for `bottle test` scenarios.
--
-- They replace rt.docker, rt.proc (for the smolvm and docker executables),
-- rt.net, rt.ca and rt.time while a scenario runs. Every call is recorded
-- (kind, op, argv or arguments, the names of env values passed out of
-- band); engine and VM calls are numbered, and faults are keyed by that
-- number: fail call N, deliver a signal before call N, delay call N. The
-- smolvm fake answers as docs/smolvm.md says smolvm does (syntax, exit
-- codes, error texts) and rejects what the real one would.
local real_proc = require("rt.proc")
local real_ca = require("rt.ca")
local real_time = require("rt.time")
local real_fs = require("rt.fs")
local host = require("rt.host")

local M = {}

--- A deep copy (what a call was given, as it was then; a plan as built).
--- Keys, functions and userdata are kept by identity; cycles are kept.
local function copy(v, seen)
  if type(v) ~= "table" then
    return v
  end
  seen = seen or {}
  if seen[v] then
    return seen[v]
  end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do
    out[k] = copy(x, seen)
  end
  return out
end
M.copy = copy

local function sorted_keys(t)
  local out = {}
  for k in pairs(t or {}) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

-- ---- the recorder --------------------------------------------------------

local Rec = {}
Rec.__index = Rec

--- A recorder for one scenario run. script: the scenario's fake settings
--- and faults (see docs/recipes.md).
function M.recorder(script)
  return setmetatable({
    script = script or {},
    calls = {},
    counted = 0,
    networks = {}, -- name -> {id, subnet, labels}
    containers = {}, -- id -> {name, spec, running}
    machines = {}, -- name -> {running, execs_since_start}
    ever = { networks = {}, containers = {}, machines = {} },
    sleeps = {},
    spawned = {},
  }, Rec)
end

--- Records a call. Engine and VM calls (`counted`) get a number, and the
--- faults for that number fire: a signal is delivered before the call, a
--- delay is slept, a failure is returned as `true` (the fake then fails).
function Rec:record(call, counted)
  call.index = #self.calls + 1
  self.calls[#self.calls + 1] = call
  if not counted then
    return false
  end
  self.counted = self.counted + 1
  call.n = self.counted
  local s = self.script
  if s.signal and s.signal.before == call.n then
    host.raise(s.signal.name or "SIGINT")
    host.check_interrupt()
  end
  if s.delay and s.delay.call == call.n then
    real_time.sleep_ms(s.delay.ms or 100)
  end
  if s.fail == call.n or (type(s.fail) == "table" and s.fail[call.n]) then
    call.failed = true
    return true
  end
  return false
end

-- ---- docker ------------------------------------------------------------

local function docker_text(op, args, rec)
  local a = args[1]
  if type(a) == "table" then
    a = a.name or a.image or ""
  end
  if type(a) == "string" and rec.containers[a] then
    a = rec.containers[a].name
  end
  local text = "docker " .. op .. (a and a ~= "" and (" " .. tostring(a)) or "")
  if op == "exec" and type(args[2]) == "table" and args[2].cmd then
    text = text .. ": " .. table.concat(args[2].cmd, " ")
  end
  return text
end

local ENGINE_ERRORS = {
  network_conflict = 'network with name %s already exists',
  container_conflict = 'Conflict. The container name "/%s" is already in use by container "%s". ' ..
    "You have to remove (or rename) that container to be able to reuse that name.",
}

local DOCKER_OPS = {}

function DOCKER_OPS.ping()
  return true
end

function DOCKER_OPS.version()
  return { api = "1.41", version = "20.10.24", os = "linux", arch = "amd64" }
end

function DOCKER_OPS.network_create(rec, spec)
  local existing = rec.networks[spec.name]
  if existing then
    for k, v in pairs(spec.labels or {}) do
      if existing.labels[k] ~= v then
        return nil, "network create: " .. string.format(ENGINE_ERRORS.network_conflict, spec.name), "CONFLICT", 409
      end
    end
    return existing.id
  end
  local id = "net-" .. spec.name
  rec.networks[spec.name] = { id = id, name = spec.name, subnet = spec.subnet, labels = copy(spec.labels or {}),
    internal = spec.internal }
  rec.ever.networks[spec.name] = true
  return id
end

function DOCKER_OPS.network_remove(rec, name)
  for n, net in pairs(rec.networks) do
    if n == name or net.id == name then
      rec.networks[n] = nil
    end
  end
  return true
end

function DOCKER_OPS.network_list(rec, filter)
  local out = {}
  for _, n in ipairs(rec.script.docker and rec.script.docker.networks or {}) do
    out[#out + 1] = copy(n)
  end
  for _, name in ipairs(sorted_keys(rec.networks)) do
    local n = rec.networks[name]
    local match = true
    for k, v in pairs(filter and filter.labels or {}) do
      if n.labels[k] == nil or (v ~= "" and n.labels[k] ~= v) then
        match = false
      end
    end
    if match then
      out[#out + 1] = { id = n.id, name = n.name, labels = copy(n.labels), subnets = { n.subnet } }
    end
  end
  return out
end

function DOCKER_OPS.network_inspect(rec, name)
  local n = rec.networks[name]
  if not n then
    return nil, "network inspect: network " .. name .. " not found", "NOT_FOUND", 404
  end
  return copy(n)
end

function DOCKER_OPS.container_create(rec, spec)
  for id, c in pairs(rec.containers) do
    if c.name == spec.name then
      return nil, "container create: " .. string.format(ENGINE_ERRORS.container_conflict, spec.name, id),
        "CONFLICT", 409
    end
  end
  if spec.network and not rec.networks[spec.network] then
    return nil, "container create: network " .. spec.network .. " not found", "NOT_FOUND", 404
  end
  local id = "ctr-" .. spec.name
  rec.containers[id] = { id = id, name = spec.name, spec = copy(spec), running = false,
    networks = { spec.network } }
  rec.ever.containers[spec.name] = true
  return id
end

local function find_container(rec, id)
  local c = rec.containers[id]
  if c then
    return c
  end
  for _, x in pairs(rec.containers) do
    if x.name == id then
      return x
    end
  end
end

function DOCKER_OPS.container_start(rec, id)
  local c = find_container(rec, id)
  if not c then
    return nil, "container start: No such container: " .. tostring(id), "NOT_FOUND", 404
  end
  c.running = true
  c.execs_since_start = 0
  return true
end

function DOCKER_OPS.container_stop(rec, id)
  local c = find_container(rec, id)
  if c then
    c.running = false
  end
  return true
end

function DOCKER_OPS.container_remove(rec, id)
  local c = find_container(rec, id)
  if c then
    rec.containers[c.id] = nil
  end
  return true
end

function DOCKER_OPS.container_inspect(rec, id)
  local c = find_container(rec, id)
  if not c then
    return nil, "container inspect: No such container: " .. tostring(id), "NOT_FOUND", 404
  end
  return { Id = c.id, Name = "/" .. c.name, State = { Running = c.running } }
end

function DOCKER_OPS.container_list(rec, filter)
  local out = {}
  for _, id in ipairs(sorted_keys(rec.containers)) do
    local c = rec.containers[id]
    local match = true
    for k, v in pairs(filter and filter.labels or {}) do
      local have = (c.spec.labels or {})[k]
      if have == nil or (v ~= "" and have ~= v) then
        match = false
      end
    end
    if match then
      out[#out + 1] = { id = c.id, names = { "/" .. c.name }, image = c.spec.image,
        state = c.running and "running" or "created", labels = copy(c.spec.labels or {}) }
    end
  end
  return out
end

function DOCKER_OPS.container_logs(rec)
  local logs = rec.script.docker and rec.script.docker.logs or ""
  return logs, ""
end

function DOCKER_OPS.ports(rec, id)
  local c = find_container(rec, id)
  if not c then
    return nil, "ports: No such container: " .. tostring(id), "NOT_FOUND", 404
  end
  local out = {}
  local fixed = rec.script.docker and rec.script.docker.ports or {}
  for i, p in ipairs(c.spec.publish or {}) do
    out[p.port] = { host_ip = p.host_ip or "127.0.0.1", host_port = fixed[p.port] or (40000 + i) }
  end
  return out
end

function DOCKER_OPS.image_exists(rec, ref)
  local images = rec.script.docker and rec.script.docker.images
  return images == nil or images[ref] ~= nil
end

function DOCKER_OPS.image_inspect(rec, ref)
  local images = rec.script.docker and rec.script.docker.images
  if images and not images[ref] then
    -- The engine also finds an image by a prefix of its ID.
    for name, id in pairs(ref:match("^%x+$") and images or {}) do
      if id:gsub("^sha256:", ""):sub(1, #ref) == ref then
        return { id = id, repo_tags = { name } }
      end
    end
    return nil, "image inspect: No such image: " .. ref, "NOT_FOUND", 404
  end
  local id = (images and images[ref]) or ("sha256:" .. string.rep("ab", 32))
  return { id = id, repo_tags = { ref } }
end

function DOCKER_OPS.image_save(_, _, path)
  local ok, err = real_fs.write(path, "fake docker save archive\n", 384)
  if not ok then
    return nil, "image save: " .. err, "ENGINE_ERROR", 500
  end
  return true
end

-- The default answer to one command (or one part of a provisioning batch)
-- in a guest: success, with what the guest's tools would print where a
-- step checks it (update-ca-certificates' summary, the relays' lines).
local function default_reply(line)
  if line:find("socat TCP-LISTEN", 1, true) then
    local out, seen = {}, {}
    for svc, port in line:gmatch("([%w-]+):(%d+):/[^%s']+") do
      if not seen[svc] then
        seen[svc] = true
        out[#out + 1] = string.format("relay %s 127.0.0.1:%s ok\n", svc, port)
      end
    end
    return { code = 0, stdout = table.concat(out), stderr = "" }
  end
  if line:find("update-ca-certificates", 1, true) then
    return { code = 0, stdout = "Updating certificates in /etc/ssl/certs...\n1 added, 0 removed; done.\n", stderr = "" }
  end
  return { code = 0, stdout = "", stderr = "" }
end

local function reply_to(rec, argv, call)
  local s = rec.script
  if s.exec then
    local r = s.exec(argv, call, rec)
    if r then
      return { code = r.code or 0, stdout = r.stdout or "", stderr = r.stderr or "" }
    end
  end
  return default_reply(table.concat(argv, " "))
end

-- A provisioning batch (bottle.batch): each part is answered on its own
-- (the scenario's `exec` sees it as {"sh", "-c", fragment}, with
-- call.step naming the step) and recorded as a call "part <step>: ...";
-- the output carries the markers the launch splits it by.
local function batch_reply(rec, script, call)
  local batch = require("bottle.batch")
  local out, code = {}, 0
  for _, part in ipairs(batch.split_script(script)) do
    local pcall_ = { kind = "part", step = part.name, command = { "sh", "-c", part.fragment },
      text = "part " .. part.name .. ": " .. part.fragment, parent = call.index }
    rec:record(pcall_, false)
    local r = reply_to(rec, pcall_.command, pcall_)
    pcall_.code = r.code
    out[#out + 1] = string.format("%s begin %s\n%s%s%s%s end %s %d\n", batch.MARK, part.name, r.stdout, r.stderr,
      (r.stdout .. r.stderr):match("\n$") and "" or ((r.stdout .. r.stderr) ~= "" and "\n" or ""), batch.MARK,
      part.name, r.code)
    if r.code ~= 0 and part.fatal then
      code = r.code
      break
    end
  end
  return { code = code, stdout = table.concat(out), stderr = "" }
end

--- The reply to a command run in a guest (VM exec or container exec).
function M.exec_reply(rec, argv, call)
  if argv[1] == "sh" and argv[2] == "-c" and (argv[3] or ""):find("::bottle-step begin", 1, true) then
    return batch_reply(rec, argv[3], call)
  end
  return reply_to(rec, argv, call)
end

function DOCKER_OPS.exec(rec, id, opts, call)
  local c = find_container(rec, id)
  if not c or not c.running then
    return nil, "exec: container " .. tostring(id) .. " is not running", "CONFLICT", 409
  end
  call.argv = copy(opts.cmd)
  call.env_names = sorted_keys(opts.env)
  call.stdin = opts.stdin
  return M.exec_reply(rec, opts.cmd, call)
end

--- The fake rt.docker for a recorder.
function M.docker(rec)
  local fake = {}
  for op, fn in pairs(DOCKER_OPS) do
    fake[op] = function(...)
      local args = table.pack(...)
      local call = { kind = "docker", op = op, args = copy({ table.unpack(args, 1, args.n) }) }
      call.text = docker_text(op, args, rec)
      local custom = rec.script.docker and rec.script.docker[op]
      if rec:record(call, true) then
        return nil, op:gsub("_", " ") .. ": injected failure", "ENGINE_ERROR", 500
      end
      if type(custom) == "function" then
        return custom(...)
      end
      if op == "exec" then
        return fn(rec, args[1], args[2], call)
      end
      return fn(rec, ...)
    end
  end
  fake.reset = function() end
  return fake
end

-- ---- smolvm --------------------------------------------------------------
--
-- The rows of docs/smolvm.md that bottle relies on: syntax (`--name` only),
-- exit codes (2 for usage, 1 with `Error: ...`), states, the texts of the
-- "agent not reachable" errors, create-time env kept in the record.

local function clap_error(msg, verb)
  return { code = 2, stdout = "", stderr = "error: " .. msg .. "\n\nUsage: smolvm machine " .. (verb or "<COMMAND>") ..
    " [OPTIONS]\n\nFor more information, try '--help'.\n" }
end

local function smolvm_error(text)
  return { code = 1, stdout = "", stderr = "Error: " .. text .. "\n" }
end

local function ok(stdout)
  return { code = 0, stdout = stdout or "", stderr = "" }
end

-- Parses `machine <verb>` flags like the real CLI: returns the parsed
-- table or nil, reply (a clap-style usage error).
local function parse_flags(args, i, spec, verb)
  local out = { env = {}, labels = {}, secret_env = {}, sockets = {}, positional = {} }
  while i <= #args do
    local a = args[i]
    if a == "--" then
      out.command = table.move(args, i + 1, #args, 1, {})
      return out
    elseif spec[a] then
      local key, takes = spec[a][1], spec[a][2]
      if takes then
        local v = args[i + 1]
        if not v then
          return nil, clap_error(string.format("a value is required for '%s' but none was supplied", a), verb)
        end
        if type(out[key]) == "table" then
          table.insert(out[key], v)
        else
          out[key] = v
        end
        i = i + 1
      else
        out[key] = true
      end
    elseif a:sub(1, 1) == "-" then
      return nil, clap_error(string.format("unexpected argument '%s' found", a), verb)
    elseif spec.trailing then
      out.command = table.move(args, i, #args, 1, {})
      return out
    else
      out.positional[#out.positional + 1] = a
    end
    i = i + 1
  end
  return out
end

local ENV_FLAG = { "env", true }
local NAME = { "name", true }

local MACHINE = {
  create = { ["--name"] = NAME, ["-n"] = NAME, ["--from"] = { "from", true }, ["--image"] = { "image", true },
    ["--allow-cidr"] = { "allow_cidrs", true }, ["--label"] = { "labels", true },
    ["--mount-socket"] = { "sockets", true }, ["-e"] = ENV_FLAG, ["--env"] = ENV_FLAG, ["--net"] = { "net", false } },
  start = { ["--name"] = NAME, ["-n"] = NAME },
  stop = { ["--name"] = NAME, ["-n"] = NAME },
  delete = { ["--name"] = NAME, ["-n"] = NAME, ["--force"] = { "force", false }, ["-f"] = { "force", false } },
  exec = { ["--name"] = NAME, ["-w"] = { "workdir", true }, ["--workdir"] = { "workdir", true },
    ["-e"] = ENV_FLAG, ["--env"] = ENV_FLAG, ["--secret-env"] = { "secret_env", true },
    ["-i"] = { "interactive", false }, ["-t"] = { "tty", false }, ["-d"] = { "detach", false },
    ["--detach"] = { "detach", false }, ["--timeout"] = { "timeout", true }, trailing = true },
  ls = { ["--json"] = { "json", false } },
}

-- Resolves -e flags like the real CLI: KEY=VALUE literal, KEY forwards the
-- value from smolvm's own environment (dropped when unset).
local function resolve_env(flags, child_env)
  local out = {}
  for _, f in ipairs(flags) do
    local k, v = f:match("^([^=]+)=(.*)$")
    if k then
      out[k] = v
    elseif child_env and child_env[f] ~= nil then
      out[f] = child_env[f]
    end
  end
  return out
end

local function labels_of(list)
  local labels = {}
  for _, l in ipairs(list or {}) do
    local k, v = l:match("^([^=]+)=(.*)$")
    labels[k] = v
  end
  return labels
end

local SMOLVM = {}

function SMOLVM.ls(rec)
  local list = {}
  for _, n in ipairs(sorted_keys(rec.machines)) do
    local m = rec.machines[n]
    list[#list + 1] = { name = n, state = m.state, labels = labels_of(m.labels) }
  end
  return ok(require("bottle.json").encode(list))
end

function SMOLVM.create(rec, p, spec)
  local name = p.name
  if rec.machines[name] then
    return smolvm_error("config operation failed: create machine: machine '" .. name ..
      "' already exists or is being created")
  end
  if p.from and p.image then
    return clap_error("the argument '--from <FROM>' cannot be used with '--image <IMAGE>'", "create")
  end
  for _, sk in ipairs(p.sockets) do
    local guest = sk:match("^[^:]+:(.+)$")
    if not guest then
      return smolvm_error("config operation failed: mount-socket: expected HOST_PATH:GUEST_PATH, got '" .. sk .. "'")
    end
    if guest:sub(1, 1) ~= "/" then
      return smolvm_error("config operation failed: publish-socket: guest path '" .. guest .. "' must be absolute")
    end
  end
  rec.machines[name] = { state = "created", env = resolve_env(p.env, spec.env), allow_cidrs = p.allow_cidrs,
    from = p.from, image = p.image, labels = p.labels, sockets = p.sockets }
  rec.ever.machines[name] = true
  return ok("Created machine: " .. name .. "\n")
end

function SMOLVM.start(rec, p)
  local m = rec.machines[p.name]
  if m.state == "running" then
    return ok("Machine '" .. p.name .. "' already running (PID: 4242)\n")
  end
  m.state = "running"
  m.execs = 0
  return ok("Machine '" .. p.name .. "' running (PID: 4242)\n")
end

function SMOLVM.stop(rec, p)
  local m = rec.machines[p.name]
  if m.state ~= "running" then
    return ok("Machine '" .. p.name .. "' is not running (state: " .. m.state .. ")\n")
  end
  m.state = "stopped"
  return ok("Stopping machine '" .. p.name .. "'...\nStopped machine: " .. p.name .. "\n")
end

function SMOLVM.delete(rec, p)
  -- A running machine is stopped first.
  rec.machines[p.name] = nil
  return ok("Deleted machine: " .. p.name .. "\n")
end

local function not_reachable(name)
  return smolvm_error("agent operation failed: connect: machine '" .. name .. "' is not running. Use " ..
    "'smolvm machine start --name " .. name .. "' first.")
end

function SMOLVM.exec(rec, p, spec, call)
  local s = rec.script.smolvm or {}
  local m = rec.machines[p.name]
  if m.state ~= "running" then
    return not_reachable(p.name)
  end
  if not p.command or #p.command == 0 then
    return clap_error("the following required arguments were not provided:\n  <COMMAND>...", "exec")
  end
  if p.detach and (p.interactive or p.tty) then
    return clap_error("the argument '--detach' cannot be used with '--interactive'", "exec")
  end
  m.execs = m.execs + 1
  call.exec_n = m.execs
  -- The record's create-time env, then this exec's own on top.
  call.guest_env = {}
  for k, v in pairs(m.env) do
    call.guest_env[k] = v
  end
  for k, v in pairs(resolve_env(p.env, spec.env)) do
    call.guest_env[k] = v
  end
  for _, s2 in ipairs(p.secret_env) do
    local guest, host_var = s2:match("^([^=]+)=(.+)$")
    if not guest or not (spec.env and spec.env[host_var]) then
      return smolvm_error("config operation failed: resolve secret '" .. tostring(guest) .. "': env_unset")
    end
    call.guest_env[guest] = spec.env[host_var]
  end
  call.command = p.command
  if p.interactive and spec.interactive then
    call.agent = true
    return { code = rec.script.agent_exit or s.agent_exit or 0, stdout = "", stderr = "" }
  end
  if (s.unreachable or 0) >= m.execs then
    return smolvm_error("agent operation failed: connect to agent: Connection refused (os error 111)")
  end
  if (s.exit137 or 0) >= m.execs then
    return { code = 137, stdout = "", stderr = "" }
  end
  return M.exec_reply(rec, p.command, call)
end

function M.smolvm_reply(rec, args, spec, call)
  local s = rec.script.smolvm or {}
  if args[1] == "--version" or args[1] == "-V" then
    return ok("smolvm " .. (s.version or "1.9.3") .. "\n")
  end
  if args[1] ~= "machine" then
    return clap_error(string.format("unrecognized subcommand '%s'", tostring(args[1])))
  end
  local verb = args[2]
  if verb == "cp" then
    local name = (args[4] or ""):match("^([^:]+):")
    local m = name and rec.machines[name]
    if not m then
      return smolvm_error("vm not found: " .. tostring(name))
    end
    if m.state ~= "running" then
      return not_reachable(name)
    end
    return ok()
  end
  if not MACHINE[verb] then
    return clap_error(string.format("unrecognized subcommand '%s'", tostring(verb)))
  end
  local p, err = parse_flags(args, 3, MACHINE[verb], verb)
  if not p then
    return err
  end
  if #p.positional > 0 then
    return clap_error(string.format("unexpected argument '%s' found", p.positional[1]), verb)
  end
  if verb == "ls" then
    return SMOLVM.ls(rec)
  end
  if not p.name then
    return clap_error("the following required arguments were not provided:\n  --name <NAME>", verb)
  end
  call.machine = p.name
  if verb ~= "create" and not rec.machines[p.name] then
    return smolvm_error("vm not found: " .. p.name)
  end
  return SMOLVM[verb](rec, p, spec, call)
end

-- ---- processes -------------------------------------------------------------

--- The fake rt.proc: smolvm and docker executables are answered by the
--- fakes; anything else runs for real (and is recorded).
function M.proc(rec, smolvm_exe, base_env)
  local fake = setmetatable({}, { __index = real_proc })
  fake.run = function(spec)
    local argv = spec.argv
    local exe = argv[1]
    local extra = {}
    for k, v in pairs(spec.env or {}) do
      if base_env[k] ~= v then
        extra[#extra + 1] = k
      end
    end
    table.sort(extra)
    local call = { argv = copy(argv), env_names = extra, interactive = spec.interactive or nil, stdin = spec.stdin }
    if exe == smolvm_exe then
      call.kind = "smolvm"
      call.text = "smolvm " .. table.concat(argv, " ", 2)
      if rec:record(call, true) then
        return { code = 1, stdout = "", stderr = "Error: injected failure: smolvm " .. (argv[2] or "") .. " " ..
          (argv[3] or "") .. "\n", truncated = false }
      end
      if rec.script.smolvm and rec.script.smolvm.missing then
        return nil, exe .. ": not found", "ENOENT"
      end
      local args = table.move(argv, 2, #argv, 1, {})
      local r = M.smolvm_reply(rec, args, spec, call)
      r.truncated = false
      call.code = r.code
      return r
    elseif exe == "docker" then
      call.kind = "docker-cli"
      call.text = table.concat(argv, " ")
      call.agent = spec.interactive or nil
      if rec:record(call, true) then
        return { code = 1, stdout = "", stderr = "injected failure\n", truncated = false }
      end
      return { code = rec.script.agent_exit or 0, stdout = "", stderr = "", truncated = false }
    end
    call.kind = "proc"
    call.text = table.concat(argv, " ")
    rec:record(call, false)
    return real_proc.run(spec)
  end
  -- The smolvm executable is found wherever the scenario says it is; it is
  -- not a file, so its version is asked every time (never cached).
  fake.which = function(prog, env)
    if prog == smolvm_exe then
      if rec.script.smolvm and rec.script.smolvm.missing then
        return nil, prog .. ": not found", "ENOENT"
      end
      return prog
    end
    return real_proc.which(prog, env)
  end
  fake.self_exe = function()
    return "/fake/bin/bottle"
  end
  -- Who bottle runs as: a user (1000) unless the scenario says `uid`, so a
  -- scenario means the same whoever runs it.
  fake.ids = function()
    local uid = rec.script.uid or 1000
    return uid, uid
  end
  -- Background programs (bottle's own host relay) are recorded, counted
  -- (so faults apply) and never started.
  fake.spawn = function(spec)
    local call = { kind = "spawn", argv = copy(spec.argv), text = "spawn " .. table.concat(spec.argv, " ", 2) }
    if rec:record(call, true) then
      return nil, spec.argv[1] .. ": injected failure", "ESPAWN"
    end
    local handle = { stopped = false }
    rec.spawned[#rec.spawned + 1] = handle
    function handle.wait()
      return nil
    end
    function handle.stop()
      handle.stopped = true
      return 0
    end
    function handle.pid()
      return 4343
    end
    return handle
  end
  return fake
end

-- ---- net, ca, time ---------------------------------------------------------

function M.net(rec)
  local fake = {}
  fake.wait_tcp = function(h, port, timeout, opts)
    local call = { kind = "net", op = "wait_tcp", text = string.format("net wait_tcp %s:%d", h, port) }
    rec:record(call, false)
    local custom = rec.script.net and rec.script.net.wait_tcp
    if custom then
      return custom(h, port, timeout, opts)
    end
    return 1
  end
  fake.wait_unix = function(path, timeout)
    rec:record({ kind = "net", op = "wait_unix", text = "net wait_unix " .. path }, false)
    local custom = rec.script.net and rec.script.net.wait_unix
    if custom then
      return custom(path, timeout)
    end
    return 1
  end
  fake.free_port = function()
    return 45000
  end
  return fake
end

function M.ca(rec)
  local fake = setmetatable({}, { __index = real_ca })
  fake.mint = function(opts)
    local call = { kind = "ca", op = "mint", args = copy(opts),
      text = string.format("ca mint %s/%s", (opts.dir or ""):match("[^/]*$"), opts.name or "") }
    rec:record(call, false)
    return real_ca.mint(opts)
  end
  fake.bundle = function(opts)
    rec:record({ kind = "ca", op = "bundle", args = copy(opts), text = "ca bundle " .. (opts.out or "") }, false)
    return real_ca.bundle(opts)
  end
  return fake
end

--- rt.time whose sleep is recorded and (to keep scenarios fast) shortened:
--- a scenario can then assert that a launch slept only where it had to.
function M.time(rec)
  local fake = setmetatable({}, { __index = real_time })
  fake.sleep_ms = function(ms)
    rec.sleeps[#rec.sleeps + 1] = ms
    real_time.sleep_ms(math.min(ms, 5))
  end
  return fake
end

return M
