-- The default recipe: the agent in a smolvm microVM, reaching the network
-- only through a per-bottle sidecar bundle of proxies.
--
-- Each step below creates resources and registers their cleanup at once, so
-- an error or a signal anywhere unwinds exactly what exists, newest first:
-- VM stop, VM delete, bundle, network, then the state dir. Copy this file
-- with `bottle recipe eject smolmachines` to change the flow; the VM itself
-- is the backend bottle.target.smolmachines (lua/bottle/target/).
local launch = require("bottle.launch")

return {
  description = "run the agent in a smolvm microVM behind the sidecar bundle (default)",

  dry_run = true, -- launch.start plans, prints and returns nil for --dry-run

  run = function(ctx)
    local step = ctx.log.step
    local rec = launch.start(ctx, "smolmachines")
    if not rec then
      return 0 -- a dry run, or the user declined
    end

    step("state dir", launch.state_dir, ctx, rec)
    step("network", launch.network, ctx, rec, { key = "bundle", role = "network" })
    step("CAs", launch.cas, ctx, rec)
    step("bundle", launch.bundle, ctx, rec, { network = "bundle" })
    launch.connect(rec)
    -- The VM boots while the bundle's daemons start: it needs them only
    -- once it is provisioned.
    local vm = step("VM", launch.guest, ctx, rec)
    -- The guest has no network: its bundle's sockets are its only way out.
    step("sockets", launch.sockets, ctx, rec)
    launch.provision(ctx, rec, vm)

    local code = vm:run_agent(launch.agent_command(rec.plan))
    return launch.finish(ctx, rec, code)
  end,
}
