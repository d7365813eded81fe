--- The launch steps both recipes share (SPEC §7): preflight, state dir,
--- network, CAs, bundle, ports and provisioning.
--
-- Every step that creates a resource registers its cleanup on ctx.scope the
-- moment the resource exists, so an error or a signal at any point unwinds
-- exactly what was made, newest first. Recipes call these in order; read
-- recipes/smolmachines.lua for the sequence.
local docker = require("rt.docker")
local ca = require("rt.ca")
local fs = require("rt.fs")
local host = require("rt.host")
local net = require("rt.net")
local term = require("rt.term")
local errors = require("bottle.errors")
local ui = require("bottle.ui")
local plan_mod = require("bottle.plan")
local bundle = require("bottle.bundle")
local defaults = require("bottle.defaults")
local environment = require("bottle.environment")
local recipes = require("bottle.recipes")
local paths = require("bottle.paths")

local M = {}

--- Seconds the agent-facing ports may take to come up.
M.PORT_TIMEOUT_MS = 30000

local function must(v, msg, ...)
  if v == nil then
    errors.raise(msg)
  end
  return v, ...
end

--- Builds the plan (no resources; a bad manifest raises here).
function M.plan(ctx, backend)
  return plan_mod.build(ctx, backend)
end

--- The common opening of a launch: plan; for --dry-run print it and stop;
--- else confirm. Returns the plan, or nil when the recipe should return 0
--- without creating anything (a dry run, a declined prompt).
function M.start(ctx, backend)
  local plan = M.plan(ctx, backend)
  if ctx.opts.dry_run then
    M.dry_run(ctx, plan)
    return nil
  end
  if not M.preflight(ctx, plan) then
    return nil
  end
  return plan
end

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
--- --yes), then asks the bottle's `?` values. Returns false when the user
--- declined (the recipe then exits 0 having created nothing).
function M.preflight(ctx, plan)
  ui.info("%s", plan_mod.summary(plan))
  if not ctx.opts.yes then
    if not (ctx.interactive or ui.interactive)() then
      errors.raise("not launching: there is no terminal to confirm on; pass --yes to launch without asking")
    end
    if not (ctx.confirm or ui.confirm)("launch this agent?") then
      ui.info("aborted by user")
      return false
    end
  end
  environment.ask(plan.env, ctx.ask_secret or ask_secret)
  return true
end

--- Writes the state dir. It is removed at the end after a clean run (or an
--- interrupt) and kept after a failure, for inspection: the hint names it.
function M.state_dir(ctx, plan)
  plan_mod.materialize(plan)
  local dir = plan.state.dir
  ctx.scope:defer(function()
    if plan.clean_exit or host.signal() ~= 0 then
      must(fs.rm_rf(dir))
    else
      ui.info("kept %s for inspection (bottle cleanup removes it)", paths.pretty(ctx.env, dir))
    end
  end)
end

