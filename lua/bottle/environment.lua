--- The bottle's `env`: literals, host variables and values asked at launch.
--
-- Forms (docs/manifests.md): "${NAME}" as the whole value copies the host variable
-- NAME (missing is an error naming it); "?" or "?question" is asked on the
-- terminal at launch without echo (or, without a terminal, taken from
-- BOTTLE_ASK_<NAME> or the file BOTTLE_ASK_<NAME>_FILE names); anything else
-- is a literal. A "${" anywhere else, or a value that is only "$NAME", is
-- refused: it would otherwise be passed on literally, which is never what
-- was meant. Host and
-- asked values are registered as secrets, so no log, error or trace ever
-- shows them; the sentinels themselves never reach a guest.
local fs = require("rt.fs")
local proc = require("rt.proc")
local S = require("bottle.schema")
local errors = require("bottle.errors")

local M = {}

local HOST_REF = "^%${([A-Za-z_][A-Za-z0-9_]*)}$"

--- Why a raw env value is refused, or nil when it is one of the forms.
---@param value string
---@return string|nil
function M.check_value(value)
  if value:match(HOST_REF) or value:sub(1, 1) == "?" then
    return nil
  end
  local bare = value:match("^%$([A-Za-z_][A-Za-z0-9_]*)$")
  if bare then
    return string.format("\"%s\" would be passed on literally; write \"${%s}\" to copy the host variable",
      value, bare)
  end
  if value:find("${", 1, true) then
    return string.format("\"${...}\" is only substituted as the whole value (\"${NAME}\"), not inside %q; " ..
      "set the whole value in a host variable and copy that", value)
  end
  return nil
end

--- Classifies one value.
---@return table entry { name, kind = "literal"|"host"|"prompt", value?, var?, question? }
function M.classify(name, value)
  local why = M.check_value(value)
  if why then
    errors.raise(string.format("env %s: %s", name, why))
  end
  local var = value:match(HOST_REF)
  if var then
    return { name = name, kind = "host", var = var }
  end
  if value:sub(1, 1) == "?" then
    local q = value:sub(2):gsub("^%s+", "")
    return { name = name, kind = "prompt", question = q ~= "" and q or ("Value for " .. name) }
  end
  return { name = name, kind = "literal", value = value }
end

--- The entries of a merged env table, sorted by name, with host values
--- resolved (and registered as secrets). `origins` maps a name to the
--- normalised table it was declared in (for the error's file and line).
---@param env_table table NAME -> raw value
---@param origins table NAME -> { table = <normalised env table> }
---@param host_env table
---@return table[] entries
function M.resolve(env_table, origins, host_env)
  local names = {}
  for k in pairs(env_table) do
    names[#names + 1] = k
  end
  table.sort(names)
  local out = {}
  for _, name in ipairs(names) do
    local e = M.classify(name, env_table[name])
    if e.kind == "prompt" then
      M.given(e, host_env)
    elseif e.kind == "host" then
      local v = host_env[e.var]
      if v == nil then
        local o = origins[name]
        if o then
          S.fail_at(o.table, name, "host variable %s is not set (the value \"${%s}\" copies it)", e.var, e.var)
        end
        errors.raise(string.format("env %s: host variable %s is not set", name, e.var))
      end
      e.value = v
      e.secret = true
      proc.secret(v)
    end
    out[#out + 1] = e
  end
  return out
end

--- The variables that answer a "?" entry without a terminal.
---@param name string
---@return string value_var, string file_var
function M.given_vars(name)
  return "BOTTLE_ASK_" .. name, "BOTTLE_ASK_" .. name .. "_FILE"
end

-- Largest answer file read for a "?" value (a token, a password).
local ANSWER_MAX_BYTES = 65536

--- Fills a "?" entry from BOTTLE_ASK_<NAME> (the value) or
--- BOTTLE_ASK_<NAME>_FILE (a file holding it; one trailing newline is
--- dropped), so a launch without a terminal can still have it. Returns
--- true when it did.
---@param e table a prompt entry
---@param host_env table
---@return boolean
function M.given(e, host_env)
  local value_var, file_var = M.given_vars(e.name)
  local v = host_env[value_var]
  if v == nil and host_env[file_var] then
    local path = host_env[file_var]
    local text, err = fs.read(path, { max = ANSWER_MAX_BYTES })
    if not text then
      errors.raise(string.format("env %s: cannot read the value from %s=%s: %s", e.name, file_var, path,
        tostring(err):match(":%s*([^:]*)$") or tostring(err)))
    end
    v = text:gsub("\r?\n$", "")
  end
  if v == nil then
    return false
  end
  e.value = v
  e.secret = true
  e.given = host_env[value_var] and value_var or file_var
  proc.secret(v)
  return true
end

--- Asks every "?" entry not given through BOTTLE_ASK_<NAME> (after the user
--- confirmed the launch) and returns the answers, NAME -> value, registered
--- as secrets; the entries (part of the plan) stay as they are. `ask` is
--- ui.ask_secret unless a test passes its own; when it fails (no
--- terminal), the error names the variables that give the value instead.
---@param entries table[]
---@param ask fun(question: string, name: string): string|nil
---@return table answers
function M.ask(entries, ask)
  local answers = {}
  for _, e in ipairs(entries) do
    if e.kind == "prompt" and e.value == nil then
      local ok, v = pcall(ask, e.question, e.name)
      if not ok and require("rt.host").signal() ~= 0 then
        error(v, 0)
      elseif not ok then
        local value_var, file_var = M.given_vars(e.name)
        local why = errors.is(v) and v.message or tostring(v)
        errors.raise(string.format("cannot ask for %s (%s); without a terminal give it as %s=<value> or " ..
          "%s=<file holding it> in bottle's environment", e.name, why, value_var, file_var))
      end
      if v == nil then
        errors.raise(string.format("no value given for %s", e.name))
      end
      proc.secret(v)
      answers[e.name] = v
    end
  end
  return answers
end

return M
