--- Opening one more host for a live launch: egress's routes file and
--- pipelock's allowlist in the launch's state dir, edited in place.
--
-- The bundle has both files as single-file bind mounts, which pin the
-- inode: they are rewritten with rt.fs.overwrite, never renamed over. The
-- pipelock config is edited as text (one list item added under
-- api_allowlist), so whatever else render.lua puts in it stays as it was;
-- the result is parsed again and must differ from the old config by that
-- one host only.
local fs = require("rt.fs")
local yaml = require("rt.yaml")
local json = require("bottle.json")

local M = {}

local MAX_HOST = 253

--- nil when host is a plausible DNS name (lowercase, at least two labels,
--- not an IP address), else what is wrong with it. The name comes from
--- inside the bottle: it is checked again here before it reaches a config.
---@param host any
---@return string|nil
function M.host_problem(host)
  if type(host) ~= "string" or host == "" then
    return "host must be a non-empty string"
  end
  -- it may come from inside the bottle: never print its control characters
  local shown = host:sub(1, 80):gsub("%c", "?")
  if #host > MAX_HOST then
    return "host is longer than " .. MAX_HOST .. " characters"
  end
  local labels = 0
  local last
  for label in (host .. "."):gmatch("([^.]*)%.") do
    if #label < 1 or #label > 63 or not label:match("^[a-z0-9][a-z0-9-]*$") or label:match("%-$") then
      return string.format("host '%s' is not a valid DNS name", shown)
    end
    labels = labels + 1
    last = label
  end
  if labels < 2 then
    return string.format("host '%s' is not a fully qualified name", shown)
  end
  if last:match("^%d+$") then
    return string.format("host '%s' is an IP address", shown)
  end
  return nil
end

local ARRAY_FIELDS = { routes = true, matches = true, paths = true, methods = true }

-- Decoded JSON loses the difference between [] and {}: mark the route
-- table's lists again so they encode as arrays.
local function mark_arrays(v, key)
  if type(v) ~= "table" then
    return v
  end
  for k, x in pairs(v) do
    v[k] = mark_arrays(x, k)
  end
  if ARRAY_FIELDS[key] then
    return json.array(v)
  end
  return v
end

--- The routes file's text with a pass-through route for host added; nil
--- when a route for host exists; nil, message when text is not a table.
---@param text string
---@param host string
function M.routes_with(text, host)
  local t, err = json.decode(text)
  if type(t) ~= "table" or type(t.routes) ~= "table" then
    return nil, "does not parse: " .. (err or "no routes list")
  end
  for _, r in ipairs(t.routes) do
    if type(r) ~= "table" or type(r.host) ~= "string" then
      return nil, "does not parse: a route without a host"
    end
    if r.host:lower() == host then
      return nil
    end
  end
  t = mark_arrays(t)
  t.routes[#t.routes + 1] = { host = host, auth_scheme = json.null, token_env = json.null, matches = json.array() }
  return json.encode(t, true) .. "\n"
end

local function same(a, b)
  if type(a) ~= type(b) then
    return false
  end
  if type(a) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

--- pipelock's config text with host added to api_allowlist; nil when it is
--- listed already; nil, message when the text does not parse or the edit
--- would change anything else.
---@param text string
---@param host string
function M.pipelock_with(text, host)
  local old, perr = yaml.load(text, "pipelock.yaml")
  if type(old) ~= "table" then
    return nil, "does not parse: " .. (perr or "not a mapping")
  end
  local list = old.api_allowlist
  if list ~= nil and type(list) ~= "table" then
    return nil, "api_allowlist is not a list"
  end
  for _, h in ipairs(list or {}) do
    if type(h) == "string" and h:lower() == host then
      return nil
    end
  end
  local lines = {}
  for line in (text:sub(-1) == "\n" and text or text .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  local at, item
  for i, line in ipairs(lines) do
    if line:match("^api_allowlist:%s*$") then
      at, item = i, "- "
      for j = i + 1, #lines do
        local indent = lines[j]:match("^(%s*)%- ")
        if not indent then
          break
        end
        at, item = j, indent .. "- "
      end
      break
    elseif line:match("^api_allowlist:%s*%[%s*%]%s*$") then
      lines[i] = "api_allowlist:"
      at, item = i, "- "
      break
    end
  end
  if not at then
    if list ~= nil then
      return nil, "api_allowlist is not a block list bottle can extend"
    end
    lines[#lines + 1] = "api_allowlist:"
    at, item = #lines, "- "
  end
  table.insert(lines, at + 1, item .. host)
  local out = table.concat(lines, "\n") .. "\n"
  local new = yaml.load(out, "pipelock.yaml")
  local want = {}
  for k, v in pairs(old) do
    want[k] = v
  end
  want.api_allowlist = { table.unpack(list or {}) }
  want.api_allowlist[#want.api_allowlist + 1] = host
  if not same(new, want) then
    return nil, "adding " .. host .. " to api_allowlist would change more than that list"
  end
  return out
end

--- Adds host to the launch's routes file and pipelock allowlist, in place.
--- Both edits are computed before either file is written.
---@param state table { egress_routes = path, pipelock_yaml = path }
---@param host string
---@return table|nil changed { routes = bool, pipelock = bool }, string|nil message
function M.add_host(state, host)
  local problem = M.host_problem(host)
  if problem then
    return nil, problem
  end
  local edits = {}
  for _, f in ipairs({ { "routes", state.egress_routes, M.routes_with, "egress routes file" },
    { "pipelock", state.pipelock_yaml, M.pipelock_with, "pipelock config" } }) do
    local text, err = fs.read(f[2])
    if not text then
      return nil, f[4] .. ": " .. err
    end
    local new, why = f[3](text, host)
    if why then
      return nil, string.format("%s %s %s; nothing changed", f[4], f[2], why)
    end
    edits[#edits + 1] = { key = f[1], path = f[2], text = new }
  end
  local changed = { routes = false, pipelock = false }
  for _, e in ipairs(edits) do
    if e.text then
      local ok, err = fs.overwrite(e.path, e.text)
      if not ok then
        return nil, err
      end
      changed[e.key] = true
    end
  end
  return changed
end

return M