local function used_subnets()
  local nets = must(docker.network_list({}))
  local used = {}
  for _, n in ipairs(nets) do
    for _, s in ipairs(n.subnets or {}) do
      used[#used + 1] = s
    end
  end
  return used
end

--- Creates a bridge network with a /24 picked from the pool (skipping
--- subnets the engine already uses) and registers its removal.
---@param opts table { name, role, internal, gateway_ip = bool }
---@return table { name, subnet, gateway, ip }
function M.network(ctx, plan, opts)
  local pool = ctx.env.BOTTLE_SUBNET_POOL or defaults.SUBNET_POOL
  local last_err
  for _ = 1, 3 do
    local pick = must(bundle.pick_subnet(pool, plan.slug .. (opts.salt or ""), used_subnets()))
    local id, err = docker.network_create({
      name = opts.name,
      subnet = pick.subnet,
      gateway = pick.gateway,
      internal = opts.internal or false,
      labels = { ["io.bottle.slug"] = plan.slug, ["io.bottle.role"] = opts.role or "network" },
    })
    if id then
      ctx.scope:defer(function()
        must(docker.network_remove(opts.name))
      end)
      pick.name = opts.name
      pick.id = id
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

--- Mints the per-launch CAs: pipelock's always, egress's when the bottle
--- has routes; and egress's upstream trust (system roots + pipelock CA).
function M.cas(ctx, plan)
  local st = plan.state
  local pl = must(ca.mint({ dir = st.pipelock_dir, name = "ca", common_name = "bottle pipelock " .. plan.slug }))
  plan.cas = { pipelock = pl }
  local extra = plan.extra_cas or {}
  if #plan.routes > 0 then
    plan.cas.egress = must(ca.mint({ dir = st.egress_dir, name = "ca", common_name = "bottle egress " .. plan.slug }))
    local trust = { pl.cert }
    table.move(extra, 1, #extra, 2, trust)
    must(ca.bundle({ out = st.egress_upstream_ca, extra = trust }))
  end
  if #extra > 0 then
    must(ca.bundle({ out = st.upstream_ca, extra = extra }))
  end
  -- pipelock reads the key as ca-key.pem next to ca.pem (docs/bundle.md).
  return plan.cas
end

local function publish_list(ports)
  local out = {}
  for _, p in ipairs(ports) do
    out[#out + 1] = { port = p, host_ip = "127.0.0.1" }
  end
  return out
end

--- Creates and starts the sidecar bundle; registers its removal.
---@param opts table { network = {name, ip}, aliases, networks (extra), publish = bool }
function M.bundle(ctx, plan, opts)
  local spec = plan.bundle
  local binds = {}
  for _, v in ipairs(spec.volumes) do
    binds[#binds + 1] = { host = v.host, container = v.container, ro = v.ro }
  end
  local id = must(docker.container_create({
    name = spec.name,
    image = spec.image,
    env = bundle.env_values(spec),
    labels = spec.labels,
    network = opts.network.name,
    ip = opts.network.ip,
    aliases = opts.aliases,
    networks = opts.networks,
    binds = binds,
    publish = opts.publish and publish_list(spec.publish) or nil,
    extra_hosts = #plan.extra_hosts > 0 and plan.extra_hosts or nil,
  }))
  ctx.scope:defer(function()
    must(docker.container_remove(id, { force = true }))
  end)
  must(docker.container_start(id))
  plan.bundle.id = id
  return id
end

local function log_tail(id)
  local out, err = docker.container_logs(id, { tail = 30 })
  return errors.tail(((out or "") .. (err or "")), 30)
end

--- Looks the published host ports up (one inspect) and waits until each
--- accepts TCP. Returns container port -> host port.
function M.ports(ctx, plan)
  local id = plan.bundle.id
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
  plan.host_ports = out
  return out
end

--- Waits until the bundle's daemons listen (checked from inside it by
--- bottle.ready).
function M.wait_in_bundle(ctx, plan)
  require("bottle.ready").wait(ctx, plan, plan.bundle.id, { timeout_ms = M.PORT_TIMEOUT_MS })
end

function M.daemon_of(port)
  for name, p in pairs(defaults.PORTS) do
    if p == port then
      return name
    end
  end
  return tostring(port)
end

--- Fills the guest env values known only at launch.
---@param urls table { proxy=, git_gate=, supervise= }
function M.fill_guest_env(plan, urls)
  for _, e in ipairs(plan.guest_env) do
    local n = e.name:upper()
    if n == "HTTPS_PROXY" or n == "HTTP_PROXY" then
      e.value = urls.proxy
    elseif e.name == "GIT_GATE_URL" then
      e.value = urls.git_gate
    elseif e.name == "MCP_SUPERVISE_URL" then
      e.value = urls.supervise
    end
  end
end

--- Runs the plan's provisioning steps in order, each a step file
--- (recipes/steps/<name>.lua) a user can eject and edit.
function M.provision(ctx, plan, target)
  for _, name in ipairs(plan.provision) do
    local step = recipes.load_step(name)
    ui.step("provision " .. name, step.run, ctx, plan, target)
  end
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
function M.finish(ctx, plan, code)
  plan.clean_exit = code == 0
  if code ~= 0 then
    ui.info("the agent exited with %d", code)
  end
  return code
end

return M
