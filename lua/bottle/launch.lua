--- The launch steps every recipe shares: preflight, state dir,
--- network, CAs, bundle, readiness, the guest and provisioning.
--
-- The plan (bottle.plan) is decided before anything exists and never
-- changes afterwards. What the launch learns and makes on the way lives in
-- the launch record: a table created by launch.start and passed to every
-- step (also reachable as ctx.launch and target.rec):
--
--   rec.plan        the plan (read only)
--   rec.answers     NAME -> value of the bottle's `?` env entries
--   rec.networks    key -> { name, id, subnet, gateway, ip }
--   rec.cas         daemon -> { cert, key, pem } minted for this launch
--   rec.bundle      { id, name } of the sidecar bundle
--   rec.host_ports  container port -> host port (backends that publish)
--   rec.urls        { proxy, git_gate, supervise } as the guest dials them
--   rec.guest_env   the guest's env entries { name, value, secret }
--   rec.clean_exit  true once the agent exited 0
--
-- Every step that creates a resource registers its cleanup on ctx.scope the
-- moment the resource exists, so an error or a signal at any point unwinds
-- exactly what was made, newest first. Read recipes/smolmachines.lua for
-- the order.
local docker = require("rt.docker")
local ca = require("rt.ca")
local fs = require("rt.fs")
local host = require("rt.host")
local net = require("rt.net")
local proc = require("rt.proc")
local term = require("rt.term")
local errors = require("bottle.errors")
local ui = require("bottle.ui")
local plan_mod = require("bottle.plan")
local bundle = require("bottle.bundle")
local defaults = require("bottle.defaults")
local environment = require("bottle.environment")
local recipes = require("bottle.recipes")
local paths = require("bottle.paths")
local names = require("bottle.names")
local target_mod = require("bottle.target")
local batch = require("bottle.batch")

local M = {}

--- Milliseconds the bundle's daemons may take to come up.
M.PORT_TIMEOUT_MS = 30000

local must = errors.must

--- `--dry-run`: the summary on stderr, with --json the plan on stdout.
function M.dry_run(ctx, plan)
  ui.info("%s", plan_mod.summary(plan))
  if ctx.opts.json then
    io.stdout:write(plan_mod.to_json(plan), "\n")
  end
  return 0
end

local function ask_secret(question, name)
  local v, err = term.ask_secret(question .. " (" .. name .. "): ")
  if v == nil and err then
    errors.raise(err)
  end
  return v
end

--- Prints the preflight summary and asks `launch this agent? [y/N]` (unless
--- --yes). Returns false when the user declined (the recipe then exits 0
--- having created nothing).
function M.confirm(ctx, plan)
  ui.info("%s", plan_mod.summary(plan))
  if ctx.opts.yes then
    return true
  end
  if not (ctx.interactive or ui.interactive)() then
    errors.raise("not launching: there is no terminal to confirm on; pass --yes to launch without asking")
  end
  if not (ctx.confirm or ui.confirm)("launch this agent?") then
    ui.info("aborted by user")
    return false
  end
  return true
end

--- A new launch record for a plan (see the header); also ctx.launch.
---@return table rec
function M.record(ctx, plan, answers)
  local rec = { plan = plan, answers = answers or {}, networks = {}, cas = {}, urls = {}, guest_env = {},
    clean_exit = false }
  ctx.launch = rec
  M.resolve_guest_env(rec)
  return rec
end

--- The common opening of a launch: plan; for --dry-run print it and stop;
--- run the backend's checks (nothing is asked before they pass); confirm;
--- ask the bottle's `?` values. Returns the launch record, or nil when the
--- recipe should return 0 having created nothing (a dry run, a declined
--- prompt).
---@param ctx table
---@param backend string the backend's name (bottle.target.<name>)
---@return table|nil rec
function M.start(ctx, backend)
  local plan = plan_mod.build(ctx, backend)
  if ctx.opts.dry_run then
    M.dry_run(ctx, plan)
    return nil
  end
  ui.step("checks", target_mod.load(backend).check, ctx, plan)
  if not M.confirm(ctx, plan) then
    return nil
  end
  local answers = environment.ask(plan.env, ctx.ask_secret or ask_secret)
  return M.record(ctx, plan, answers)
end

