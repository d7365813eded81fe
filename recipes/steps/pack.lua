-- Step `pack`: the packed agent image smolvm boots from.
--
-- BOTTLE_AGENT_ARTIFACT names a ready .smolmachine file. Otherwise the
-- local agent image (BOTTLE_AGENT_IMAGE, default bottle-agent:latest) is
-- exported from the Docker engine (`docker save` format) and packed with
-- `smolvm pack create` once per image ID into
-- ${XDG_CACHE_HOME:-~/.cache}/bottle/smolmachines/, then reused while the
-- image ID stays the same. No registry is involved.
local docker = require("rt.docker")
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
      errors.raise(string.format("pack: the agent image %s is not in the local engine (%s); build it " ..
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
    assert(fs.mkdir_p(dir, 448))
    -- Pack under a private name and rename into place, so a concurrent launch
    -- never boots a half-written artifact.
    local tmp = dir .. "/.pack-" .. fs.random_hex(4)
    local archive = tmp .. ".tar"
    local ok, perr = pcall(function()
      local saved, serr = docker.image_save(image, archive)
      if not saved then
        errors.raise("pack: " .. serr)
      end
      smolvm:pack(archive, tmp)
      assert(fs.rename(tmp .. ".smolmachine", artifact))
      assert(fs.rename(tmp, stub))
    end)
    fs.rm_rf(archive)
    fs.rm_rf(tmp)
    fs.rm_rf(tmp .. ".smolmachine")
    if not ok then
      error(perr, 0)
    end
    return artifact
  end,
}
