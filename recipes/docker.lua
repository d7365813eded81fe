-- The docker recipe: the agent in a container on an --internal network
-- (no route out), whose only reachable neighbour is the sidecar bundle
-- (SPEC §7.5). The bundle also joins an ordinary bridge for its own
-- upstream traffic. Same plan, CAs, bundle and hop policy as smolmachines;
-- nothing is published on the host.
--
-- Teardown, newest first: agent container, bundle, the bundle's upstream
-- network, the internal network, then the state dir.
local docker = require("rt.docker")
local launch = require("bottle.launch")
local container_mod = require("bottle.container")
local errors = require("bottle.errors")
local defaults = require("bottle.defaults")

local function must(v, msg)
  if v == nil then
    errors.raise(msg)
  end
  return v
end

return {
  description = "run the agent in a docker container on an internal network behind the sidecar bundle",

  dry_run = true, -- launch.start plans, prints and returns nil for --dry-run

  run = function(ctx)
    local step = ctx.log.step
    local plan = launch.start(ctx, "docker")
    if not plan then
      return 0 -- a dry run, or the user declined
    end
    step("agent image", function()
      local exists, err = docker.image_exists(plan.images.agent)
      if exists == nil then
        errors.raise(err)
      end
      if not exists then
        errors.raise(string.format("the agent image %s is not in the local engine; build it (see images/README.md) " ..
          "or set BOTTLE_AGENT_IMAGE", plan.images.agent))
      end
    end)

    step("state dir", launch.state_dir, ctx, plan)
    local internal = step("network", launch.network, ctx, plan,
      { name = plan.bundle.network, role = "network", internal = true })
    local upstream = step("upstream network", launch.network, ctx, plan,
      { name = "bottle-upstream-" .. plan.slug, role = "network", salt = "/upstream" })
    step("CAs", launch.cas, ctx, plan)
    step("bundle", launch.bundle, ctx, plan, {
      network = { name = internal.name, ip = internal.ip },
      aliases = plan.bundle.daemons,
      networks = { { name = upstream.name } },
    })
    step("daemons", launch.wait_in_bundle, ctx, plan)

    -- The agent dials the agent-facing hop by its alias on the internal network.
    local facing = plan.hops[1]
    launch.fill_guest_env(plan, {
      proxy = string.format("http://%s:%d", facing, defaults.PORTS[facing]),
      git_gate = "git://git-gate:" .. defaults.PORTS["git-gate"],
      supervise = "http://supervise:" .. defaults.PORTS.supervise .. "/",
    })

    local agent = step("agent container", function()
      local name = "bottle-agent-" .. plan.slug
      local env = {}
      for _, e in ipairs(plan.guest_env) do
        if e.value ~= nil then
          env[e.name] = e.value
        end
      end
      local id = must(docker.container_create({
        name = name,
        image = plan.images.agent,
        cmd = { "sleep", "infinity" },
        env = env,
        labels = { ["io.bottle.slug"] = plan.slug, ["io.bottle.role"] = "agent",
          ["io.bottle.backend"] = "docker", ["io.bottle.agent"] = plan.agent.name },
        network = internal.name,
        init = true,
      }))
      ctx.scope:defer(function()
        must(docker.container_remove(id, { force = true }))
      end)
      must(docker.container_start(id))
      return container_mod.new(ctx, plan, id, name)
    end)
    launch.provision(ctx, plan, agent)

    local code = agent:run_agent(launch.agent_command(plan))
    return launch.finish(ctx, plan, code)
  end,
}
