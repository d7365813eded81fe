--- The smolmachines backend: the agent in a smolvm microVM.
--
-- Implements bottle.target (read lua/bottle/target.lua for the interface)
-- over the smolvm CLI driver in bottle.smolvm. Every exec passes the guest
-- env explicitly; commands for a user other than root run through
-- `runuser -u <user> --` with HOME and USER set, never as root by accident.
local docker = require("rt.docker")
local fs = require("rt.fs")
local proc = require("rt.proc")
local target = require("bottle.target")
local names = require("bottle.names")
local errors = require("bottle.errors")
local paths = require("bottle.paths")
local smolvm_mod = require("bottle.smolvm")

local M = { name = "smolmachines" }

--- How the guest reaches the bundle: the VM has no network device at all
--- (no --net, no --allow-cidr); its bundle's unix sockets are mounted into
--- it (--mount-socket) and the `relay` step serves them on its loopback.
M.access = "sockets"

--- Runs before the default provisioning steps.
M.steps = { "relay" }

--- The machine's part of the plan.
function M.plan(plan)
  return { machine = { name = names.machine(plan.slug), sockets = plan.sockets } }
end

-- smolvm run as root drops each VM to a uid of its own (2000000 and up)
-- before libkrun starts, unless SMOLVM_VM_UID_DROP=off; that uid dials the
-- mounted sockets (docs/smolvm.md M1, M4), which are private to the user
-- who runs bottle, so every guest connection would be closed at once.
local function refuse_dropped_uid(ctx)
  if proc.ids() ~= 0 or ctx.env.SMOLVM_VM_UID_DROP == "off" then
    return
  end
  errors.raise("smolvm run as root drops each VM to a uid of its own, which cannot open this launch's " ..
    "sockets (they are private to the user who runs bottle): run bottle as your own user, with access " ..
    "to the Docker engine (the docker group), or run the agent in a container: bottle recipe run docker. " ..
    "SMOLVM_VM_UID_DROP=off keeps smolvm's VM process root instead, at the cost of its isolation")
end

--- Checks that need no answer from the user: smolvm runs and is new
--- enough, not as root with its per-VM uid drop, and the agent artifact
--- (or the image it is made from) exists.
function M.check(ctx, plan)
  smolvm_mod.new(ctx):detect()
  refuse_dropped_uid(ctx)
  local given = ctx.env.BOTTLE_AGENT_ARTIFACT
  if given and given ~= "" then
    local st = fs.stat(given)
    if not st or st.type ~= "file" then
      errors.raise(string.format("BOTTLE_AGENT_ARTIFACT=%s: no such file", given))
    end
    return
  end
  local info, err = docker.image_inspect(plan.images.agent)
  if not info then
    errors.raise(string.format("the agent image %s is not in the local engine (%s); build it " ..
      "(see images/README.md) or set BOTTLE_AGENT_ARTIFACT to a .smolmachine file", plan.images.agent, err))
  end
end

M.class = target.class()
local VM = M.class

---@param ctx table
---@param plan table
---@param rec table the launch record
function M.new(ctx, plan, rec)
  return setmetatable({ ctx = ctx, plan = plan, rec = rec, driver = smolvm_mod.new(ctx):detect(),
    name = plan.machine.name, kind = "vm" }, VM)
end

-- Archives of images the engine no longer has (rebuilt or removed): no
-- launch can ask for them again, and with Claude Code each is over a
-- gigabyte. Checked when a new archive is saved, so only when an image
-- changed.
local function prune_archives(dir, keep)
  for _, name in ipairs(fs.list(dir) or {}) do
    local id = name:match("^agent%-(%x+)%.tar$")
    if id and name ~= keep then
      local _, _, code = docker.image_inspect(id)
      if code == "NOT_FOUND" then
        fs.rm_rf(dir .. "/" .. name)
      end
    end
  end
end

