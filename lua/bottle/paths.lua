--- Where bottle keeps things, from the XDG variables in ctx.env.
local M = {}

local function home(env)
  local h = env.HOME
  if not h or h == "" then
    error("HOME is not set", 0)
  end
  return h
end

local function xdg(env, var, fallback)
  local v = env[var]
  if v and v:sub(1, 1) == "/" then
    return v
  end
  return home(env) .. "/" .. fallback
end

---@param env table environment (ctx.env)
function M.config_dir(env)
  return xdg(env, "XDG_CONFIG_HOME", ".config") .. "/bottle"
end

--- The parent of every launch's state dir.
function M.state_root(env)
  return xdg(env, "XDG_STATE_HOME", ".local/state") .. "/bottle"
end

function M.cache_dir(env)
  return xdg(env, "XDG_CACHE_HOME", ".cache") .. "/bottle"
end

--- Expands a leading ~ or ~/ to HOME.
function M.expand(env, path)
  if path == "~" then
    return home(env)
  end
  if path:sub(1, 2) == "~/" then
    return home(env) .. path:sub(2)
  end
  return path
end

--- Shortens HOME to ~ for messages.
function M.pretty(env, path)
  local h = env.HOME
  if h and h ~= "" and h ~= "/" and path:sub(1, #h + 1) == h .. "/" then
    return "~" .. path:sub(#h + 1)
  end
  return path
end

return M