--- Writes the state dir. It is removed at the end after a clean run (or an
--- interrupt) and kept after a failure, for inspection: the hint names it.
function M.state_dir(ctx, rec)
  local plan = rec.plan
  plan_mod.materialize(plan)
  local dir = plan.state.dir
  ctx.scope:defer(function()
    -- A removal that failed above left something that only this dir's
    -- slug still names for `bottle cleanup`: keep it then.
    if ctx.scope:failures() == 0 and (rec.clean_exit or host.signal() ~= 0) then
      must(fs.rm_rf(dir))
    else
      rec.kept = true
      ui.info("kept %s for inspection (bottle cleanup removes it)", paths.pretty(ctx.env, dir))
    end
  end)
end

local function used_subnets()
  local used = {}
  for _, n in ipairs(must(docker.network_list({}))) do
    for _, s in ipairs(n.subnets or {}) do
      used[#used + 1] = s
    end
  end
  return used
end

--- Creates a bridge network with a /24 picked from the pool (skipping
--- subnets the engine already uses), registers its removal and records it
--- as rec.networks[opts.key].
---@param opts table { key, role (name part: "network", "upstream"), internal = bool }
---@return table { name, id, subnet, gateway, ip }
function M.network(ctx, rec, opts)
  local plan = rec.plan
  local pool = ctx.env.BOTTLE_SUBNET_POOL or defaults.SUBNET_POOL
  local name = names.resource(opts.role, plan.slug)
  local salt = opts.role == "network" and "" or ("/" .. opts.role)
  local last_err
  for _ = 1, 3 do
    local pick = must(bundle.pick_subnet(pool, plan.slug .. salt, used_subnets()))
    local id, err = docker.network_create({
      name = name,
      subnet = pick.subnet,
      gateway = pick.gateway,
      internal = opts.internal or false,
      labels = names.labels(plan, "network"),
    })
    if id then
      ctx.scope:defer(function()
        must(docker.network_remove(name))
      end)
      pick.name, pick.id = name, id
      rec.networks[opts.key] = pick
      return pick
    end
    last_err = err
    -- Another launch may have taken the subnet between list and create.
    if not tostring(err):lower():find("overlap", 1, true) then
      break
    end
  end
  errors.raise("network: " .. tostring(last_err))
end

--- Mints the CAs the plan names (pipelock's always, egress's when egress is
--- in the agent's path) and egress's upstream trust (system roots, plus
--- pipelock's CA when pipelock is egress's next hop).
function M.cas(ctx, rec)
  local plan = rec.plan
  local st = plan.state
  local dirs = { pipelock = st.pipelock_dir, egress = st.egress_dir }
  for _, daemon in ipairs(plan.cas) do
    rec.cas[daemon] = must(ca.mint({ dir = dirs[daemon], name = "ca", common_name = "bottle " .. daemon .. " " ..
      plan.slug }))
  end
  local extra = plan.extra_cas or {}
  if rec.cas.egress then
    local trust = {}
    if plan.egress_upstream == "pipelock" then
      trust[1] = rec.cas.pipelock.cert
    end
    table.move(extra, 1, #extra, #trust + 1, trust)
    must(ca.bundle({ out = st.egress_upstream_ca, extra = trust }))
  end
  if #extra > 0 then
    must(ca.bundle({ out = st.upstream_ca, extra = extra }))
  end
  return rec.cas
end

local function publish_list(ports)
  local out = {}
  for _, p in ipairs(ports) do
    out[#out + 1] = { port = p, host_ip = "127.0.0.1" }
  end
  return out
end

--- Creates and starts the sidecar bundle on rec.networks[opts.network];
--- registers its removal; records rec.bundle.
---@param opts table { network = key }
function M.bundle(ctx, rec, opts)
  local plan = rec.plan
  local spec = plan.bundle
  local main = rec.networks[opts.network]
  local binds = {}
  for _, v in ipairs(spec.volumes) do
    binds[#binds + 1] = { host = v.host, container = v.container, ro = v.ro }
  end
  local id = must(docker.container_create({
    name = spec.name,
    image = spec.image,
    env = bundle.env_values(spec),
    labels = spec.labels,
    network = main.name,
    ip = main.ip,
    binds = binds,
    publish = #spec.publish > 0 and publish_list(spec.publish) or nil,
    extra_hosts = #plan.extra_hosts > 0 and plan.extra_hosts or nil,
  }))
  ctx.scope:defer(function()
    must(docker.container_remove(id, { force = true, volumes = true }))
  end)
  must(docker.container_start(id))
  rec.bundle = { id = id, name = spec.name }
  return id
end

local function log_tail(id)
  local out, err = docker.container_logs(id, { tail = 30 })
  return errors.tail(((out or "") .. (err or "")), 30)
end

--- Looks the published host ports up (one inspect) and waits until each
--- accepts TCP; records rec.host_ports (container port -> host port).
function M.ports(ctx, rec)
  local plan = rec.plan
  local id = rec.bundle.id
  local ports = must(docker.ports(id))
  local out = {}
  for _, p in ipairs(plan.bundle.publish) do
    local hp = ports[p]
    if not hp then
      errors.raise(string.format("ports: the bundle publishes no host port for %d", p), log_tail(id))
    end
    out[p] = hp.host_port
  end
  for _, p in ipairs(plan.bundle.publish) do
    local ok, err = net.wait_tcp("127.0.0.1", out[p], M.PORT_TIMEOUT_MS)
    if not ok then
      errors.raise(string.format("ports: the bundle's %s port (%d -> 127.0.0.1:%d) never came up: %s",
        M.daemon_of(p), p, out[p], err), log_tail(id))
    end
  end
  rec.host_ports = out
  return out
end

--- Waits until the bundle's daemons listen (checked from inside it by
--- bottle.ready).
function M.wait_in_bundle(ctx, rec)
  require("bottle.ready").wait(ctx, rec.plan, rec.bundle.id, { timeout_ms = M.PORT_TIMEOUT_MS })
end

--- Makes the guest's sockets answer (plan.sockets): in socket mode
--- "bundle" the bundle's relay creates them once its daemons are up; in
--- mode "host" bottle relays them itself (`bottle __relay`, stopped at
--- teardown) to the bundle's published loopback ports. Either way every
--- socket accepts a connection before this returns.
function M.sockets(ctx, rec)
  local plan = rec.plan
  local waited_for
  if plan.socket_mode == "host" then
    local ports = M.ports(ctx, rec)
    local argv = { must(proc.self_exe()), "__relay" }
    for _, sk in ipairs(plan.sockets) do
      argv[#argv + 1] = sk.host .. "=127.0.0.1:" .. ports[sk.port]
    end
    local log = plan.state.dir .. "/relay.log"
    local relay = must(proc.spawn({ argv = argv, log = log }))
    ctx.scope:defer(function()
      relay:stop()
    end)
    waited_for = function()
      local code = relay:wait(0)
      return code and string.format("bottle's relay exited %d", code), errors.tail(fs.read(log))
    end
  else
    M.wait_in_bundle(ctx, rec)
    waited_for = function()
      return "the bundle's relay did not make it", log_tail(rec.bundle.id)
    end
  end
  for _, sk in ipairs(plan.sockets) do
    local ok, err = net.wait_unix(sk.host, M.PORT_TIMEOUT_MS)
    if not ok then
      local why, detail = waited_for()
      errors.raise(string.format("sockets: %s's socket %s does not answer: %s%s", sk.service,
        paths.pretty(ctx.env, sk.host), err, why and ("; " .. why) or ""), detail)
    end
  end
end

function M.daemon_of(port)
  for name, p in pairs(defaults.PORTS) do
    if p == port then
      return name
    end
  end
  return tostring(port)
end

--- The addresses the guest dials: its own loopback, where the relay step
--- serves its bundle's sockets at the daemons' ports. The agent-facing hop
--- (plan.hops[1]) carries HTTP(S).
---@return table { proxy, git_gate, supervise } (nil for a daemon not running)
function M.urls(rec)
  local plan = rec.plan
  if plan.access ~= "sockets" then
    errors.raise(string.format("backend %s: unknown access mode %s (a guest reaches its bundle through its " ..
      "sockets)", plan.backend, tostring(plan.access)))
  end
  local by_service = {}
  for _, sk in ipairs(plan.sockets) do
    by_service[sk.service] = "127.0.0.1:" .. sk.guest_port
  end
  return {
    proxy = "http://" .. by_service[plan.hops[1]],
    git_gate = by_service["git-gate"] and ("git://" .. by_service["git-gate"]) or nil,
    supervise = by_service.supervise and ("http://" .. by_service.supervise .. "/") or nil,
  }
end

--- Resolves the guest env into rec.guest_env: literal and host values from
--- the plan, the `?` answers, and the bundle's addresses (rec.urls).
function M.resolve_guest_env(rec)
  local out = {}
  for _, e in ipairs(rec.plan.guest_env) do
    local value, secret = e.value, e.secret
    if e.launch then
      value = rec.urls[e.launch]
    elseif e.kind == "prompt" then
      -- given at plan time (BOTTLE_ASK_<NAME>), else asked at launch
      value, secret = e.value or rec.answers[e.name], true
    end
    if value ~= nil then
      out[#out + 1] = { name = e.name, value = value, secret = secret or false }
    end
  end
  rec.guest_env = out
  return out
end

--- Records the guest's addresses of the bundle (M.urls unless given) and
--- resolves the guest env with them.
---@param urls? table { proxy, git_gate, supervise }
function M.connect(rec, urls)
  rec.urls = urls or M.urls(rec)
  M.resolve_guest_env(rec)
  return rec.urls
end

--- The value of a guest env variable in this launch, or nil.
function M.guest_value(rec, name)
  for _, e in ipairs(rec.guest_env) do
    if e.name == name then
      return e.value
    end
  end
  return nil
end

--- Creates the launch's guest through its backend (bottle.target) and
--- returns the target; its removal is registered by the backend.
---@return table target
function M.guest(ctx, rec)
  local guest = target_mod.load(rec.plan.backend).new(ctx, rec.plan, rec)
  guest:create()
  return guest
end

-- Runs a group of batchable steps (those with `prepare`) as one upload and
-- one exec, then lets each check its own part of the output, in order.
local function run_batch(ctx, rec, guest, group)
  local b = batch.new()
  local step_names = {}
  for _, s in ipairs(group) do
    step_names[#step_names + 1] = s.name
    b:begin(s.name, { fatal = s.step.fatal ~= false })
    local ok, err = pcall(s.step.prepare, ctx, rec.plan, b, guest)
    if not ok then
      error(ui.in_step("provision " .. s.name, err), 0)
    end
  end
  local r = ui.step("provision " .. table.concat(step_names, ", "), function()
    return guest:run({ "sh", "-c", b:script() }, { stdin = b:stdin() })
  end)
  local parts, rest = batch.parse((r.stdout or "") .. (r.stderr or ""))
  if next(parts) == nil then
    errors.raise(string.format("provision: the provisioning exec ended with %d before any step ran: %s", r.code,
      errors.first_line(errors.tail(rest, 1))), errors.tail(rest))
  end
  for _, s in ipairs(group) do
    local part = parts[s.name]
    local function check()
      if not part or part.code == nil then
        errors.raise(string.format("did not run: the provisioning exec ended with %d: %s", r.code,
          errors.first_line(errors.tail(rest ~= "" and rest or r.stderr, 1))), errors.tail(rest))
      end
      if s.step.check then
        return s.step.check(ctx, rec.plan, part, guest)
      end
      if part.code ~= 0 then
        errors.raise(string.format("exited %d: %s", part.code, errors.first_line(errors.tail(part.output, 1))),
          errors.tail(part.output))
      end
    end
    local ok, err = pcall(check)
    if not ok then
      error(ui.in_step("provision " .. s.name, err), 0)
    end
  end
end

--- Runs provisioning steps in order, each a step file (recipes/steps/
--- <name>.lua) a user can eject and edit. `steps` defaults to the plan's
--- list (the backend's, the defaults, then the bottle's `provision:`).
--- Consecutive steps that `prepare` share one upload and one exec (see
--- bottle.batch) and each `check` its own output afterwards; a step with
--- only `run` runs on its own, in its place in the order.
---@param steps? string[]
function M.provision(ctx, rec, guest, steps)
  local group = {}
  local function flush()
    if #group > 0 then
      run_batch(ctx, rec, guest, group)
      group = {}
    end
  end
  for _, name in ipairs(steps or rec.plan.provision) do
    local step = recipes.load_step(name)
    if step.prepare then
      group[#group + 1] = { name = name, step = step }
    else
      flush()
      ui.step("provision " .. name, step.run, ctx, rec.plan, guest)
    end
  end
  flush()
end

--- The agent's command: the plan's, plus the system prompt file when the
--- agent has a prompt and its command was not replaced with `-- CMD`.
function M.agent_command(plan)
  local cmd = { table.unpack(plan.agent.command) }
  if plan.agent.has_prompt and not plan.agent.custom_command then
    cmd[#cmd + 1] = "--append-system-prompt-file"
    cmd[#cmd + 1] = plan_mod.PROMPT_FILE
  end
  return cmd
end

--- Records the outcome: a zero agent exit is a clean run (state dir goes).
function M.finish(_, rec, code)
  rec.clean_exit = code == 0
  if code ~= 0 then
    ui.info("the agent exited with %d", code)
  end
  return code
end

return M
