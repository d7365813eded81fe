--- Non-Lua files bottle ships (the git-gate scripts), found like modules:
--- each root's copy first (same relative path, e.g.
--- ~/.config/bottle/images/git-gate/pre-receive), then the built-in one.
local host = require("rt.host")
local fs = require("rt.fs")
local errors = require("bottle.errors")

local M = {}

--- The text of a shipped file, and where it came from.
---@param tree string path in the source tree, e.g. "images/git-gate/pre-receive"
---@return string text, string origin
function M.read(tree)
  for _, r in ipairs(host.roots()) do
    local path = r.dir .. "/" .. tree
    if fs.exists(path) then
      local text, err = fs.read(path)
      if not text then
        errors.raise(err)
      end
      return text, path
    end
  end
  local text = host.builtin_source(tree)
  if not text then
    errors.raise(string.format("built-in file %s is missing from this build", tree))
  end
  return text, "builtin:" .. tree
end

return M
