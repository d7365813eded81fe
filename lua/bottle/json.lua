--- JSON with a stable key order, for the plan and `--json` outputs.
--
-- Decoding is cjson's (runtime/l_cjson.c: lua-cjson's API over libcJSON).
-- Encoding walks the value itself so that object
-- keys come out sorted (diffable output) and an empty list can be told from
-- an empty object: mark lists with json.array(t) (objects are the default
-- for empty tables). Scalars are encoded by cjson.
local cjson = require("cjson")

local M = {}

local ARRAY = { __json_array = true }

--- Marks t as a JSON array (so an empty t encodes as []).
function M.array(t)
  return setmetatable(t or {}, ARRAY)
end

M.null = cjson.null

-- cjson escapes "/" as "\/" (as lua-cjson does); valid but noisy in paths. A "\/" in its
-- output is always that escape (a real backslash is "\\" and every "/" is
-- escaped), so undoing it is safe.
local function scalar(v)
  local s = cjson.encode(v)
  if type(v) == "string" then
    s = s:gsub("\\/", "/")
  end
  return s
end

local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt.__json_array then
    return true
  end
  local n = #t
  if n == 0 then
    return false
  end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return false
    end
  end
  return true
end

local function encode(v, out, indent, depth)
  local t = type(v)
  if t == "table" then
    if depth > 64 then
      error("json: nesting too deep (a cycle?)", 0)
    end
    local pad = indent and ("\n" .. string.rep(indent, depth + 1)) or ""
    local close = indent and ("\n" .. string.rep(indent, depth)) or ""
    local sep = indent and ": " or ":"
    if is_array(v) then
      if #v == 0 then
        out[#out + 1] = "[]"
        return
      end
      out[#out + 1] = "["
      for i, item in ipairs(v) do
        out[#out + 1] = (i > 1 and "," or "") .. pad
        encode(item, out, indent, depth + 1)
      end
      out[#out + 1] = close .. "]"
      return
    end
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" then
        error("json: object keys must be strings (got " .. type(k) .. ")", 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    if #keys == 0 then
      out[#out + 1] = "{}"
      return
    end
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      out[#out + 1] = (i > 1 and "," or "") .. pad .. scalar(k) .. sep
      encode(v[k], out, indent, depth + 1)
    end
    out[#out + 1] = close .. "}"
  elseif t == "string" or t == "number" or t == "boolean" or v == cjson.null then
    out[#out + 1] = scalar(v)
  elseif v == nil then
    out[#out + 1] = "null"
  else
    error("json: cannot encode a " .. t, 0)
  end
end

--- Encodes v; with pretty, indents by two spaces.
---@param v any
---@param pretty? boolean
---@return string
function M.encode(v, pretty)
  local out = {}
  encode(v, out, pretty and "  " or nil, 0)
  return table.concat(out)
end

--- Decodes text; returns value or nil, message.
function M.decode(text)
  local ok, v = pcall(cjson.decode, text)
  if not ok then
    return nil, tostring(v)
  end
  return v
end

return M
