--- Error values that carry a one-line message and an optional detail.
--
-- Recipes raise these for expected failures: the CLI prints the message on
-- one line (`error: ...`) and the detail (a stderr tail, an engine log)
-- indented below it. Anything else raised is treated as a bug and printed
-- with its position.
local M = {}

local Error = {}
Error.__index = Error
Error.__tostring = function(e)
  return e.message
end

---@param message string one line: what failed and why
---@param detail? string longer text (a tool's stderr tail)
---@param code? string the failure's code (an errno name, an engine code)
---@return table
function M.new(message, detail, code)
  message = tostring(message):gsub("%s*\n%s*", " ")
  return setmetatable({ message = message, detail = detail, code = code }, Error)
end

--- Raises an error value (no position prefix: the message stands alone).
---@param message string
---@param detail? string
---@param code? string
function M.raise(message, detail, code)
  error(M.new(message, detail, code), 0)
end

--- The raising twin of the `nil, message, code` convention every rt.*
--- primitive and returning bottle.* function follows: returns all its
--- arguments when the first is not nil, else raises the message (with its
--- code) as an expected failure, never as a bug.
---   local id = errors.must(docker.container_create(spec))
---@generic T
---@param v T|nil
---@param message? string
---@param code? string
---@return T
function M.must(v, message, code, ...)
  if v == nil then
    if M.is(message) then
      error(message, 0)
    end
    error(M.new(message or "failed", nil, code), 0)
  end
  return v, message, code, ...
end

---@return boolean
function M.is(v)
  return getmetatable(v) == Error
end

--- The last `n` lines of a text, for an error's detail.
---@param text string|nil
---@param n? integer
---@return string|nil
function M.tail(text, n)
  if not text or text == "" then
    return nil
  end
  n = n or 20
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    lines[#lines + 1] = line
  end
  local from = math.max(1, #lines - n + 1)
  return table.concat(lines, "\n", from)
end

--- The first line of a text, trimmed (for one-line messages).
---@param text string|nil
---@return string
function M.first_line(text)
  text = text or ""
  local line = text:match("^%s*([^\n]*)") or ""
  return (line:gsub("%s+$", ""))
end

return M
