-- The docker recipe: the agent in a container with no network at all,
-- whose only way out is its sidecar bundle's unix sockets, mounted into it
-- and relayed to its own loopback: the same boundary as the smolmachines
-- VM. The bundle has an ordinary bridge for its own upstream
-- traffic; nothing is published on the host. The container itself is the
-- backend bottle.target.docker (lua/bottle/target/).
--
-- Teardown, newest first: agent container, bundle, the bundle's network,
-- then the state dir.
local launch = require("bottle.launch")

return {
  description = "run the agent in a docker container with no network behind the sidecar bundle",

  dry_run = true, -- launch.start plans, prints and returns nil for --dry-run

  run = function(ctx)
    local step = ctx.log.step
    local rec = launch.start(ctx, "docker")
    if not rec then
      return 0 -- a dry run, or the user declined
    end

    step("state dir", launch.state_dir, ctx, rec)
    step("network", launch.network, ctx, rec, { key = "bundle", role = "network" })
    step("CAs", launch.cas, ctx, rec)
    step("bundle", launch.bundle, ctx, rec, { network = "bundle" })
    launch.connect(rec)
    -- The container starts while the bundle's daemons do.
    local agent = step("agent container", launch.guest, ctx, rec)
    -- The container has no network: its bundle's sockets are its only way out.
    step("sockets", launch.sockets, ctx, rec)
    launch.provision(ctx, rec, agent)

    local code = agent:run_agent(launch.agent_command(rec.plan))
    return launch.finish(ctx, rec, code)
  end,
}
