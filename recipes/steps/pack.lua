-- Step `pack`: the packed agent image smolvm boots from.
--
-- BOTTLE_AGENT_ARTIFACT names a ready .smolmachine file. Otherwise the local
-- agent image (BOTTLE_AGENT_IMAGE, default bottle-agent:latest) is packed once
-- per image ID into ${XDG_CACHE_HOME:-~/.cache}/bottle/smolmachines/ and
-- reused while the image ID stays the same. No registry is involved:
-- `smolvm pack create --image` only pulls from a registry, but smolvm 1.1+
-- boots a machine from a `docker save` archive, and `pack create --from-vm`
-- packs a stopped machine. So: export the image from the engine, boot it
-- once in a throwaway machine (which unpacks it), stop it, pack it, delete it.
local docker = require("rt.docker")
local defer = require("rt.defer")
local fs = require("rt.fs")
local errors = require("bottle.errors")
local paths = require("bottle.paths")

return {
  description = "find or build the packed agent image for smolvm",
  run = function(ctx, plan, smolvm)
    local given = ctx.env.BOTTLE_AGENT_ARTIFACT
    if given and given ~= "" then
      local st = fs.stat(given)
      if not st or st.type ~= "file" then
        errors.raise(string.format("BOTTLE_AGENT_ARTIFACT=%s: no such file", given))
      end
      return given
    end
    local image = plan.images.agent
    local info, err = docker.image_inspect(image)
    if not info then
      errors.raise(string.format("the agent image %s is not in the local engine (%s); build it " ..
        "(see images/README.md) or set BOTTLE_AGENT_ARTIFACT to a .smolmachine file", image, err))
    end
    local id = info.id:gsub("^sha256:", ""):sub(1, 16)
    local dir = paths.cache_dir(ctx.env) .. "/smolmachines"
    local stub = dir .. "/agent-" .. id
    local artifact = stub .. ".smolmachine"
    if fs.exists(artifact) then
      ctx.log.trace("reusing %s", artifact)
      return artifact
    end
    if not smolvm.local_images then
      errors.raise(string.format("smolvm %s cannot boot a local image; pack one yourself " ..
        "(smolvm pack create --image <registry ref> -o <path>) and set BOTTLE_AGENT_ARTIFACT to <path>.smolmachine",
        smolvm.version or "(unknown version)"))
    end
    assert(fs.mkdir_p(dir, 448))
    -- Private names, renamed into place at the end: a concurrent launch never
    -- boots a half-written artifact, and a failure leaves nothing behind.
    local tag = fs.random_hex(4)
    local tmp = dir .. "/.pack-" .. tag
    local archive = tmp .. ".tar"
    local machine = "bottle-pack-" .. id:sub(1, 12) .. "-" .. tag
    local scope <close> = defer.scope()
    scope:defer(fs.rm_rf, tmp .. ".smolmachine")
    scope:defer(fs.rm_rf, tmp)
    scope:defer(fs.rm_rf, archive)
    local saved, serr = docker.image_save(image, archive)
    if not saved then
      errors.raise(serr)
    end
    -- Labelled with the launch's slug, so `bottle cleanup` finds it after a crash.
    smolvm:create(machine, { image = archive,
      labels = { ["io.bottle.slug"] = plan.slug, ["io.bottle.role"] = "pack" } })
    local running = false
    scope:defer(function()
      if running then
        smolvm:stop(machine)
      end
      smolvm:delete(machine)
    end)
    smolvm:start(machine)
    running = true
    smolvm:stop(machine)
    running = false
    smolvm:pack_from_vm(machine, tmp)
    assert(fs.rename(tmp .. ".smolmachine", artifact))
    assert(fs.rename(tmp, stub))
    return artifact
  end,
}
