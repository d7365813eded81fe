--- What bottle says on stderr: log levels, step progress and prompts.
--
-- Everything goes through rt.log, which redacts registered secrets. Steps
-- show a spinner on a terminal and one line with their duration when done;
-- `-q` keeps only errors, `-v` adds every command and engine call.
local log = require("rt.log")
local time = require("rt.time")
local proc = require("rt.proc")

local M = {}

local function fmt(s, ...)
  if select("#", ...) > 0 then
    return string.format(s, ...)
  end
  return tostring(s)
end

function M.info(s, ...)
  log.write("info", fmt(s, ...))
end

function M.warn(s, ...)
  log.write("warn", fmt(s, ...))
end

function M.error(s, ...)
  log.write("error", fmt(s, ...))
end

--- Indented continuation lines under an error (a tool's stderr tail).
function M.detail(text)
  for line in tostring(text):gmatch("[^\n]+") do
    log.write("error", "  " .. line, true)
  end
end

function M.trace(s, ...)
  if log.level() == "trace" then
    log.write("trace", fmt(s, ...))
  end
end

---@return boolean
function M.verbose()
  return log.level() == "trace"
end

local function color(code, s)
  if log.color() then
    return "\27[" .. code .. "m" .. s .. "\27[0m"
  end
  return s
end

-- Keeps an expected failure (a bottle.errors value) as it is; anything
-- else is a bug, and gets the traceback of where it was raised, which -v
-- prints.
local function keep_trace(e)
  local errors = require("bottle.errors")
  if errors.is(e) or type(e) ~= "string" or e:find("^interrupted by ") then
    return e
  end
  return debug.traceback(e, 2)
end

--- Runs fn(...) as a named launch step: spinner while it runs (terminal
--- only), then one line `✓ name (1.2s)`; on error `✗ name (0.3s)` and the
--- error propagates, prefixed with the step's name.
---@param name string
---@param fn function
function M.step(name, fn, ...)
  local started = time.now_ms()
  log.step_begin(name)
  local results = table.pack(xpcall(fn, keep_trace, ...))
  local secs = (time.now_ms() - started) / 1000
  if results[1] then
    log.step_end(string.format("%s %s (%.1fs)", color("32", "✓"), name, secs))
    return table.unpack(results, 2, results.n)
  end
  log.step_end(string.format("%s %s (%.1fs)", color("31", "✗"), name, secs))
  error(M.in_step(name, results[2]), 0)
end

--- Prefixes an error's message with the step it happened in ("bundle:
--- container create: Conflict ..."), unless it already names it. Interrupts
--- pass through unchanged.
function M.in_step(name, err)
  local errors = require("bottle.errors")
  local msg = errors.is(err) and err.message or tostring(err)
  if msg:find("^interrupted by ") or msg:sub(1, #name + 1) == name .. ":" then
    return err
  end
  if errors.is(err) then
    err.message = name .. ": " .. msg
    return err
  end
  return name .. ": " .. msg
end

--- Asks a yes/no question on the terminal. Returns true only for y/yes
--- (any case); EOF or anything else is no.
---@param question string
---@return boolean
function M.confirm(question)
  io.stderr:write(question, " [y/N] ")
  io.stderr:flush()
  local answer = io.stdin:read("l")
  if answer == nil then
    io.stderr:write("\n")
    return false
  end
  answer = answer:lower():gsub("^%s+", ""):gsub("%s+$", "")
  return answer == "y" or answer == "yes"
end

--- A short age ("42s", "5m", "3h", "2d") of a time in epoch seconds, for
--- listings (`bottle ls`, `bottle supervise`); "?" when unknown.
---@param since integer|nil
---@return string
function M.age(since)
  if not since then
    return "?"
  end
  local s = math.max(0, time.wall() - since)
  if s < 120 then
    return s .. "s"
  elseif s < 7200 then
    return (s // 60) .. "m"
  elseif s < 172800 then
    return (s // 3600) .. "h"
  end
  return (s // 86400) .. "d"
end

---@return boolean true when stdin and stderr are a terminal (prompts can be asked)
function M.interactive()
  return proc.isatty(0) and proc.isatty(2)
end

--- argv as one shell line, each word quoted when it needs it (what the
--- summary shows, so `bash -lc 'echo hi'` reads back as it was typed).
---@param argv string[]
---@return string
function M.command_line(argv)
  local out = {}
  for i, a in ipairs(argv) do
    if a ~= "" and not a:find("[^%w%-_./=:,@%%+]") then
      out[i] = a
    else
      out[i] = "'" .. a:gsub("'", "'\\''") .. "'"
    end
  end
  return table.concat(out, " ")
end

return M
