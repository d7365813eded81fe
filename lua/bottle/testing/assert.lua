--- Assertions for bottle's Lua tests and scenario files.
--
-- Each raises an error describing the mismatch (with a path into tables
-- for deep comparisons); `skip(reason)` ends a test as skipped.
local M = {}

local SKIP = {}

local function show(v)
  if type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end

local function diff(a, b, path)
  if type(a) ~= type(b) then
    return string.format("%s: got %s (%s), want %s (%s)", path, show(a), type(a), show(b), type(b))
  end
  if type(a) ~= "table" then
    if a ~= b then
      return string.format("%s: got %s, want %s", path, show(a), show(b))
    end
    return nil
  end
  for k, v in pairs(b) do
    local d = diff(a[k], v, path .. "." .. tostring(k))
    if d then
      return d
    end
  end
  for k, v in pairs(a) do
    if b[k] == nil then
      return string.format("%s.%s: unexpected %s", path, tostring(k), show(v))
    end
  end
  return nil
end

local function fail(msg, level)
  error(msg, (level or 1) + 2)
end

--- Deep equality.
function M.eq(got, want, msg)
  local d = diff(got, want, "value")
  if d then
    fail((msg and (msg .. ": ") or "") .. d)
  end
end

function M.neq(got, other, msg)
  if diff(got, other, "value") == nil then
    fail((msg and (msg .. ": ") or "") .. "values are equal: " .. show(got))
  end
end

function M.ok(v, msg)
  if not v then
    fail(msg or ("expected a true value, got " .. show(v)))
  end
  return v
end

function M.falsy(v, msg)
  if v then
    fail(msg or ("expected a false value, got " .. show(v)))
  end
end

--- fn must raise; returns the error as a string. With `pattern`, the
--- message must contain it (plain text, not a Lua pattern).
function M.raises(fn, pattern, ...)
  local ok, err = pcall(fn, ...)
  if ok then
    fail("expected an error" .. (pattern and (" containing " .. show(pattern)) or ""))
  end
  local s = tostring(err)
  if pattern and not s:find(pattern, 1, true) then
    fail(string.format("error %s does not contain %s", show(s), show(pattern)))
  end
  return s
end

function M.contains(haystack, needle, msg)
  if type(haystack) == "table" then
    for _, v in ipairs(haystack) do
      if diff(v, needle, "") == nil then
        return
      end
    end
    fail((msg and (msg .. ": ") or "") .. "list does not contain " .. show(needle))
  end
  if not tostring(haystack):find(needle, 1, true) then
    fail(string.format("%s%s does not contain %s", msg and (msg .. ": ") or "", show(haystack), show(needle)))
  end
end

function M.not_contains(haystack, needle, msg)
  if tostring(haystack):find(needle, 1, true) then
    fail(string.format("%s%s contains %s", msg and (msg .. ": ") or "", show(haystack), show(needle)))
  end
end

function M.match(s, pattern, msg)
  if not tostring(s):match(pattern) then
    fail(string.format("%s%s does not match %s", msg and (msg .. ": ") or "", show(s), show(pattern)))
  end
end

function M.skip(reason)
  error(setmetatable({ reason = reason }, SKIP), 0)
end

function M.is_skip(e)
  return getmetatable(e) == SKIP
end

return M