--- What the VM boots: BOTTLE_AGENT_ARTIFACT (a .smolmachine, `--from`),
--- else a `docker save` archive of the local agent image (`--image`; smolvm
--- stores it by content hash), saved once per image ID under
--- ${XDG_CACHE_HOME:-~/.cache}/bottle/smolmachines/; saving one removes the
--- archives of images the engine no longer has.
---@return table { from = path } or { image = path }
function M.artifact(ctx, plan)
  local given = ctx.env.BOTTLE_AGENT_ARTIFACT
  if given and given ~= "" then
    return { from = given }
  end
  local info = errors.must(docker.image_inspect(plan.images.agent))
  local id = info.id:gsub("^sha256:", ""):sub(1, 16)
  local dir = paths.cache_dir(ctx.env) .. "/smolmachines"
  local archive = dir .. "/agent-" .. id .. ".tar"
  if fs.exists(archive) then
    ctx.log.trace("reusing %s", archive)
    return { image = archive }
  end
  errors.must(fs.mkdir_p(dir, 448))
  -- A private name renamed into place: a concurrent launch never boots a
  -- half-written archive, and a failure leaves nothing behind.
  local tmp = dir .. "/.save-" .. fs.random_hex(4) .. ".tar"
  local ok, err = docker.image_save(plan.images.agent, tmp)
  if ok then
    ok, err = fs.rename(tmp, archive)
  end
  if not ok then
    fs.rm_rf(tmp)
    errors.raise(err)
  end
  prune_archives(dir, "agent-" .. id .. ".tar")
  return { image = archive }
end

--- Creates and starts the VM from the agent artifact; registers stop and
--- delete at once.
function VM:create()
  local ctx, plan, smolvm = self.ctx, self.plan, self.driver
  local boot = M.artifact(ctx, plan)
  smolvm:create(self.name, { from = boot.from, image = boot.image, sockets = plan.machine.sockets,
    env = self:create_env(), labels = names.labels(plan, "agent") })
  ctx.scope:defer(smolvm.delete, smolvm, self.name)
  smolvm:start(self.name)
  ctx.scope:defer(smolvm.stop, smolvm, self.name)
end

--- The env given at create: smolvm persists it in its machine record, so
--- it holds no secret (secrets ride on each exec instead).
function VM:create_env()
  local out = {}
  for _, e in ipairs(self:env_for()) do
    if not e.secret then
      out[#out + 1] = e
    end
  end
  return out
end

--- Only what smolvm reports as a guest it could not reach (the command
--- never ran) is tried again; see bottle.smolvm.unreachable.
function VM:unreachable(r)
  return smolvm_mod.unreachable(r)
end

local function as_user(user, argv)
  if not user or user == "root" then
    return argv
  end
  local cmd = { "runuser", "-u", user, "--" }
  table.move(argv, 1, #argv, #cmd + 1, cmd)
  return cmd
end

--- One exec. opts: user ("root" default), stdin, timeout_ms, workdir.
function VM:exec(argv, opts)
  opts = opts or {}
  return self.driver:exec(self.name, as_user(opts.user, argv), {
    env = self:env_for(opts.user),
    stdin = opts.stdin,
    timeout_ms = opts.timeout_ms,
    workdir = opts.workdir,
  })
end

function VM:put(host_path, guest_path)
  self.driver:cp(self.name, host_path, guest_path)
end

--- Runs the agent interactively as node with the terminal passed through;
--- returns its exit code.
function VM:run_agent(argv)
  local tty = proc.isatty(0) and proc.isatty(1)
  local r = self.driver:exec(self.name, as_user("node", argv), {
    env = self:env_for("node"),
    interactive = true,
    tty = tty,
    workdir = "/home/node",
  })
  return r.code
end

--- smolvm machines bottle made: labelled io.bottle.slug, or (a machine
--- made without labels) named bottle-<slug>. An absent smolvm is not an
--- error here: it simply holds nothing.
function M.inventory(env)
  local smolvm = smolvm_mod.new({ env = env })
  local ok, machines = pcall(smolvm.ls, smolvm)
  if not ok then
    local msg = errors.is(machines) and machines.message or tostring(machines)
    if msg:find("not found", 1, true) then
      return {}
    end
    return nil, "smolvm: " .. errors.first_line(msg)
  end
  local out = {}
  for _, m in ipairs(machines) do
    local labels = type(m.labels) == "table" and m.labels or {}
    local slug = labels[names.LABEL.slug] or names.slug_of_machine(m.name)
    if slug then
      out[#out + 1] = { slug = slug, name = m.name, state = m.state, kind = "machine",
        labelled = labels[names.LABEL.slug] ~= nil, role = labels[names.LABEL.role], labels = labels }
    end
  end
  return out
end

--- Stops (when running) and deletes one leftover machine.
function M.remove(env, item)
  local smolvm = smolvm_mod.new({ env = env })
  if item.state ~= "stopped" then
    pcall(smolvm.stop, smolvm, item.name)
  end
  local ok, err = pcall(smolvm.delete, smolvm, item.name)
  if not ok then
    return nil, errors.is(err) and err.message or tostring(err)
  end
  return true
end

return target.define(M, "smolmachines")
