--- Scripted fakes of the engine, smolvm and the other primitives a recipe
--- touches, for `bottle test` scenarios.
--
-- They replace rt.docker, rt.proc (for the smolvm and docker executables),
-- rt.net, rt.ca and rt.time while a scenario runs. Every call is recorded
-- (kind, op, argv or arguments, the names of env values passed out of
-- band); engine and VM calls are numbered, and faults are keyed by that
-- number: fail call N, deliver a signal before call N, delay call N. The
-- smolvm fake parses the real CLI's syntax (current releases take
-- `--name`; `version = "0.8.2"` selects the positional 0.8 form) and
-- rejects what the real one would.
local real_proc = require("rt.proc")
local real_ca = require("rt.ca")
local real_time = require("rt.time")
local real_fs = require("rt.fs")
local host = require("rt.host")

local M = {}

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
    out[copy(k, seen)] = copy(x, seen)
  end
  return out
end

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

function DOCKER_OPS.network_connect(rec, network, container)
  if not rec.networks[network] then
    return nil, "network connect: network " .. network .. " not found", "NOT_FOUND", 404
  end
  local c = rec.containers[container]
  if c then
    c.networks[#c.networks + 1] = network
  end
  return true
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

--- The reply to a command run in a guest (VM exec or container exec).
function M.exec_reply(rec, argv, call)
  local s = rec.script
  if s.exec then
    local r = s.exec(argv, call, rec)
    if r then
      return { code = r.code or 0, stdout = r.stdout or "", stderr = r.stderr or "" }
    end
  end
  local line = table.concat(argv, " ")
  if line:find("update-ca-certificates", 1, true) then
    return { code = 0, stdout = "Updating certificates in /etc/ssl/certs...\n1 added, 0 removed; done.\n", stderr = "" }
  end
  return { code = 0, stdout = "", stderr = "" }
end

function DOCKER_OPS.exec(rec, id, opts, call)
  local c = find_container(rec, id)
  if not c or not c.running then
    return nil, "exec: container " .. tostring(id) .. " is not running", "CONFLICT", 409
  end
  call.argv = copy(opts.cmd)
  call.env_names = sorted_keys(opts.env)
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

local function clap_error(msg)
  return { code = 2, stdout = "", stderr = "error: " .. msg .. "\n\nFor more information, try '--help'.\n" }
end

-- Parses `machine <verb>` flags like the real CLI: returns the parsed
-- table or nil, reply (a clap-style usage error).
local function parse_flags(args, i, spec)
  local out = { env = {}, allow_cidrs = {}, labels = {}, secret_env = {}, positional = {} }
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
          return nil, clap_error(string.format("a value is required for '%s' but none was supplied", a))
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
      return nil, clap_error(string.format("unexpected argument '%s' found", a))
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

local function machine_specs(named)
  local name = named and { "name", true } or nil
  return {
    create = { ["--name"] = name, ["-n"] = name, ["--from"] = { "from", true }, ["--image"] = { "image", true },
      ["--allow-cidr"] = { "allow_cidrs", true }, ["--label"] = { "labels", true },
      ["-e"] = ENV_FLAG, ["--env"] = ENV_FLAG, ["--net"] = { "net", false } },
    start = { ["--name"] = { "name", true }, ["-n"] = { "name", true } },
    stop = { ["--name"] = { "name", true }, ["-n"] = { "name", true } },
    delete = { ["--name"] = name, ["-n"] = name, ["--force"] = { "force", false }, ["-f"] = { "force", false } },
    exec = { ["--name"] = { "name", true }, ["-w"] = { "workdir", true }, ["--workdir"] = { "workdir", true },
      ["-e"] = ENV_FLAG, ["--env"] = ENV_FLAG, ["--secret-env"] = { "secret_env", true },
      ["-i"] = { "interactive", false }, ["-t"] = { "tty", false },
      ["--timeout"] = { "timeout", true }, trailing = true },
    ls = { ["--json"] = { "json", false } },
  }
end

local function version_at_least(v, a, b)
  local x, y = v:match("^(%d+)%.(%d+)")
  x, y = tonumber(x), tonumber(y)
  return x > a or (x == a and y >= b)
end

-- Resolves -e flags like the real CLI: KEY=VALUE literal, KEY forwards the
-- value from smolvm's own environment (skipped when unset).
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

function M.smolvm_reply(rec, args, spec, call)
  local s = rec.script.smolvm or {}
  local version = s.version or "1.9.2"
  local named = version_at_least(version, 1, 1)
  if args[1] == "--version" then
    return { code = 0, stdout = "smolvm " .. version .. "\n", stderr = "" }
  end
  if args[1] == "pack" and args[2] == "create" then
    local p = parse_flags(args, 3, { ["--image"] = { "image", true }, ["-I"] = { "image", true },
      ["--from-vm"] = { "from_vm", true }, ["-o"] = { "output", true }, ["--output"] = { "output", true } })
    if not p or not (p.image or p.from_vm) or not p.output then
      return clap_error("pack create needs --image or --from-vm, and -o")
    end
    if p.from_vm then
      local m = rec.machines[p.from_vm]
      if not m then
        return { code = 1, stdout = "", stderr = "Error: VM '" .. p.from_vm .. "' not found\n" }
      end
      if m.running then
        return { code = 1, stdout = "", stderr = "Error: VM '" .. p.from_vm .. "' is running. Stop it first\n" }
      end
    end
    real_fs.write(p.output, "#!/bin/sh\n", 448)
    real_fs.write(p.output .. ".smolmachine", "fake packed machine of " .. (p.image or p.from_vm) .. "\n", 384)
    return { code = 0, stdout = "", stderr = "" }
  end
  if args[1] ~= "machine" then
    return clap_error(string.format("unrecognized subcommand '%s'", tostring(args[1])))
  end
  local verb = args[2]
  if verb == "cp" then
    local dst = args[4] or ""
    local name = dst:match("^([^:]+):")
    if not name or not rec.machines[name] or not rec.machines[name].running then
      return { code = 1, stdout = "", stderr = "Error: machine not running: " .. tostring(name) .. "\n" }
    end
    return { code = 0, stdout = "", stderr = "" }
  end
  local specs = machine_specs(named)
  if not specs[verb] then
    return clap_error(string.format("unrecognized subcommand '%s'", tostring(verb)))
  end
  local p, err = parse_flags(args, 3, specs[verb])
  if not p then
    return err
  end
  local name = p.name
  if (verb == "create" or verb == "delete") and not named then
    if #p.positional ~= 1 then
      return clap_error("the 0.8 form takes the machine name as one positional argument")
    end
    name = p.positional[1]
  elseif #p.positional > 0 then
    return clap_error(string.format("unexpected argument '%s' found", p.positional[1]))
  end
  call.machine = name
  if verb == "ls" then
    local list = {}
    for _, n in ipairs(sorted_keys(rec.machines)) do
      local labels = {}
      for _, l in ipairs(rec.machines[n].labels or {}) do
        local k, v = l:match("^([^=]+)=(.*)$")
        labels[k] = v
      end
      list[#list + 1] = { name = n, state = rec.machines[n].running and "running" or "stopped", labels = labels }
    end
    return { code = 0, stdout = require("bottle.json").encode(list), stderr = "" }
  end
  if not name then
    return clap_error("the following required arguments were not provided: --name <NAME>")
  end
  local m = rec.machines[name]
  if verb == "create" then
    if m then
      return { code = 1, stdout = "", stderr = "Error: machine '" .. name .. "' already exists\n" }
    end
    if not p.from and not p.image then
      return { code = 1, stdout = "", stderr = "Error: no image or --from given\n" }
    end
    if p.image and p.image:find("/", 1, true) and not version_at_least(version, 1, 1) then
      return { code = 1, stdout = "", stderr = "Error: pull image: " .. p.image .. ": not a registry reference\n" }
    end
    if #p.labels > 0 and not version_at_least(version, 1, 8) then
      return clap_error("unexpected argument '--label' found")
    end
    rec.machines[name] = { running = false, env = resolve_env(p.env, spec.env), allow_cidrs = p.allow_cidrs,
      from = p.from, labels = p.labels }
    rec.ever.machines[name] = true
    return { code = 0, stdout = "", stderr = "" }
  end
  if not m then
    return { code = 1, stdout = "", stderr = "Error: machine '" .. name .. "' not found\n" }
  end
  if verb == "start" then
    m.running = true
    m.execs = 0
    return { code = 0, stdout = "", stderr = "" }
  elseif verb == "stop" then
    m.running = false
    return { code = 0, stdout = "", stderr = "" }
  elseif verb == "delete" then
    if m.running then
      return { code = 1, stdout = "", stderr = "Error: machine '" .. name .. "' is running; stop it first\n" }
    end
    rec.machines[name] = nil
    return { code = 0, stdout = "", stderr = "" }
  elseif verb == "exec" then
    if not m.running then
      return { code = 1, stdout = "", stderr = "Error: machine '" .. name .. "' is not running\n" }
    end
    if not p.command or #p.command == 0 then
      return clap_error("the following required arguments were not provided: <COMMAND>...")
    end
    if #p.secret_env > 0 and not version_at_least(version, 1, 0) then
      return clap_error("unexpected argument '--secret-env' found")
    end
    m.execs = m.execs + 1
    call.exec_n = m.execs
    call.guest_env = resolve_env(p.env, spec.env)
    for _, s2 in ipairs(p.secret_env) do
      local guest, host_var = s2:match("^([^=]+)=(.+)$")
      if not guest or not (spec.env and spec.env[host_var]) then
        return { code = 1, stdout = "", stderr = "Error: secret-env: host variable " .. tostring(host_var) ..
          " is not set\n" }
      end
      call.guest_env[guest] = spec.env[host_var]
    end
    call.command = p.command
    if p.interactive and spec.interactive then
      call.agent = true
      return { code = rec.script.agent_exit or s.agent_exit or 0, stdout = "", stderr = "" }
    end
    if (s.exit137 or 0) >= m.execs then
      return { code = 137, stdout = "", stderr = "" }
    end
    return M.exec_reply(rec, p.command, call)
  end
end

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
    local call = { argv = copy(argv), env_names = extra, interactive = spec.interactive or nil }
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
