--- The plan: everything decided before any resource exists.
--
-- plan.build reads manifests and the host environment and returns a table
-- describing the launch: slug, hops, routes and token slots, the bundle
-- spec, the guest env, the provisioning steps and the rendered config files
-- (as text; plan.materialize writes them). It creates nothing, so a dry run
-- is just build + summary. Secret values (tokens, forwarded and asked env
-- values) live only in fields marked secret and are registered with the
-- redactor; plan.to_json never includes them.
local fs = require("rt.fs")
local proc = require("rt.proc")
local time = require("rt.time")
local S = require("bottle.schema")
local errors = require("bottle.errors")
local paths = require("bottle.paths")
local defaults = require("bottle.defaults")
local manifest = require("bottle.manifest")
local environment = require("bottle.environment")
local hops = require("bottle.hops")
local bundle = require("bottle.bundle")
local render = require("bottle.render")
local json = require("bottle.json")

local M = {}

--- Guest paths of the CA the ca step installs.
M.GUEST_CA = "/usr/local/share/ca-certificates/bottle-mitm.crt"
M.GUEST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
M.PROMPT_FILE = "/home/node/.bottle-prompt.txt"
M.PLACEHOLDER_TOKEN = "bottle-placeholder-not-a-token"

local LABEL_PATTERN = "^[a-z0-9][a-z0-9-]*$"

local function in_list(list, v)
  for _, x in ipairs(list) do
    if x == v then
      return true
    end
  end
  return false
end

--- The daemons a hop policy may name. pipelock has no upstream-proxy
--- setting, so nothing can follow it.
M.HOPS = { egress = true, pipelock = true }

--- Checks what the hop policy returned: a non-empty list of known daemons,
--- each once, pipelock (when present) last. Raises naming the problem.
---@param list any
---@return string[] hops
function M.check_hops(list)
  local origin = require("rt.host").locate("bottle.hops")
  local who = "bottle.hops.order" .. (origin and not origin.builtin and (" (" .. origin.path .. ")") or "")
  if type(list) ~= "table" or #list == 0 then
    errors.raise(string.format("%s must return a non-empty list of daemon names (egress, pipelock), got %s", who,
      type(list) == "table" and "an empty list" or type(list)))
  end
  local seen = {}
  for i, h in ipairs(list) do
    if not M.HOPS[h] then
      errors.raise(string.format("%s returned an unknown daemon %s at position %d; hops are egress and pipelock",
        who, type(h) == "string" and ("'" .. h .. "'") or tostring(h), i))
    end
    if seen[h] then
      errors.raise(string.format("%s names %s twice", who, h))
    end
    seen[h] = true
    if h == "pipelock" and i ~= #list then
      errors.raise(string.format("%s puts %s after pipelock, but pipelock forwards straight to the internet: " ..
        "it must be the last hop", who, list[i + 1]))
    end
  end
  return { table.unpack(list) }
end

--- The hop after `daemon` in the agent's path, or nil (it goes direct).
function M.next_hop(plan, daemon)
  for i, h in ipairs(plan.hops) do
    if h == daemon then
      return plan.hops[i + 1]
    end
  end
  return nil
end

--- Whether a daemon sits in the agent's HTTP(S) path.
function M.in_path(plan, daemon)
  return in_list(plan.hops, daemon)
end

local function new_slug(ctx, agent_name)
  local label = ctx.opts.label
  if label ~= nil then
    if not label:match(LABEL_PATTERN) or #label > 32 then
      errors.raise(string.format("bad --label '%s': use up to 32 lowercase letters, digits and '-'", label))
    end
  end
  return string.format("%s-%s", label or agent_name, fs.random_hex(3))
end

