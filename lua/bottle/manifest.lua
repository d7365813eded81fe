--- Bottle and agent manifests: discovery, parsing, validation, merging.
--
-- A manifest is Markdown with a YAML frontmatter block between `---` lines
-- (docs/manifests.md). Bottles (infrastructure policy: env, egress routes, git-gate,
-- supervise) are trusted configuration and are only ever read from the
-- user's config dir; a repository's ./.bottle/bottles is never read. Agents
-- (persona: prompt, skills, default bottle, git identity) come from the user
-- dir or the project's ./.bottle/agents. Every problem raises one message
-- naming the file, the line and the key.
local yaml = require("rt.yaml")
local fs = require("rt.fs")
local S = require("bottle.schema")
local errors = require("bottle.errors")
local paths = require("bottle.paths")
local defaults = require("bottle.defaults")
local environment = require("bottle.environment")

local M = {}

M.NAME_PATTERN = "^[a-z][a-z0-9-]*$"

--- The largest manifest bottle reads (frontmatter and prompt together).
M.MAX_BYTES = 1048576
--- The most variables one bottle's env may declare.
M.MAX_ENV = 500
local ENV_NAME = "^[A-Za-z_][A-Za-z0-9_]*$"

--- Variables bottle itself sets in the guest; a bottle may not override them.
M.RESERVED_ENV = {
  HTTP_PROXY = true, HTTPS_PROXY = true, NO_PROXY = true, http_proxy = true, https_proxy = true,
  no_proxy = true, GIT_GATE_URL = true, MCP_SUPERVISE_URL = true, NODE_EXTRA_CA_CERTS = true,
  SSL_CERT_FILE = true, REQUESTS_CA_BUNDLE = true, HOME = true, USER = true,
}

local METHODS = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" }

-- ---- schemas ---------------------------------------------------------------

local name_ref = S.string({ pattern = M.NAME_PATTERN, expect = "a manifest name (lowercase letters, digits, '-')" })

local user_spec = S.map({
  name = S.string({ nonempty = true }),
  email = S.string({ pattern = "^[^@%s]+@[^@%s]+$", expect = "an email address" }),
})

local env_name = S.string({ pattern = ENV_NAME, expect = "an environment variable name" })

