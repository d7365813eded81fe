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
local time = require("rt.time")
local json = require("bottle.json")
local paths = require("bottle.paths")
local names = require("bottle.names")
local target = require("bottle.target")
local ui = require("bottle.ui")
local errors = require("bottle.errors")

local M = {}

local SLUG = names.SLUG_PATTERN
local L = names.LABEL

local function entry(found, slug)
  local e = found[slug]
  if not e then
    e = { slug = slug, containers = {}, networks = {}, guests = {}, daemons = {} }
    found[slug] = e
  end
  return e
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
---@param env table
---@return table found slug -> entry, table notes (engine/smolvm problems)
function M.scan(env)
  local found, notes = {}, {}
  local root = paths.state_root(env)
  for _, slug in ipairs(fs.list(root) or {}) do
    if slug:match(SLUG) then
      local e = entry(found, slug)
      e.state_dir = root .. "/" .. slug
      local text = fs.read(e.state_dir .. "/metadata.json")
      e.meta = text and json.decode(text) or nil
    end
  end

  -- The bundle and the networks: engine resources on every backend.
  local containers, cerr = docker.container_list({ labels = names.any_launch(), all = true })
  if containers == nil then
    -- an engine that is not there is not an error for ls/cleanup
    notes[#notes + 1] = "docker: " .. tostring(cerr)
  else
    for _, c in ipairs(containers) do
      local slug = c.labels[L.slug]
      if slug and c.labels[L.role] ~= "agent" then
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
    local nets = docker.network_list({ labels = names.any_launch() }) or {}
    for _, n in ipairs(nets) do
      local slug = n.labels and n.labels[L.slug]
      if slug then
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
      notes[#notes + 1] = err
    end
    for _, item in ipairs(items or {}) do
      if item.labelled ~= false or (found[item.slug] and found[item.slug].state_dir) then
        local e = entry(found, item.slug)
        item.backend = backend
        e.guests[#e.guests + 1] = item
        e.backend = e.backend or backend
      end
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
  end
  return found, notes
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

local function age(created)
  if not created then
    return "?"
  end
  local s = math.max(0, time.wall() - created)
  if s < 120 then
    return s .. "s"
  elseif s < 7200 then
    return (s // 60) .. "m"
  elseif s < 172800 then
    return (s // 3600) .. "h"
  end
  return (s // 86400) .. "d"
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
  local said = {}
  for _, n in ipairs(notes) do
    if not said[n] then
      said[n] = true
      ui.warn("%s", n)
    end
  end
  if opts.json then
    local out = json.array()
    for _, e in ipairs(rows) do
      out[#out + 1] = as_json(e)
    end
    io.stdout:write(json.encode(out, true), "\n")
    return 0
  end
  if #rows == 0 then
    io.stdout:write("no bottles\n")
    return 0
  end
  io.stdout:write(string.format("%-28s %-13s %-10s %-5s %-9s %s\n", "SLUG", "BACKEND", "AGENT", "AGE", "STATUS",
    "DAEMONS"))
  for _, e in ipairs(rows) do
    io.stdout:write(string.format("%-28s %-13s %-10s %-5s %-9s %s\n", e.slug, e.backend or "?", e.agent or "?",
      age(e.created), e.live and "running" or "orphaned", table.concat(e.daemons, ",")))
  end
  return 0
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
    try("container " .. c.name, docker.container_remove(c.id, { force = true }))
  end
  for _, n in ipairs(e.networks) do
    try("network " .. n.name, docker.network_remove(n.id))
  end
  if e.state_dir and #failures == 0 then
    try("state dir " .. e.state_dir, fs.rm_rf(e.state_dir))
  end
  return failures
end

--- `bottle cleanup [--yes] [--json]`: leftovers of crashed launches.
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
  local said = {}
  for _, n in ipairs(notes) do
    if not said[n] then
      said[n] = true
      ui.warn("%s", n)
    end
  end
  if #leftovers == 0 then
    if opts.json then
      io.stdout:write(json.encode({ removed = json.array(), failed = json.array() }, true), "\n")
    else
      ui.info("nothing to clean up")
    end
    return 0
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
      return 0
    end
  end
  local removed, failed = json.array(), json.array()
  for _, e in ipairs(leftovers) do
    local f = remove(env, e)
    if #f == 0 then
      removed[#removed + 1] = e.slug
      ui.info("removed %s", e.slug)
    else
      failed[#failed + 1] = { slug = e.slug, errors = f }
      ui.error("%s: %s", e.slug, table.concat(f, "; "))
    end
  end
  if opts.json then
    io.stdout:write(json.encode({ removed = removed, failed = failed }, true), "\n")
  end
  return #failed > 0 and 1 or 0
end

return M
