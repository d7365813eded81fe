-- The default recipe: the agent in a smolvm microVM, reaching the network
-- only through a per-bottle sidecar bundle of proxies (SPEC §7).
--
-- Each step below creates resources and registers their cleanup at once, so
-- an error or a signal anywhere unwinds exactly what exists, newest first:
-- VM stop, VM delete, bundle, network, then the state dir. Copy this file
-- with `bottle recipe eject smolmachines` to change the flow.
local launch = require("bottle.launch")
local recipes = require("bottle.recipes")
local smolvm_mod = require("bottle.smolvm")
local vm_mod = require("bottle.vm")
local exec = require("bottle.exec")
local defaults = require("bottle.defaults")

return {
  description = "run the agent in a smolvm microVM behind the sidecar bundle (default)",

  run = function(ctx)
    local step = ctx.log.step
    local plan = launch.start(ctx, "smolmachines")
    if not plan then
      return 0 -- a dry run, or the user declined
    end

    local smolvm = step("smolvm", function()
      return smolvm_mod.new(ctx):detect()
    end)
    local artifact = step("agent artifact", recipes.load_step("pack").run, ctx, plan, smolvm)

    step("state dir", launch.state_dir, ctx, plan)
    local network = step("network", launch.network, ctx, plan,
      { name = plan.bundle.network, role = "network" })
    step("CAs", launch.cas, ctx, plan)
    step("bundle", launch.bundle, ctx, plan,
      { network = { name = network.name, ip = network.ip }, publish = true })
    local ports = step("ports", launch.ports, ctx, plan)
    step("daemons", launch.wait_in_bundle, ctx, plan)

    -- The agent reaches the bundle only through host loopback ports: TSI's
    -- allowlist is 127.0.0.1/32, and the agent-facing hop is the one port
    -- that carries HTTP(S).
    local facing = defaults.PORTS[plan.hops[1]]
    launch.fill_guest_env(plan, {
      proxy = "http://127.0.0.1:" .. ports[facing],
      git_gate = ports[defaults.PORTS["git-gate"]] and ("git://127.0.0.1:" .. ports[defaults.PORTS["git-gate"]]),
      supervise = ports[defaults.PORTS.supervise] and ("http://127.0.0.1:" .. ports[defaults.PORTS.supervise] .. "/"),
    })

    local vm = vm_mod.new(ctx, plan, smolvm)
    step("VM", function()
      smolvm:create(vm.name, { from = artifact, allow_cidrs = plan.machine.allow_cidrs, env = vm:env_for(),
        labels = { ["io.bottle.slug"] = plan.slug, ["io.bottle.role"] = "agent" } })
      ctx.scope:defer(smolvm.delete, smolvm, vm.name)
      smolvm:start(vm.name)
      ctx.scope:defer(smolvm.stop, smolvm, vm.name)
    end)
    step("settle", function()
      exec.settle(vm)
      -- Packing remaps file ownership to the host user; give node its home back.
      vm:must("settle", { "chown", "-R", "node:node", "/home/node" })
    end)
    launch.provision(ctx, plan, vm)

    local code = vm:run_agent(launch.agent_command(plan))
    return launch.finish(ctx, plan, code)
  end,
}
