--- Names and labels of everything a launch creates.
--
-- Every resource carries io.bottle.slug and io.bottle.role, and `bottle ls`
-- and `bottle cleanup` find resources by those labels, never by name. This
-- module is the one place that spells either, so a backend cannot drift
-- from what the inventory looks for.
local M = {}

M.LABEL = {
  slug = "io.bottle.slug",
  role = "io.bottle.role",
  backend = "io.bottle.backend",
  agent = "io.bottle.agent",
  daemons = "io.bottle.daemons",
  -- The launch's state dir: whose launch this is. An engine is often
  -- shared (by users, by checkouts); `bottle cleanup` touches only the
  -- resources of launches under its own state root.
  state = "io.bottle.state",
}

--- What a slug looks like: <label or agent>-<6 hex digits>.
M.SLUG_PATTERN = "^[a-z0-9][a-z0-9-]*%-%x%x%x%x%x%x$"

--- bottle-<role>-<slug>: the engine resources of a launch.
---@param role "network"|"upstream"|"bundle"|"agent"
---@param slug string
function M.resource(role, slug)
  return string.format("bottle-%s-%s", role, slug)
end

--- bottle-<slug>: the launch's VM.
function M.machine(slug)
  return "bottle-" .. slug
end

--- The slug a VM name carries, or nil.
function M.slug_of_machine(name)
  local slug = tostring(name):match("^bottle%-(.+)$")
  if slug and slug:match(M.SLUG_PATTERN) then
    return slug
  end
  return nil
end

--- The labels of one resource of a launch. `plan` gives slug, backend and
--- agent; role names what the resource is; extra adds more.
---@param plan table
---@param role string
---@param extra? table
---@return table labels
function M.labels(plan, role, extra)
  local out = {
    [M.LABEL.slug] = plan.slug,
    [M.LABEL.role] = role,
    [M.LABEL.backend] = plan.backend,
    [M.LABEL.agent] = plan.agent and plan.agent.name or nil,
    [M.LABEL.state] = plan.state and plan.state.dir or nil,
  }
  for k, v in pairs(extra or {}) do
    out[k] = v
  end
  return out
end

--- Whether a resource's labels say it belongs to a launch under
--- `state_root` (resources made before the label existed count as ours).
---@param labels table
---@param state_root string
function M.ours(labels, state_root)
  local dir = labels and labels[M.LABEL.state]
  return dir == nil or dir == "" or dir:sub(1, #state_root + 1) == state_root .. "/"
end

--- The label filter that selects every bottle-made resource.
function M.any_launch()
  return { [M.LABEL.slug] = "" }
end

return M
