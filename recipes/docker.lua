-- The docker recipe: the agent in a container on an --internal network
-- (no route out), whose only reachable neighbour is the sidecar bundle
-- (SPEC §7.5). The bundle also joins an ordinary bridge for its own
-- upstream traffic. Same plan, CAs, bundle and hop policy as smolmachines;
-- nothing is published on the host. The container itself is the backend
-- bottle.target.docker (lua/bottle/target/).
--
-- Teardown, newest first: agent container, bundle, the bundle's upstream
-- network, the internal network, then the state dir.
local launch = require("bottle.launch")

return {
  description = "run the agent in a docker container on an internal network behind the sidecar bundle",

  run = function(ctx)
    local step = ctx.log.step
    local rec = launch.start(ctx, "docker")
    if not rec then
      return 0 -- a dry run, or the user declined
    end

    step("state dir", launch.state_dir, ctx, rec)
    step("network", launch.network, ctx, rec, { key = "internal", role = "network", internal = true })
    step("upstream network", launch.network, ctx, rec, { key = "upstream", role = "upstream" })
    step("CAs", launch.cas, ctx, rec)
    -- On the internal network the bundle answers to its daemons' names.
    step("bundle", launch.bundle, ctx, rec, { network = "internal", aliases = true, upstream = "upstream" })
    step("daemons", launch.wait_in_bundle, ctx, rec)
    launch.connect(rec)

    local agent = step("agent container", launch.guest, ctx, rec)
    launch.provision(ctx, rec, agent)

    local code = agent:run_agent(launch.agent_command(rec.plan))
    return launch.finish(ctx, rec, code)
  end,
}
