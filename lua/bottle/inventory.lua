--- `bottle ls` and `bottle cleanup`: what launches exist, across backends.
--
-- A launch is found by its slug: engine containers and networks carrying
-- the label io.bottle.slug (the bundle and its networks, on every backend),
-- the guests each backend's inventory reports (bottle.target: smolvm
-- machines labelled the same way, or named bottle-<slug> with a state dir
-- of that slug; agent containers), and state dirs. A launch is live while the bottle process recorded in
-- its state dir's metadata.json runs; anything else is a leftover of a
-- crashed launch that cleanup may remove. Nothing without our labels (or a
-- state dir naming it) is ever touched.
local docker = require("rt.docker")
local fs = require("rt.fs")
local proc = require("rt.proc")
local json = require("bottle.json")
local paths = require("bottle.paths")
local names = require("bottle.names")
local target = require("bottle.target")
local ui = require("bottle.ui")
local errors = require("bottle.errors")

local M = {}

local SLUG = names.SLUG_PATTERN
local L = names.LABEL

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

local function entry(found, slug)
  local e = found[slug]
  if not e then
    e = { slug = slug, containers = {}, networks = {}, guests = {}, daemons = {} }
    found[slug] = e
  end
  return e
end

--- A state dir's metadata.json as a table, or nil when it is missing,
--- unreadable or not a JSON object (a truncated or foreign file must not
--- stop `ls` or `cleanup`).
---@param text string|nil
---@return table|nil
function M.read_meta(text)
  if type(text) ~= "string" then
    return nil
  end
  local raw = json.decode(text)
  if type(raw) ~= "table" then
    return nil
  end
  -- Only the fields ls and cleanup use, and only with the types they expect.
  local meta = {}
  meta.pid = math.type(raw.pid) and math.tointeger(raw.pid) or nil
  meta.created = math.type(raw.created) and raw.created or nil
  for _, k in ipairs({ "backend", "agent", "slug" }) do
    meta[k] = type(raw[k]) == "string" and raw[k] or nil
  end
  if type(raw.daemons) == "table" then
    meta.daemons = {}
    for _, d in ipairs(raw.daemons) do
      if type(d) == "string" then
        meta.daemons[#meta.daemons + 1] = d
      end
    end
  end
  return meta
end

-- The pid in metadata.json still runs bottle: alive, and its executable is
-- bottle (a pid the system has given to another program since is a crashed
-- launch). Where the system cannot say what a pid runs, a live pid counts as
-- the owner, so cleanup never removes a launch that may still run.
local function owner_alive(meta)
  local pid = meta and math.tointeger(meta.pid)
  if not pid then
    return false
  end
  local yes = proc.is_bottle(pid)
  if yes == nil then
    return proc.alive(pid)
  end
  return yes
end

--- Everything bottle-made on this machine, by slug.
---
--- A backend that cannot be asked (an engine that does not answer, a
--- backend whose inventory fails) is reported in `unreachable`, and every launch that
--- could have resources there lists it in `e.unchecked`: cleanup then keeps
--- that launch's state dir, which is what names those resources. A smolvm
--- that is not installed holds no machines and is not an error.
---@param env table
---@return table found slug -> entry
---@return string[] notes one line per backend that could not be asked
---@return table unreachable "engine" or a backend's name -> message
function M.scan(env)
  local found, notes, unreachable = {}, {}, {}
  local root = paths.state_root(env)
  for _, slug in ipairs(fs.list(root) or {}) do
    if slug:match(SLUG) then
      local e = entry(found, slug)
      e.state_dir = root .. "/" .. slug
      e.meta = M.read_meta(fs.read(e.state_dir .. "/metadata.json", { max = 1048576 }))
    end
  end

  -- The bundle and the networks: engine resources on every backend.
  local containers, cerr = docker.container_list({ labels = names.any_launch(), all = true })
  local nets, nerr
  if containers ~= nil then
    nets, nerr = docker.network_list({ labels = names.any_launch() })
  end
  if containers == nil or nets == nil then
    unreachable.engine = "docker: " .. errors.first_line(tostring(cerr or nerr))
  else
    for _, c in ipairs(containers) do
      local slug = c.labels[L.slug]
      if slug and c.labels[L.role] ~= "agent" and names.ours(c.labels, root) then
        local e = entry(found, slug)
        e.containers[#e.containers + 1] = { id = c.id, name = (c.names[1] or ""):gsub("^/", ""), state = c.state,
          role = c.labels[L.role] }
        e.backend = e.backend or c.labels[L.backend]
        e.agent = e.agent or c.labels[L.agent]
        if c.labels[L.daemons] then
          e.daemons = {}
          for d in c.labels[L.daemons]:gmatch("[^,]+") do
            e.daemons[#e.daemons + 1] = d
          end
        end
        if c.created and (not e.created or c.created < e.created) then
          e.created = c.created
        end
      end
    end
    for _, n in ipairs(nets) do
      local slug = n.labels and n.labels[L.slug]
      if slug and names.ours(n.labels, root) then
        local e = entry(found, slug)
        e.networks[#e.networks + 1] = { id = n.id, name = n.name }
      end
    end
  end

  -- The guests, as each backend reports them. An unlabelled guest counts
  -- only when a state dir of its slug exists.
  for _, backend in ipairs(target.names()) do
    local items, err = target.load(backend).inventory(env)
    if not items then
      unreachable[backend] = err
    end
    for _, item in ipairs(items or {}) do
      local mine = item.labels == nil or names.ours(item.labels, root)
      if mine and (item.labelled ~= false or (found[item.slug] and found[item.slug].state_dir)) then
        local e = entry(found, item.slug)
        item.backend = backend
        e.guests[#e.guests + 1] = item
        e.backend = e.backend or backend
      end
    end
  end
  local said = {}
  for _, key in ipairs(sorted_keys(unreachable)) do
    if not said[unreachable[key]] then
      said[unreachable[key]] = true
      notes[#notes + 1] = unreachable[key]
    end
  end

  for _, e in pairs(found) do
    if e.meta then
      e.backend = e.backend or e.meta.backend
      e.agent = e.agent or e.meta.agent
      e.created = e.created or e.meta.created
      if #e.daemons == 0 and type(e.meta.daemons) == "table" then
        e.daemons = e.meta.daemons
      end
    end
    e.live = owner_alive(e.meta)
    -- every backend keeps its bundle and networks on the engine; a guest
    -- only on its own backend (any, when we cannot tell which)
    e.unchecked = {}
    if unreachable.engine then
      e.unchecked[#e.unchecked + 1] = "docker"
    end
    for _, b in ipairs(sorted_keys(unreachable)) do
      if b ~= "engine" and (e.backend == nil or e.backend == b) and not (b == "docker" and unreachable.engine) then
        e.unchecked[#e.unchecked + 1] = b
      end
    end
  end
  return found, notes, unreachable
end

local function sorted(found)
  local list = {}
  for _, e in pairs(found) do
    list[#list + 1] = e
  end
  table.sort(list, function(a, b)
    return a.slug < b.slug
  end)
  return list
end

local function has_resources(e)
  return #e.containers + #e.networks + #e.guests > 0
end

local function as_json(e)
  local containers, machines, networks = json.array(), json.array(), json.array()
  for _, c in ipairs(e.containers) do
    containers[#containers + 1] = c.name
  end
  for _, g in ipairs(e.guests) do
    local list = g.kind == "container" and containers or machines
    list[#list + 1] = g.name
  end
  for _, n in ipairs(e.networks) do
    networks[#networks + 1] = n.name
  end
  return {
    slug = e.slug,
    backend = e.backend or json.null,
    agent = e.agent or json.null,
    created = e.created or json.null,
    status = e.live and "running" or "orphaned",
    daemons = json.array({ table.unpack(e.daemons) }),
    containers = containers,
    networks = networks,
    machines = machines,
    state_dir = e.state_dir or json.null,
  }
end

--- `bottle ls [--json]`: launches with live resources.
function M.ls(opts, env)
  env = env or proc.environ()
  local found, notes = M.scan(env)
  local rows = {}
  for _, e in ipairs(sorted(found)) do
    if has_resources(e) then
      rows[#rows + 1] = e
    end
  end
  -- A backend that did not answer makes the list incomplete: say so and
  -- fail, rather than print "no bottles" over resources we cannot see.
  local code = #notes > 0 and 1 or 0
  for _, n in ipairs(notes) do
    ui.error("cannot list %s", n)
  end
  if opts.json then
    local out = json.array()
    for _, e in ipairs(rows) do
      out[#out + 1] = as_json(e)
    end
    io.stdout:write(json.encode({ bottles = out, errors = json.array({ table.unpack(notes) }) }, true), "\n")
    return code
  end
  if #rows == 0 then
    if code == 0 then
      io.stdout:write("no bottles\n")
    end
    return code
  end
  io.stdout:write(string.format("%-28s %-13s %-10s %-5s %-9s %s\n", "SLUG", "BACKEND", "AGENT", "AGE", "STATUS",
    "DAEMONS"))
  for _, e in ipairs(rows) do
    io.stdout:write(string.format("%-28s %-13s %-10s %-5s %-9s %s\n", e.slug, e.backend or "?", e.agent or "?",
      ui.age(e.created), e.live and "running" or "orphaned", table.concat(e.daemons, ",")))
  end
  return code
end

local function describe(e)
  local parts = {}
  for _, c in ipairs(e.containers) do
    parts[#parts + 1] = "container " .. c.name
  end
  for _, g in ipairs(e.guests) do
    parts[#parts + 1] = g.kind .. " " .. g.name
  end
  for _, n in ipairs(e.networks) do
    parts[#parts + 1] = "network " .. n.name
  end
  if e.state_dir then
    parts[#parts + 1] = "state dir " .. e.state_dir
  end
  return parts
end

--- Removes one leftover launch: containers before networks, machines
--- stopped then deleted, the state dir last. Returns the failures.
local function remove(env, e)
  local failures = {}
  local function try(what, ok, err)
    if not ok then
      failures[#failures + 1] = what .. ": " .. tostring(err)
    end
  end
  for _, g in ipairs(e.guests) do
    try(g.kind .. " " .. g.name, target.load(g.backend).remove(env, g))
  end
  for _, c in ipairs(e.containers) do
    try("container " .. c.name, docker.container_remove(c.id, { force = true, volumes = true }))
  end
  for _, n in ipairs(e.networks) do
    try("network " .. n.name, docker.network_remove(n.id))
  end
  if e.state_dir and #failures == 0 and #e.unchecked == 0 then
    try("state dir " .. e.state_dir, fs.rm_rf(e.state_dir))
  end
  return failures
end

--- What the backends still hold of one launch, as "container NAME",
--- "machine NAME", "network NAME" (a failed teardown names them).
---@param env table
---@param slug string
---@return string[]
function M.leftovers(env, slug)
  local found = M.scan(env)
  local e = found[slug]
  local out = {}
  if e then
    e.state_dir = nil
    out = describe(e)
  end
  return out
end

--- `bottle cleanup [--yes] [--json]`: leftovers of crashed launches.
--- A backend that cannot be asked is an error (exit 1, and in the JSON an
--- `errors` array); what can be seen is still removed, but a launch's state
--- dir is kept while a backend that could hold its resources is unchecked.
function M.cleanup(opts, env, hooks)
  env = env or proc.environ()
  hooks = hooks or {}
  local found, notes = M.scan(env)
  local leftovers = {}
  for _, e in ipairs(sorted(found)) do
    if not e.live then
      leftovers[#leftovers + 1] = e
    end
  end
  local errs = json.array({ table.unpack(notes) })
  for _, n in ipairs(notes) do
    ui.error("cannot check %s", n)
  end
  local code = #notes > 0 and 1 or 0
  if #leftovers == 0 then
    if opts.json then
      io.stdout:write(json.encode({ removed = json.array(), failed = json.array(), kept = json.array(),
        errors = errs }, true), "\n")
    else
      ui.info(code == 0 and "nothing to clean up" or "nothing else found to clean up")
    end
    return code
  end
  ui.info("leftovers of crashed launches:")
  for _, e in ipairs(leftovers) do
    ui.info("  %s: %s", e.slug, table.concat(describe(e), ", "))
  end
  if not opts.yes then
    if not (hooks.interactive or ui.interactive)() then
      errors.raise("not removing anything: there is no terminal to confirm on; pass --yes")
    end
    if not (hooks.confirm or ui.confirm)("remove these?") then
      ui.info("aborted by user")
      return code
    end
  end
  local removed, failed, kept = json.array(), json.array(), json.array()
  for _, e in ipairs(leftovers) do
    local f = remove(env, e)
    if #f > 0 then
      failed[#failed + 1] = { slug = e.slug, errors = f }
      ui.error("%s: %s", e.slug, table.concat(f, "; "))
    elseif #e.unchecked > 0 and e.state_dir then
      local why = "could not check " .. table.concat(e.unchecked, " and ")
      kept[#kept + 1] = { slug = e.slug, state_dir = e.state_dir, reason = why }
      ui.warn("kept %s: %s, which may still hold its resources (run bottle cleanup again once it answers)",
        paths.pretty(env, e.state_dir), why)
    else
      removed[#removed + 1] = e.slug
      ui.info("removed %s", e.slug)
    end
  end
  if opts.json then
    io.stdout:write(json.encode({ removed = removed, failed = failed, kept = kept, errors = errs }, true), "\n")
  end
  return (#failed > 0 or #kept > 0) and 1 or code
end

return M