local function state_paths(root)
  return {
    dir = root,
    metadata = root .. "/metadata.json",
    pipelock_dir = root .. "/pipelock",
    pipelock_yaml = root .. "/pipelock/pipelock.yaml",
    pipelock_ca_cert = root .. "/pipelock/ca.crt",
    pipelock_ca_key = root .. "/pipelock/ca.key",
    egress_dir = root .. "/egress",
    egress_routes = root .. "/egress/routes.json",
    egress_ca_cert = root .. "/egress/ca.crt",
    egress_ca_pem = root .. "/egress/ca.pem",
    egress_upstream_ca = root .. "/egress/upstream-ca.pem",
    git_gate_dir = root .. "/git-gate",
    supervise_queue = root .. "/supervise",
    audit = root .. "/audit.jsonl",
    sockets_dir = root .. "/sockets",
    upstream_ca = root .. "/pipelock/upstream-ca.pem",
  }
end

-- Routes the bottle(s) declare, with token slots: the first authenticated
-- route naming token_ref X gets EGRESS_TOKEN_<n>, later ones naming X share
-- it; routes without auth get none.
local function routes_and_slots(declared, host_env)
  local routes, slots, slot_of = {}, {}, {}
  for i, r in ipairs(declared) do
    local route = { host = r.host:lower(), matches = r.matches }
    if r.auth then
      local ref = r.auth.token_ref
      local v = host_env[ref]
      if v == nil or v == "" then
        S.fail_at(r.auth, "token_ref", "%s is %s in the environment; this route's token comes from it", ref,
          v == nil and "not set" or "empty")
      end
      proc.secret(v)
      if not slot_of[ref] then
        slot_of[ref] = "EGRESS_TOKEN_" .. #slots
        slots[#slots + 1] = { slot = slot_of[ref], ref = ref }
      end
      route.auth_scheme = r.auth.scheme
      route.token_ref = ref
      route.token_env = slot_of[ref]
    end
    routes[i] = route
  end
  return routes, slots
end

local function allowlist(routes)
  local out, seen = {}, {}
  local function add(h)
    h = h:lower()
    if not seen[h] then
      seen[h] = true
      out[#out + 1] = h
    end
  end
  for _, h in ipairs(defaults.ALLOWLIST) do
    add(h)
  end
  for _, r in ipairs(routes) do
    add(r.host)
  end
  return out
end

-- egress's table: the declared routes, plus the default hosts as bare
-- pass-through routes when egress is the agent-facing hop. Empty when the
-- hop policy leaves egress out of the agent's path (egress then idles).
local function egress_table(routes, hop_list)
  local out, covered = {}, {}
  if not in_list(hop_list, "egress") then
    return out
  end
  for i, r in ipairs(routes) do
    out[i] = r
    covered[r.host] = true
  end
  if hop_list[1] == "egress" then
    for _, h in ipairs(defaults.ALLOWLIST) do
      if not covered[h] then
        out[#out + 1] = { host = h, matches = {}, passthrough = true }
      end
    end
  end
  return out
end

-- BOTTLE_EXTRA_CA: colon-separated PEM files of further CAs the bundle
-- trusts for upstream connections (a TLS-inspecting corporate proxy, a
-- self-hosted git server).
local function extra_cas(env)
  local out = {}
  for path in (env.BOTTLE_EXTRA_CA or ""):gmatch("[^:]+") do
    path = paths.expand(env, path)
    local st = fs.stat(path)
    if not st or st.type ~= "file" then
      errors.raise(string.format("BOTTLE_EXTRA_CA: %s is not a file", path))
    end
    out[#out + 1] = path
  end
  return out
end

-- BOTTLE_BUNDLE_HOSTS: "name:ip,name:ip" entries for the bundle's
-- /etc/hosts (an upstream your DNS does not serve, such as a git server on
-- a private address).
local function extra_hosts(env)
  local out = {}
  for item in (env.BOTTLE_BUNDLE_HOSTS or ""):gmatch("[^,%s]+") do
    local name, ip = item:match("^([%w.-]+):([%x.:]+)$")
    if not name then
      errors.raise(string.format("BOTTLE_BUNDLE_HOSTS: expected name:ip entries separated by commas, got %q", item))
    end
    out[#out + 1] = name .. ":" .. ip
  end
  return out
end

-- Skill directories are copied into the guest whole; these bound what a
-- careless link (a skill pointing at $HOME) can make bottle pack.
local SKILL_MAX_BYTES = 64 * 1048576
local SKILL_MAX_ENTRIES = 10000
local IDENTITY_MAX_BYTES = 65536

-- Sums a skill tree without following links inside it (tar stores those
-- as links); nil and a reason when it is over a cap.
local function skill_size(dir)
  local bytes, entries = 0, 0
  local stack = { dir }
  while #stack > 0 do
    local d = table.remove(stack)
    for _, name in ipairs(fs.list(d) or {}) do
      entries = entries + 1
      if entries > SKILL_MAX_ENTRIES then
        return nil, string.format("over %d files", SKILL_MAX_ENTRIES)
      end
      local st = fs.stat(d .. "/" .. name)
      if st and st.type == "dir" then
        stack[#stack + 1] = d .. "/" .. name
      elseif st and st.type == "file" then
        bytes = bytes + st.size
        if bytes > SKILL_MAX_BYTES then
          return nil, string.format("over %d MiB", SKILL_MAX_BYTES // 1048576)
        end
      elseif st and st.type == "other" then
        local rel = (d .. "/" .. name):sub(#dir + 2)
        return nil, string.format("%s, which is not a regular file, directory or link", rel)
      end
    end
  end
  return bytes
end

local function check_skills(env, agent)
  local skills = agent.meta.skills or {}
  local out = {}
  for i, name in ipairs(skills) do
    local dir = paths.expand(env, "~/.claude/skills/" .. name)
    local real = fs.realpath(dir)
    local st = real and fs.stat(real)
    if not st or st.type ~= "dir" then
      S.fail_at(skills, i, "skill '%s' not found: %s is not a directory", name, paths.pretty(env, dir))
    end
    local ok, why = skill_size(real)
    if not ok then
      S.fail_at(skills, i, "skill '%s' cannot be copied: %s%s holds %s", name, paths.pretty(env, dir),
        real ~= dir and (" (-> " .. paths.pretty(env, real) .. ")") or "", why)
    end
    out[#out + 1] = { name = name, dir = dir }
  end
  return out
end

-- An identity file is bind-mounted into the bundle: it must resolve to a
-- small regular file (not a FIFO, a device or a directory).
local function check_identity(env, r)
  local identity = paths.expand(env, r.identity)
  local real = fs.realpath(identity)
  local st = real and fs.stat(real)
  if not st then
    S.fail_at(r, "identity", "identity file %s not found", paths.pretty(env, identity))
  end
  local shown = paths.pretty(env, identity) .. (real ~= identity and (" -> " .. paths.pretty(env, real)) or "")
  if st.type ~= "file" then
    S.fail_at(r, "identity", "identity file %s is not a regular file", shown)
  end
  if st.size > IDENTITY_MAX_BYTES then
    S.fail_at(r, "identity", "identity file %s is too large for a private key (%d bytes; at most %d)", shown,
      st.size, IDENTITY_MAX_BYTES)
  end
  return identity
end

local function git_gate(env, settings, agent)
  local gg = settings["git-gate"] or {}
  local repos = {}
  local names = {}
  for name in pairs(gg.repos or {}) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local r = gg.repos[name]
    local identity = r.identity and check_identity(env, r) or nil
    repos[#repos + 1] = { name = name, url = r.url, identity = identity, host_key = r.host_key }
  end
  local user = gg.user
  local agent_user = agent.meta["git-gate"] and agent.meta["git-gate"].user
  if agent_user then
    user = user or {}
    local merged = {}
    for k, v in pairs(user) do
      merged[k] = v
    end
    for k, v in pairs(agent_user) do
      merged[k] = v
    end
    user = merged
  end
  return { repos = repos, user = user }
end

local function guest_env(plan, env_entries)
  local list = {}
  local function add(name, value, extra)
    local e = { name = name, value = value }
    for k, v in pairs(extra or {}) do
      e[k] = v
    end
    list[#list + 1] = e
  end
  -- `launch` entries are resolved by the launch record once the bundle's
  -- addresses are known (bottle.launch.connect).
  -- Both spellings: curl reads only the lower-case http_proxy for http://
  -- URLs, other tools only the upper-case ones.
  add("HTTPS_PROXY", nil, { launch = "proxy" })
  add("HTTP_PROXY", nil, { launch = "proxy" })
  add("NO_PROXY", "localhost,127.0.0.1")
  add("https_proxy", nil, { launch = "proxy" })
  add("http_proxy", nil, { launch = "proxy" })
  add("no_proxy", "localhost,127.0.0.1")
  if #plan.git_gate.repos > 0 then
    add("GIT_GATE_URL", nil, { launch = "git_gate" })
  end
  if plan.supervise then
    add("MCP_SUPERVISE_URL", nil, { launch = "supervise" })
  end
  add("NODE_EXTRA_CA_CERTS", M.GUEST_CA)
  add("SSL_CERT_FILE", M.GUEST_CA_BUNDLE)
  add("REQUESTS_CA_BUNDLE", M.GUEST_CA_BUNDLE)
  for _, r in ipairs(plan.egress_table) do
    if r.host == "api.anthropic.com" and r.token_env then
      -- Not a secret: egress replaces it with the real token.
      add("CLAUDE_CODE_OAUTH_TOKEN", M.PLACEHOLDER_TOKEN)
      break
    end
  end
  -- The bottle's own entries; a `?` entry has no value here: the launch
  -- record holds the answer.
  for _, e in ipairs(env_entries) do
    list[#list + 1] = e
  end
  return list
end

-- The default steps for what the plan holds, then the bottle's own
-- `provision:` steps in the order it lists them.
local function provision_steps(plan, backend, extra)
  local steps = {}
  for _, name in ipairs(backend.steps or {}) do
    steps[#steps + 1] = name
  end
  steps[#steps + 1] = "ca"
  steps[#steps + 1] = "prompt"
  if #plan.agent.skills > 0 then
    steps[#steps + 1] = "skills"
  end
  if #plan.git_gate.repos > 0 or plan.git_gate.user then
    steps[#steps + 1] = "git"
  end
  if plan.supervise then
    steps[#steps + 1] = "supervise"
  end
  for i, name in ipairs(extra or {}) do
    if in_list(steps, name) then
      S.fail_at(extra, i, "step '%s' already runs by default; list only steps to add", name)
    end
    if not require("rt.host").locate("recipes.steps." .. name) then
      S.fail_at(extra, i, "no provisioning step named '%s' (looked for recipes/steps/%s.lua in the search path; " ..
        "see: bottle recipe list)", name, name)
    end
    steps[#steps + 1] = name
  end
  return steps
end

-- BOTTLE_SOCKETS: who serves the guest's sockets. "bundle": the bundle
-- itself, from the bind-mounted socket folder (nothing published on the
-- host; the default on Linux). "host": bottle relays from the sockets to
-- the bundle's ports published on host loopback (for engines whose bind
-- mounts do not carry unix sockets, such as Docker Desktop; the default
-- elsewhere).
local function socket_mode(env)
  local mode = env.BOTTLE_SOCKETS
  if mode == nil or mode == "" then
    return require("rt.host").os == "linux" and "bundle" or "host"
  end
  if mode ~= "bundle" and mode ~= "host" then
    errors.raise(string.format("BOTTLE_SOCKETS=%s: expected bundle (the bundle serves the sockets) or host " ..
      "(bottle relays them to published loopback ports)", mode))
  end
  return mode
end

-- The agent manifest and the merged settings of the bottle(s) it runs in.
local function agent_and_settings(ctx, env, cwd)
  local opts = ctx.opts or {}
  local agent_name = opts.agent or "claude"
  local agent = manifest.find(env, "agent", agent_name, cwd)
  if not agent then
    errors.raise(string.format("no agent named '%s' (looked in %s/agents and ./.bottle/agents)", agent_name,
      paths.pretty(env, paths.config_dir(env))))
  end
  local bottle_names = (opts.bottles and #opts.bottles > 0) and opts.bottles or { agent.meta.bottle or "default" }
  local settings
  for _, name in ipairs(bottle_names) do
    local s = manifest.resolve_bottle(env, name, cwd)
    settings = settings and manifest.merge(settings, s) or s
  end
  return agent, settings, bottle_names
end

local function agent_part(ctx, env, agent)
  local custom = #(ctx.args or {}) > 0
  return {
    name = agent.name,
    file = agent.file,
    origin = agent.origin,
    prompt = agent.body,
    has_prompt = agent.body:match("%S") ~= nil,
    skills = check_skills(env, agent),
    command = custom and ctx.args or defaults.AGENT_COMMAND,
    custom_command = custom,
  }
end

-- The hop order and what it decides: egress's upstream, the CAs, the CA
-- the guest trusts, egress's table.
local function hop_part(plan)
  plan.hops = M.check_hops(hops.order(plan))
  plan.egress_upstream = M.next_hop(plan, "egress")
  -- pipelock always runs and needs its CA; egress's only when it is in the
  -- agent's path. The agent trusts the agent-facing hop's CA alone.
  plan.egress_in_path = M.in_path(plan, "egress")
  plan.cas = plan.egress_in_path and { "pipelock", "egress" } or { "pipelock" }
  plan.guest_ca = plan.hops[1]
  plan.egress_table = egress_table(plan.routes, plan.hops)
end

-- The bundle: its sockets (for a backend reached through them), its spec
-- and a provisional subnet.
local function bundle_part(plan, env)
  if plan.access == "sockets" then
    local uid, gid = proc.ids()
    plan.owner = uid .. ":" .. gid
    plan.socket_mode = socket_mode(env)
    plan.sockets = bundle.sockets(plan)
  end
  plan.bundle = bundle.spec(plan)
  local net = errors.must(bundle.pick_subnet(env.BOTTLE_SUBNET_POOL or defaults.SUBNET_POOL, plan.slug, {}))
  plan.bundle.subnet, plan.bundle.gateway, plan.bundle.ip = net.subnet, net.gateway, net.ip
end

--- Builds the plan. Raises a positioned error on any bad input.
---@param ctx table recipe context (opts, env, args)
---@param backend_name string a backend (bottle.target.<name>)
---@return table plan
function M.build(ctx, backend_name)
  local backend = require("bottle.target").load(backend_name)
  local env = ctx.env
  local cwd = ctx.cwd or errors.must(fs.cwd())
  manifest.warn_project_bottles(env, cwd)
  local agent, settings, bottle_names = agent_and_settings(ctx, env, cwd)

  local plan = {
    recipe = ctx.name or backend_name,
    backend = backend_name,
    access = backend.access,
    bottles = bottle_names,
    created = time.wall(),
  }
  plan.agent = agent_part(ctx, env, agent)
  plan.slug = new_slug(ctx, agent.name)
  plan.env = environment.resolve(settings.env or {}, settings.env_origin or {}, env)
  local declared = settings.egress and settings.egress.routes or {}
  plan.routes, plan.token_slots = routes_and_slots(declared, env)
  hop_part(plan)
  plan.allowlist = allowlist(plan.routes)
  plan.git_gate = git_gate(env, settings, agent)
  plan.supervise = settings.supervise == true
  plan.images = {
    agent = env.BOTTLE_AGENT_IMAGE or (settings.images or {}).agent or defaults.IMAGES.agent,
    sidecars = env.BOTTLE_SIDECAR_IMAGE or (settings.images or {}).sidecars or defaults.IMAGES.sidecars,
  }
  plan.extra_cas = extra_cas(env)
  plan.extra_hosts = extra_hosts(env)
  plan.host_env_value = function(name)
    return env[name]
  end
  plan.state = state_paths(paths.state_root(env) .. "/" .. plan.slug)
  bundle_part(plan, env)
  plan.guest_env = guest_env(plan, plan.env)
  for k, v in pairs(backend.plan(plan, ctx) or {}) do
    if plan[k] ~= nil then
      errors.raise(string.format("backend %s: its plan field '%s' clashes with the plan's own", backend_name, k))
    end
    plan[k] = v
  end
  plan.provision = provision_steps(plan, backend, settings.provision)
  plan.files = M.render(plan)
  return plan
end

--- The rendered files: list of { path, content, mode }.
function M.render(plan)
  local st = plan.state
  local files = {
    { path = st.pipelock_yaml, content = render.pipelock_yaml(plan), mode = 384 },
    { path = st.egress_routes, content = render.egress_routes(plan), mode = 384 },
  }
  if #plan.git_gate.repos > 0 then
    local gg = render.git_gate_files(plan)
    for _, name in ipairs({ "entrypoint.sh", "access-hook", "pre-receive", "repos", "known_hosts" }) do
      files[#files + 1] = { path = st.git_gate_dir .. "/" .. name, content = gg[name], mode = 384 }
    end
  end
  return files
end

--- Creates the state dir (0700) and writes the rendered files (0600) and
--- metadata.json. Registers nothing: the recipe decides when the state dir
--- goes (removed after a clean exit, kept after a failure).
function M.materialize(plan)
  local st = plan.state
  local ok, err = fs.mkdir_p(st.dir, 448)
  if not ok then
    errors.raise("state dir: " .. err)
  end
  for _, d in ipairs({ st.pipelock_dir, st.egress_dir, st.git_gate_dir }) do
    errors.must(fs.mkdir_p(d, 448))
  end
  if plan.supervise then
    errors.must(fs.mkdir_p(st.supervise_queue, 448))
    -- it must exist before the bundle bind-mounts it as a file
    errors.must(fs.append(st.audit, "", 384))
  end
  if plan.sockets then
    errors.must(fs.mkdir_p(st.sockets_dir, 448))
  end
  for _, f in ipairs(plan.files) do
    ok, err = fs.write(f.path, f.content, f.mode)
    if not ok then
      errors.raise("state dir: " .. err)
    end
  end
  M.write_metadata(plan, {})
end

--- Records what the launch created (for `bottle ls` and `bottle cleanup`).
function M.write_metadata(plan, resources)
  local meta = {
    slug = plan.slug,
    backend = plan.backend,
    recipe = plan.recipe,
    agent = plan.agent.name,
    bottles = json.array({ table.unpack(plan.bottles) }),
    created = plan.created,
    pid = proc.getpid(),
    daemons = json.array({ table.unpack(plan.bundle.daemons) }),
    resources = resources,
  }
  errors.must(fs.write(plan.state.metadata, json.encode(meta, true) .. "\n", 384))
end

local function names_of(list)
  local out = json.array()
  for _, e in ipairs(list) do
    out[#out + 1] = e.name
  end
  return out
end

--- The plan as the `--dry-run --json` object (names only, never values).
function M.to_json(plan)
  local routes = json.array()
  for _, r in ipairs(plan.egress_table) do
    local route = render.route_json(r)
    route.passthrough = r.passthrough or false
    routes[#routes + 1] = route
  end
  local volumes = json.array()
  for _, v in ipairs(plan.bundle.volumes) do
    volumes[#volumes + 1] = { host = v.host, container = v.container, ro = v.ro }
  end
  local repos = json.array()
  for _, r in ipairs(plan.git_gate.repos) do
    repos[#repos + 1] = { name = r.name, url = r.url }
  end
  local out = {
    recipe = plan.recipe,
    backend = plan.backend,
    slug = plan.slug,
    agent = { name = plan.agent.name, file = plan.agent.file, skills = names_of(plan.agent.skills),
      has_prompt = plan.agent.has_prompt, command = json.array({ table.unpack(plan.agent.command) }) },
    bottles = json.array({ table.unpack(plan.bottles) }),
    hops = json.array({ table.unpack(plan.hops) }),
    bundle = {
      name = plan.bundle.name,
      image = plan.bundle.image,
      network = plan.bundle.network,
      subnet = plan.bundle.subnet,
      ip = plan.bundle.ip,
      daemons = json.array({ table.unpack(plan.bundle.daemons) }),
      publish = json.array({ table.unpack(plan.bundle.publish) }),
      env = names_of(plan.bundle.env),
      volumes = volumes,
      extra_hosts = json.array({ table.unpack(plan.extra_hosts) }),
    },
    egress = { routes = routes },
    pipelock = { allowlist = json.array({ table.unpack(plan.allowlist) }) },
    git_gate = { repos = repos },
    supervise = plan.supervise,
    guest_env = names_of(plan.guest_env),
    env = names_of(plan.env),
    images = { agent = plan.images.agent, sidecars = plan.images.sidecars },
    provision = json.array({ table.unpack(plan.provision) }),
    state_dir = plan.state.dir,
  }
  if plan.machine then
    local sockets = json.array()
    for _, sk in ipairs(plan.machine.sockets or {}) do
      sockets[#sockets + 1] = { service = sk.service, host = sk.host, guest = sk.guest, guest_port = sk.guest_port }
    end
    out.machine = { name = plan.machine.name, sockets = sockets }
  end
  if plan.sockets then
    out.socket_mode = plan.socket_mode
  end
  return json.encode(out, true)
end

--- The preflight summary printed before asking to launch (names only).
---@return string
function M.summary(plan)
  local lines = {}
  local function row(k, v)
    lines[#lines + 1] = string.format("  %-10s %s", k, v)
  end
  row("agent", string.format("%s (%s)", plan.agent.name, plan.agent.file))
  local env_names = {}
  for _, e in ipairs(plan.env) do
    local how = e.kind == "host" and (" (from $" .. e.var .. ")") or (e.kind == "prompt" and " (asked)" or "")
    env_names[#env_names + 1] = e.name .. how
  end
  row("env", #env_names > 0 and table.concat(env_names, ", ") or "(none)")
  local skills = names_of(plan.agent.skills)
  row("skills", #skills > 0 and table.concat(skills, ", ") or "(none)")
  row("bottles", table.concat(plan.bottles, " + "))
  local repos = {}
  for _, r in ipairs(plan.git_gate.repos) do
    repos[#repos + 1] = r.name .. " -> " .. r.url
  end
  row("git-gate", #repos > 0 and table.concat(repos, "; ") or "(none)")
  local routes = {}
  for _, r in ipairs(plan.routes) do
    routes[#routes + 1] = r.host .. (r.auth_scheme and (" [auth:" .. r.auth_scheme .. "]") or "")
  end
  row("egress", #routes > 0 and table.concat(routes, ", ") or "(no routes; default allowlist only)")
  row("hops", "agent -> " .. table.concat(plan.hops, " -> ") .. " -> internet")
  row("supervise", plan.supervise and "on" or "off")
  local backend = plan.backend
  if plan.machine then
    backend = backend .. " (VM " .. plan.machine.name .. ")"
  end
  row("backend", backend)
  row("command", require("bottle.ui").command_line(plan.agent.command))
  return "launch plan " .. plan.slug .. ":\n" .. table.concat(lines, "\n")
end

return M
