--- The docker backend: the agent in a container.
--
-- Implements bottle.target (read lua/bottle/target.lua for the interface)
-- through the Engine API. Files go in through exec stdin (`cat > path`,
-- `tar -x`), so no archive endpoint or docker CLI is needed; only the
-- interactive agent runs through the docker CLI.
local docker = require("rt.docker")
local proc = require("rt.proc")
local target = require("bottle.target")
local names = require("bottle.names")
local errors = require("bottle.errors")

local M = { name = "docker" }

--- How the guest reaches the bundle: the same boundary as the VM. The
--- container has no network at all (NetworkMode none); its bundle's unix
--- sockets are bind-mounted into it and the `relay` step serves them on
--- its loopback. (A container on an --internal network still reaches
--- every host service listening on all interfaces through the bridge's
--- gateway; with no network it reaches nothing.)
M.access = "sockets"

--- Runs before the default provisioning steps.
M.steps = { "relay" }

--- The container's part of the plan.
function M.plan(plan)
  return { container = { name = names.resource("agent", plan.slug) } }
end

local function require_image(ref, what, hint)
  local exists, err = docker.image_exists(ref)
  if exists == nil then
    errors.raise(err)
  end
  if not exists then
    errors.raise(string.format("the %s image %s is not in the local engine; %s", what, ref, hint))
  end
end

--- Checks that need no answer from the user: the engine answers and both
--- images are there.
function M.check(_, plan)
  require_image(plan.images.agent, "agent", "build it (see images/README.md) or set BOTTLE_AGENT_IMAGE")
  require_image(plan.images.sidecars, "sidecar", "build it (see images/README.md) or set BOTTLE_SIDECAR_IMAGE")
end

M.class = target.class()
local C = M.class

---@param ctx table
---@param plan table
---@param rec table the launch record
function M.new(ctx, plan, rec)
  return setmetatable({ ctx = ctx, plan = plan, rec = rec, name = plan.container.name, kind = "container" }, C)
end

--- The guest env as NAME -> value for an exec as `user`.
function C:env_map(user)
  local env = {}
  for _, e in ipairs(self:env_for(user)) do
    env[e.name] = e.value
  end
  return env
end

--- Creates and starts the agent container with no network and its
--- bundle's sockets mounted where the VM has them; registers its removal
--- at once.
function C:create()
  -- The socket folder, not each socket: the bundle makes the sockets after
  -- the container exists (the engine refuses a bind of a missing file).
  local guest_dir = self.plan.sockets[1].guest:match("^(.*)/[^/]+$")
  local binds = { { host = self.plan.state.sockets_dir, container = guest_dir, ro = true } }
  self.id = errors.must(docker.container_create({
    name = self.name,
    image = self.plan.images.agent,
    cmd = { "sleep", "infinity" },
    env = self:env_map(),
    labels = names.labels(self.plan, "agent"),
    network_mode = "none",
    binds = binds,
    init = true,
  }))
  local id = self.id
  self.ctx.scope:defer(function()
    errors.must(docker.container_remove(id, { force = true, volumes = true }))
  end)
  errors.must(docker.container_start(id))
end

--- One exec. opts: user ("root" default), stdin, timeout_ms, workdir.
function C:exec(argv, opts)
  opts = opts or {}
  return errors.must(docker.exec(self.id, {
    cmd = argv,
    env = self:env_map(opts.user),
    user = opts.user or "root",
    stdin = opts.stdin,
    workdir = opts.workdir,
    timeout_ms = opts.timeout_ms,
  }))
end

function C:put_text(text, guest_path)
  self:must("write " .. guest_path, { "sh", "-c", 'cat > "$1"', "sh", guest_path }, { stdin = text })
end

function C:put(host_path, guest_path)
  self:put_text(errors.must(require("rt.fs").read(host_path)), guest_path)
end

--- One exec with the archive on stdin.
function C:put_archive(bytes, what)
  self:must(what, { "tar", "-xf", "-", "-C", "/" }, { stdin = bytes })
end

--- Runs the agent as node through `docker exec -i -u node` (`-t` only on a
--- terminal), the one place the docker CLI is used; secret env values travel
--- in the CLI's environment (`-e NAME`), never on its argv.
function C:run_agent(argv)
  local args = { "docker", "exec", "-i" }
  if proc.isatty(0) and proc.isatty(1) then
    args[#args + 1] = "-t"
  end
  table.move({ "-u", "node", "-w", "/home/node" }, 1, 4, #args + 1, args)
  local env = {}
  for k, v in pairs(self.ctx.env) do
    env[k] = v
  end
  local docker_host = docker.socket and docker.socket()
  if docker_host and not env.DOCKER_HOST then
    env.DOCKER_HOST = "unix://" .. docker_host
  end
  -- Secret values by name (the CLI forwards them from its environment);
  -- the rest as NAME=value, so HOME or the proxy variables of the guest do
  -- not change how the docker CLI itself runs.
  local entries = self:env_for("node")
  table.sort(entries, function(a, b)
    return a.name < b.name
  end)
  for _, e in ipairs(entries) do
    args[#args + 1] = "-e"
    if e.secret then
      env[e.name] = e.value
      args[#args + 1] = e.name
    else
      args[#args + 1] = e.name .. "=" .. e.value
    end
  end
  args[#args + 1] = self.name
  table.move(argv, 1, #argv, #args + 1, args)
  local r, err, code = proc.run({ argv = args, env = env, interactive = true })
  if not r then
    if code == "ENOENT" then
      errors.raise("the docker CLI is needed to run the agent interactively: " .. err)
    end
    errors.raise(err)
  end
  return r.code
end

--- Agent containers bottle made (by label). An engine that does not
--- answer is an error the inventory reports.
function M.inventory()
  local list, err = docker.container_list({ labels = { [names.LABEL.role] = "agent" }, all = true })
  if not list then
    return nil, "docker: " .. tostring(err)
  end
  local out = {}
  for _, c in ipairs(list) do
    local slug = c.labels[names.LABEL.slug]
    if slug and (c.labels[names.LABEL.backend] or "docker") == "docker" then
      out[#out + 1] = { slug = slug, id = c.id, name = (c.names[1] or ""):gsub("^/", ""), state = c.state,
        kind = "container", role = "agent", labels = c.labels }
    end
  end
  return out
end

function M.remove(_, item)
  return docker.container_remove(item.id, { force = true, volumes = true })
end

return target.define(M, "docker")