local auth_spec = S.map({
  scheme = S.enum({ "Bearer", "token" }),
  token_ref = env_name,
}, {
  check = function(out, where)
    if out.scheme == nil or out.token_ref == nil then
      local missing = {}
      if out.scheme == nil then
        missing[#missing + 1] = "scheme"
      end
      if out.token_ref == nil then
        missing[#missing + 1] = "token_ref"
      end
      S.fail(where, "needs both scheme and token_ref (missing %s)", table.concat(missing, " and "))
    end
  end,
})

local path_match = S.map({
  type = S.enum({ "prefix", "exact" }),
  value = S.string({ pattern = "^/", expect = "a path starting with /" }),
}, { required = { "type", "value" } })

local match_spec = S.map({
  paths = S.list(path_match, { of = "path matches" }),
  methods = S.list(S.enum(METHODS), { of = "HTTP methods" }),
})

local host_spec = S.string({
  pattern = "^[%w][%w.-]*[%w]$",
  expect = "a host name like api.github.com (no scheme, port or path)",
})

local route_spec = S.map({
  host = host_spec,
  auth = auth_spec,
  matches = S.list(match_spec, { of = "match entries" }),
}, { required = { "host" } })

local egress_spec = S.map({
  routes = S.list(route_spec, { of = "routes" }),
}, {
  check = function(out)
    local seen = {}
    for i, r in ipairs(out.routes or {}) do
      local h = r.host:lower()
      if seen[h] then
        S.fail_at(out.routes, i, "duplicate route for host %s (routes[%d] already covers it; one route per host)",
          r.host, seen[h])
      end
      seen[h] = i
    end
  end,
})

--- True for URLs git reaches over SSH (ssh://… or scp-like user@host:path).
function M.is_ssh_url(url)
  return url:match("^ssh://") ~= nil or (url:match("^[%w._-]+@[%w.-]+:") ~= nil and not url:match("^%a+://"))
end

local repo_spec = S.map({
  url = S.string({ pattern = "^%S+$", expect = "a git URL (ssh://, https://, git@host:path, file://)" }),
  identity = S.string({ nonempty = true }),
  host_key = S.string({ pattern = "^%S+ %S+", expect = "a pinned public key line like 'ssh-ed25519 AAAA...'" }),
}, {
  required = { "url" },
  check = function(out, where)
    if out.url and M.is_ssh_url(out.url) then
      if out.identity == nil then
        S.fail(where, "missing identity: an SSH upstream needs the host private key git-gate pushes with")
      end
      if out.host_key == nil then
        S.fail(where, "missing host_key: git-gate refuses to forward to a host whose key is not pinned")
      end
    end
  end,
})

local bottle_spec = S.map({
  extends = name_ref,
  env = S.map_of(env_name, S.scalar_string(), { of = "variable names to values" }),
  egress = egress_spec,
  ["git-gate"] = S.map({
    user = user_spec,
    repos = S.map_of(S.string({ pattern = "^[%w][%w._-]*$", expect = "a repo name (letters, digits, . _ -)" }),
      repo_spec, { of = "repo names to repos" }),
  }),
  supervise = S.boolean(),
  images = S.map({ agent = S.string({ nonempty = true }), sidecars = S.string({ nonempty = true }) }),
  -- Provisioning steps run after the defaults, in this order: each a step
  -- file recipes/steps/<name>.lua in the search path (docs/recipes.md).
  provision = S.list(S.string({ pattern = "^[a-z][a-z0-9_-]*$",
    expect = "a step name (recipes/steps/<name>.lua): lowercase letters, digits, - and _" }),
    { of = "step names" }),
}, {
  check = function(out)
    local n = 0
    for _ in pairs(out.env or {}) do
      n = n + 1
    end
    if n > M.MAX_ENV then
      S.fail_at(out, "env", "%d variables; a bottle declares at most %d", n, M.MAX_ENV)
    end
    for k, v in pairs(out.env or {}) do
      if M.RESERVED_ENV[k] then
        S.fail_at(out.env, k, "%s is set by bottle itself and cannot be overridden", k)
      end
      local why = environment.check_value(v)
      if why then
        S.fail_at(out.env, k, "%s", why)
      end
    end
  end,
})

-- Claude Code subagent fields: one file may serve both tools.
local CLAUDE_FIELDS = { "name", "description", "tools", "disallowedTools", "model", "color", "permissionMode" }

local agent_spec = S.map({
  bottle = name_ref,
  skills = S.list(S.string({ pattern = "^[%w][%w._-]*$", expect = "a skill directory name" }), { of = "skill names" }),
  ["git-gate"] = S.map({ user = user_spec }),
}, { ignored = CLAUDE_FIELDS })

-- ---- parsing -----------------------------------------------------------------

--- Splits a manifest into its frontmatter YAML and body.
---@param text string
---@param file string path for messages
---@return string yaml, string body, integer yaml_first_line
function M.split(text, file)
  if text:sub(1, 3) == "\239\187\191" then
    text = text:sub(4)
  end
  local first = text:match("^([^\n]*)")
  if not first or not first:match("^%-%-%-%s*\r?$") then
    errors.raise(string.format("%s:1: expected a YAML frontmatter block starting with a '---' line", file))
  end
  local lines = {}
  local pos = #first + 2
  local line_no = 1
  while pos <= #text + 1 do
    local nl = text:find("\n", pos, true)
    local line = text:sub(pos, (nl or #text + 1) - 1)
    line_no = line_no + 1
    if line:match("^%-%-%-%s*\r?$") or line:match("^%.%.%.%s*\r?$") then
      local body = nl and text:sub(nl + 1) or ""
      return table.concat(lines, "\n"), body, 2
    end
    lines[#lines + 1] = line
    if not nl then
      break
    end
    pos = nl + 1
  end
  errors.raise(string.format("%s:1: the frontmatter opened here is never closed with a '---' line", file))
end

local function check_name(name, file)
  if not name:match(M.NAME_PATTERN) then
    errors.raise(string.format("%s: bad manifest name '%s': file names must match %s (lowercase letters, digits, '-')",
      file, name, "^[a-z][a-z0-9-]*$"))
  end
end

-- Text that is not UTF-8 or holds a NUL byte is refused before YAML sees it:
-- the body becomes the agent's prompt verbatim.
local function check_text(text, file)
  local nul = text:find("\0", 1, true)
  local bad = nul or select(2, utf8.len(text))
  if bad then
    local line = select(2, text:sub(1, bad - 1):gsub("\n", "")) + 1
    errors.raise(string.format("%s:%d: %s (byte %d); a manifest must be UTF-8 text", file, line,
      nul and "contains a NUL byte" or "is not valid UTF-8", bad))
  end
end

--- Reads a manifest file bottle found on the user's behalf: it must resolve
--- to a regular file of at most MAX_BYTES, and with `within` (the project
--- directory, for ./.bottle/agents) it must resolve inside that directory,
--- so a cloned repository cannot point bottle at the user's other files.
---@param env table
---@param path string
---@param within? string
---@return string text, string|nil target the resolved path when `path` is a link
function M.read_file(env, path, within)
  local shown = paths.pretty(env, path)
  local real, rerr = fs.realpath(path)
  if not real then
    local why = tostring(rerr):match(":%s*([^:]*)$") or tostring(rerr)
    errors.raise(string.format("%s: cannot resolve it (%s); a symlink must point at an existing file", shown, why))
  end
  local target = real ~= path and real or nil
  if target then
    local parent_real = fs.realpath(path:match("^(.*)/") or ".")
    if parent_real and parent_real .. "/" .. path:match("[^/]*$") == real then
      target = nil -- only a directory above it is a link; the file itself is not
    end
  end
  local link = target and (shown .. " -> " .. paths.pretty(env, target)) or shown
  if within then
    local root = fs.realpath(within) or within
    if real:sub(1, #root + 1) ~= root .. "/" then
      errors.raise(string.format("%s: refused: it resolves outside the project directory %s " ..
        "(a repository's agent file must stay inside the repository)", link, paths.pretty(env, root)))
    end
  end
  local text, err, code = fs.read(path, { max = M.MAX_BYTES })
  if not text then
    if code == "ENOTREG" then
      errors.raise(string.format("%s: not a regular file (%s); a manifest must be a regular file", link,
        tostring(err):match("%(([^()]*)%)$") or "not a file"))
    elseif code == "EFBIG" then
      errors.raise(string.format("%s: too large (over %d bytes); a manifest is at most %d KiB", link, M.MAX_BYTES,
        M.MAX_BYTES // 1024))
    end
    errors.raise(err)
  end
  return text, target
end

--- Parses and validates manifest text.
---@param text string
---@param kind "bottle"|"agent"
---@param name string
---@param file string pretty path for messages
---@return table manifest { name, kind, file, meta, body }
function M.parse(text, kind, name, file)
  check_name(name, file)
  check_text(text, file)
  local src, body, first_line = M.split(text, file)
  local doc, err = yaml.load(src, file, { line_offset = first_line - 1 })
  if doc == nil then
    errors.raise(err)
  end
  if doc == yaml.null then
    doc = {}
  end
  local meta = S.check(doc, kind == "bottle" and bottle_spec or agent_spec, { file = file, line = first_line })
  return { name = name, kind = kind, file = file, meta = meta, body = body }
end

-- ---- discovery -------------------------------------------------------------

--- Finds and loads a manifest. Returns nil when no file and no built-in exists.
---@param env table ctx.env
---@param kind "bottle"|"agent"
---@param name string
---@param cwd string
function M.find(env, kind, name, cwd)
  if not name:match(M.NAME_PATTERN) then
    errors.raise(string.format("bad %s name '%s': names match ^[a-z][a-z0-9-]*$", kind, name))
  end
  local dirs = { { dir = paths.config_dir(env) .. "/" .. kind .. "s", where = "user" } }
  if kind == "agent" then
    dirs[#dirs + 1] = { dir = cwd .. "/.bottle/agents", where = "project" }
  end
  local found
  for _, d in ipairs(dirs) do
    local path = d.dir .. "/" .. name .. ".md"
    local st = fs.stat(path)
    if st then
      if found then
        require("bottle.ui").warn("agent '%s' in %s is shadowed by %s", name, paths.pretty(env, path), found.file)
        break
      end
      local text, target = M.read_file(env, path, d.where == "project" and cwd or nil)
      found = M.parse(text, kind, name, paths.pretty(env, path))
      found.origin = d.where
      found.path = path
      if target then
        -- the plan and the summary name what is read, not only the link
        found.target = target
        found.file = found.file .. " -> " .. paths.pretty(env, target)
      end
    end
  end
  if found then
    return found
  end
  local text = defaults.manifest(kind, name)
  if text then
    local m = M.parse(text, kind, name, "builtin:" .. kind .. "s/" .. name .. ".md")
    m.origin = "builtin"
    return m
  end
  return nil
end

--- Warns about a ./.bottle/bottles directory: it is never read.
function M.warn_project_bottles(env, cwd)
  local st = fs.stat(cwd .. "/.bottle/bottles")
  if st and st.type == "dir" then
    require("bottle.ui").warn("ignoring %s/.bottle/bottles: bottles are read only from %s/bottles " ..
      "(a repository must not define or redirect a bottle)", paths.pretty(env, cwd),
      paths.pretty(env, paths.config_dir(env)))
  end
end

-- ---- merging ---------------------------------------------------------------

local function overlay(base, top)
  local out = {}
  for k, v in pairs(base or {}) do
    out[k] = v
  end
  for k, v in pairs(top or {}) do
    out[k] = v
  end
  return out
end

--- Merges child over parent: env per key (child wins); egress,
--- git-gate.repos, supervise and provision replaced wholesale when the
--- child declares them (an explicit empty value clears); git-gate.user and
--- images per field.
function M.merge(parent, child)
  local out = {}
  out.env = overlay(parent.env, child.env)
  out.env_origin = overlay(parent.env_origin, child.env_origin)
  for _, k in ipairs({ "egress", "supervise", "provision" }) do
    if child[k] ~= nil then
      out[k] = child[k]
    else
      out[k] = parent[k]
    end
  end
  local pg, cg = parent["git-gate"] or {}, child["git-gate"] or {}
  out["git-gate"] = {
    user = (pg.user or cg.user) and overlay(pg.user, cg.user) or nil,
    repos = cg.repos ~= nil and cg.repos or pg.repos,
  }
  out.images = overlay(parent.images, child.images)
  return out
end

--- A bottle's effective settings after following `extends` (parents must be
--- user-dir bottles; cycles are errors).
---@return table settings, string[] chain (names, root first)
function M.resolve_bottle(env, name, cwd, seen)
  seen = seen or {}
  local m = M.find(env, "bottle", name, cwd)
  if not m then
    errors.raise(string.format("no bottle named '%s' (looked for %s/bottles/%s.md)", name,
      paths.pretty(env, paths.config_dir(env)), name))
  end
  local meta = m.meta
  local own = overlay(meta, {})
  own.env_origin = {}
  for k in pairs(meta.env or {}) do
    own.env_origin[k] = { file = m.file, table = meta.env }
  end
  if not meta.extends then
    return own, { name }, m
  end
  local parent_name = meta.extends
  if parent_name == name then
    S.fail_at(meta, "extends", "a bottle cannot extend itself")
  end
  if seen[parent_name] then
    S.fail_at(meta, "extends", "extends cycle: %s -> %s", table.concat(seen._chain, " -> "), parent_name)
  end
  local pm = M.find(env, "bottle", parent_name, cwd)
  if not pm or pm.origin ~= "user" then
    S.fail_at(meta, "extends", "parent bottle '%s' not found in %s/bottles (a parent must be a user-dir bottle)",
      parent_name, paths.pretty(env, paths.config_dir(env)))
  end
  seen[name] = true
  seen._chain = seen._chain or { name }
  seen._chain[#seen._chain + 1] = parent_name
  local parent, chain = M.resolve_bottle(env, parent_name, cwd, seen)
  chain[#chain + 1] = name
  return M.merge(parent, own), chain, m
end

return M
