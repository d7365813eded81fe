--- Checking YAML values against a declared shape, with messages that name
--- the file, the line, the key and what was expected.
--
-- A schema is built from the constructors below and applied with
-- schema.check(value, spec, where). It returns a normalised copy: an
-- explicitly empty container (`egress:` with no value) becomes an empty
-- table, so callers can tell "declared empty" (present, empty) from "not
-- declared" (nil). The first problem raises a bottle.errors value:
--   ~/.config/bottle/bottles/work.md:7: egress.routes[2].auth: needs both scheme and token_ref
local yaml = require("rt.yaml")
local errors = require("bottle.errors")

local M = {}

-- normalised table -> { file=, path=, src=<the YAML table it came from> },
-- so later checks (an unset variable, a missing file) can still name the
-- line: see M.fail_at.
local origins = setmetatable({}, { __mode = "k" })

-- Edit distance counting a swap of two neighbours as one edit ("hots" is
-- one typo away from "host").
local function edit_distance(a, b)
  local d = {}
  for i = 0, #a do
    d[i] = { [0] = i }
  end
  for j = 0, #b do
    d[0][j] = j
  end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and a:sub(i - 1, i - 1) == b:sub(j, j) then
        d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
      end
    end
  end
  return d[#a][#b]
end

--- The closest of `choices` to `word`, when close enough to be a typo.
---@param word string
---@param choices string[]
---@return string|nil
function M.suggest(word, choices)
  local best, best_d
  for _, c in ipairs(choices) do
    local d = edit_distance(word:lower(), c:lower())
    if d < (best_d or math.huge) then
      best, best_d = c, d
    end
  end
  if best and best_d <= math.max(1, math.floor(#word / 3)) then
    return best
  end
  return nil
end

-- where = { file = "<pretty path>", parent = <yaml table>, key = <key>, path = "a.b" }
local function line_of(where)
  if where.parent ~= nil and type(where.parent) == "table" then
    local line = yaml.mark(where.parent, where.key)
    if line then
      return line
    end
    line = yaml.mark(where.parent)
    if line then
      return line
    end
  end
  return where.line
end

--- Raises a positioned error for `where`.
function M.fail(where, fmt, ...)
  local line = line_of(where)
  local loc = where.file .. (line and (":" .. line) or "")
  local path = where.path ~= "" and (where.path .. ": ") or ""
  errors.raise(loc .. ": " .. path .. string.format(fmt, ...))
end

local function describe(v)
  if v == yaml.null then
    return "an empty value"
  end
  local t = type(v)
  if t == "table" then
    return (#v > 0 or next(v) == nil) and "a list" or "a mapping"
  end
  if t == "string" then
    return string.format("the string %q", v)
  end
  return string.format("%s %s", t == "number" and "the number" or "the value", tostring(v))
end

local function remember(out, where, src)
  origins[out] = { file = where.file, path = where.path, src = src, line = where.line }
  return out
end

local function sorted_keys(v)
  local keys = {}
  for k in pairs(v) do
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    local la, lb = yaml.mark(v, a) or 0, yaml.mark(v, b) or 0
    if la ~= lb then
      return la < lb
    end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local function child(where, parent, key, path)
  return { file = where.file, parent = parent, key = key, path = path, line = where.line }
end

local function is_seq(v)
  if type(v) ~= "table" then
    return false
  end
  local n = #v
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return false
    end
  end
  return true
end

local function is_map(v)
  if type(v) ~= "table" then
    return false
  end
  for k in pairs(v) do
    if type(k) ~= "string" then
      return false
    end
  end
  return true
end

-- Each constructor returns { check = function(value, where) -> normalised } .

--- A string; opts.pattern (Lua pattern) with opts.expect describing it.
function M.string(opts)
  opts = opts or {}
  return {
    kind = "string",
    check = function(v, where)
      if type(v) ~= "string" then
        M.fail(where, "expected %s, got %s", opts.expect or "a string", describe(v))
      end
      if opts.pattern and not v:match(opts.pattern) then
        M.fail(where, "expected %s, got %q", opts.expect or ("a string matching " .. opts.pattern), v)
      end
      if opts.nonempty and v == "" then
        M.fail(where, "must not be empty")
      end
      return v
    end,
  }
end

--- Any scalar, returned as a string (env values: `DEBUG: 1` means "1").
function M.scalar_string()
  return {
    kind = "string",
    check = function(v, where)
      local t = type(v)
      if t == "string" then
        return v
      end
      if t == "number" then
        return math.type(v) == "integer" and string.format("%d", v) or tostring(v)
      end
      if t == "boolean" then
        return tostring(v)
      end
      M.fail(where, "expected a string value, got %s", describe(v))
    end,
  }
end

function M.boolean()
  return {
    kind = "boolean",
    check = function(v, where)
      if v == yaml.null then
        return false
      end
      if type(v) ~= "boolean" then
        M.fail(where, "expected true or false, got %s", describe(v))
      end
      return v
    end,
  }
end

--- One of a fixed set of strings (exact case).
function M.enum(values)
  return {
    kind = "string",
    check = function(v, where)
      for _, ok in ipairs(values) do
        if v == ok then
          return v
        end
      end
      local hint = type(v) == "string" and M.suggest(v, values)
      M.fail(where, "expected one of %s, got %s%s", table.concat(values, ", "), describe(v),
        hint and string.format("; did you mean '%s'?", hint) or "")
    end,
  }
end

--- A list of items; an explicitly empty value is an empty list.
function M.list(item, opts)
  opts = opts or {}
  return {
    kind = "list",
    check = function(v, where)
      if v == yaml.null then
        return {}
      end
      if not is_seq(v) then
        M.fail(where, "expected a list%s, got %s", opts.of and (" of " .. opts.of) or "", describe(v))
      end
      local out = {}
      for i, x in ipairs(v) do
        out[i] = item.check(x, child(where, v, i, string.format("%s[%d]", where.path, i)))
      end
      return remember(out, where, v)
    end,
  }
end

local function join_path(base, key)
  if base == "" then
    return key
  end
  return base .. "." .. key
end

--- A mapping with a fixed set of keys.
--- opts.required: keys that must be present; opts.ignored: keys accepted
--- and dropped (another tool's fields); opts.check(out, where): extra rule.
function M.map(fields, opts)
  opts = opts or {}
  local allowed = {}
  for k in pairs(fields) do
    allowed[#allowed + 1] = k
  end
  table.sort(allowed)
  local ignored = {}
  for _, k in ipairs(opts.ignored or {}) do
    ignored[k] = true
  end
  return {
    kind = "map",
    fields = fields,
    check = function(v, where)
      if v == yaml.null then
        v = {}
      end
      if not is_map(v) or (next(v) ~= nil and is_seq(v)) then
        M.fail(where, "expected a mapping with keys %s, got %s", table.concat(allowed, ", "), describe(v))
      end
      local out = {}
      remember(out, where, v)
      for _, k in ipairs(sorted_keys(v)) do
        local spec = fields[k]
        local kw = child(where, v, k, join_path(where.path, k))
        if spec then
          out[k] = spec.check(v[k], kw)
        elseif not ignored[k] then
          local hint = M.suggest(k, allowed)
          local at = where.path ~= "" and (" in " .. where.path) or ""
          kw.path = ""
          M.fail(kw, "unknown key '%s'%s (allowed: %s)%s", k, at, table.concat(allowed, ", "),
            hint and string.format("; did you mean '%s'?", hint) or "")
        end
      end
      for _, k in ipairs(opts.required or {}) do
        if out[k] == nil then
          M.fail(where, "missing required key '%s'", k)
        end
      end
      if opts.check then
        opts.check(out, where, v)
      end
      return out
    end,
  }
end

--- A mapping with free-form keys (env names, repo names): every key checked
--- by key_spec (a string spec), every value by value_spec.
function M.map_of(key_spec, value_spec, opts)
  opts = opts or {}
  return {
    kind = "map",
    check = function(v, where)
      if v == yaml.null then
        return {}
      end
      if not is_map(v) or (next(v) ~= nil and is_seq(v)) then
        M.fail(where, "expected a mapping%s, got %s", opts.of and (" of " .. opts.of) or "", describe(v))
      end
      local out = {}
      for _, k in ipairs(sorted_keys(v)) do
        local kw = child(where, v, k, join_path(where.path, k))
        key_spec.check(k, kw)
        out[k] = value_spec.check(v[k], kw)
      end
      return remember(out, where, v)
    end,
  }
end

--- Raises a positioned error about `key` of a table schema.check produced
--- (or about the table itself when key is nil).
---@param out table a normalised table
---@param key any|nil
function M.fail_at(out, key, fmt, ...)
  local o = origins[out]
  if not o then
    errors.raise(string.format(fmt, ...))
  end
  local path = o.path
  if key ~= nil then
    path = math.type(key) == "integer" and string.format("%s[%d]", path, key) or join_path(path, key)
  end
  M.fail({ file = o.file, parent = o.src, key = key, path = path, line = o.line }, fmt, ...)
end

--- Where a normalised table came from: file, line (or nil).
function M.origin(out)
  local o = origins[out]
  if not o then
    return nil
  end
  return o.file, (o.src and yaml.mark(o.src)) or o.line
end

--- Applies spec to value. `where` = { file = <pretty path>, line = <fallback line> }.
function M.check(value, spec, where)
  return spec.check(value, { file = where.file, line = where.line, path = "", parent = nil })
end

return M
