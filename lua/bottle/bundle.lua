--- The sidecar bundle's container spec and its network. docs/bundle.md is the contract with what runs inside.
local defaults = require("bottle.defaults")
local errors = require("bottle.errors")
local names = require("bottle.names")

local M = {}

-- bottle-init's daemons in their canonical order (docs/bundle.md); relay
-- serves the guest's sockets when the bundle does.
M.ORDER = { "egress", "pipelock", "git-gate", "supervise", "relay" }

-- Paths inside the bundle (docs/bundle.md).
M.IN = {
  pipelock_yaml = "/etc/pipelock.yaml",
  pipelock_ca_cert = "/etc/pipelock/ca.pem",
  pipelock_ca_key = "/etc/pipelock/ca-key.pem",
  egress_routes = "/etc/bottle/egress/routes.json",
  egress_ca = "/etc/bottle/egress/ca/mitmproxy-ca.pem",
  egress_upstream_ca = "/etc/bottle/egress/upstream-ca.pem",
  git_gate_dir = "/etc/bottle/git-gate",
  supervise_queue = "/var/lib/bottle/supervise",
  supervise_audit = "/var/lib/bottle/audit.jsonl",
  sockets_dir = "/run/bottle/sockets",
  upstream_ca = "/etc/bottle/upstream-ca.pem",
}

-- ---- subnets ---------------------------------------------------------------

local function ip_to_int(ip)
  local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then
    return nil
  end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function int_to_ip(n)
  return string.format("%d.%d.%d.%d", n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)
end

--- Parses "a.b.c.d/n" into first address and prefix length.
---@return integer|nil base, integer|nil bits
function M.parse_cidr(cidr)
  local ip, bits = tostring(cidr):match("^([%d.]+)/(%d+)$")
  local base = ip and ip_to_int(ip)
  bits = tonumber(bits)
  if not base or not bits or bits > 32 then
    return nil
  end
  local mask = bits == 0 and 0 or ((0xffffffff << (32 - bits)) & 0xffffffff)
  return base & mask, bits
end

local function overlaps(b1, n1, b2, n2)
  local n = math.min(n1, n2)
  local mask = n == 0 and 0 or ((0xffffffff << (32 - n)) & 0xffffffff)
  return (b1 & mask) == (b2 & mask)
end

local function fnv1a(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return h
end

--- Picks a /24 from `pool` for `slug`: the slot chosen by a hash of the slug,
--- then the next free one, skipping every subnet in `used` (CIDR strings of
--- the engine's existing networks). Returns { subnet, gateway, ip } or nil,
--- message when the pool is exhausted or malformed.
---@param pool string e.g. "10.213.0.0/16"
---@param slug string
---@param used string[]
function M.pick_subnet(pool, slug, used)
  local base, bits = M.parse_cidr(pool)
  if not base or bits > 24 then
    return nil, string.format("subnet pool %s is not an IPv4 CIDR of /24 or larger", tostring(pool))
  end
  local taken = {}
  for _, u in ipairs(used or {}) do
    local ub, un = M.parse_cidr(u)
    if ub then
      taken[#taken + 1] = { ub, un }
    end
  end
  local slots = 1 << (24 - bits)
  local start = fnv1a(slug) % slots
  for i = 0, slots - 1 do
    local net = base + ((start + i) % slots) * 256
    local free = true
    for _, t in ipairs(taken) do
      if overlaps(net, 24, t[1], t[2]) then
        free = false
        break
      end
    end
    if free then
      return { subnet = int_to_ip(net) .. "/24", gateway = int_to_ip(net + 1), ip = int_to_ip(net + 2) }
    end
  end
  return nil, string.format("no free /24 left in the subnet pool %s", pool)
end

-- ---- the bundle ------------------------------------------------------------

--- The daemons a plan runs, in canonical order.
function M.daemons(plan)
  local want = { egress = true, pipelock = true, ["git-gate"] = #plan.git_gate.repos > 0,
    supervise = plan.supervise, relay = plan.sockets ~= nil and plan.socket_mode == "bundle" }
  local out = {}
  for _, d in ipairs(M.ORDER) do
    if want[d] then
      out[#out + 1] = d
    end
  end
  return out
end

--- Container ports published on host loopback: the sockets' ports when
--- bottle itself relays the guest's sockets (socket mode "host"), else none.
function M.publish(plan)
  local out = {}
  if plan.sockets and plan.socket_mode == "host" then
    for _, sk in ipairs(plan.sockets) do
      out[#out + 1] = sk.port
    end
  end
  return out
end

--- Where the guest meets its bundle: one unix socket per service
--- the guest dials: the agent-facing hop, git-gate and supervise when they
--- run. `host` is the socket in the state dir, `guest` where the guest sees
--- it, `guest_port` the loopback port the guest-side relay listens on (the
--- daemon's own, so the guest's URLs keep their shape).
---@return table[] { service, port, host, bundle, guest, guest_port }
function M.sockets(plan)
  local services = { plan.hops[1] }
  if #plan.git_gate.repos > 0 then
    services[#services + 1] = "git-gate"
  end
  if plan.supervise then
    services[#services + 1] = "supervise"
  end
  local out = {}
  for i, service in ipairs(services) do
    local port = defaults.PORTS[service]
    local host = plan.state.sockets_dir .. "/" .. service .. ".sock"
    -- sun_path holds 104 bytes on macOS, 108 on Linux.
    if #host > 100 then
      errors.raise(string.format("the launch's socket path %s is %d bytes, longer than a unix socket path may " ..
        "be; point XDG_STATE_HOME at a shorter directory", host, #host))
    end
    out[i] = { service = service, port = port, host = host, bundle = M.IN.sockets_dir .. "/" .. service .. ".sock",
      guest = "/run/bottle/" .. service .. ".sock", guest_port = port }
  end
  return out
end

local function add_env(list, name, value, secret)
  list[#list + 1] = { name = name, value = value, secret = secret or false }
end

--- The bundle container spec. Secret values (token slots) are in
--- spec.env[i].value with secret = true; only names ever leave in the plan.
---@param plan table
function M.spec(plan)
  local st = plan.state
  local daemons = M.daemons(plan)
  local env, volumes = {}, {}
  local function mount(host, container, ro)
    volumes[#volumes + 1] = { host = host, container = container, ro = ro ~= false }
  end
  add_env(env, "BOTTLE_SIDECAR_DAEMONS", table.concat(daemons, ","))

  mount(st.pipelock_yaml, M.IN.pipelock_yaml)
  mount(st.pipelock_ca_cert, M.IN.pipelock_ca_cert)
  mount(st.pipelock_ca_key, M.IN.pipelock_ca_key)

  if #(plan.extra_cas or {}) > 0 then
    -- System roots plus BOTTLE_EXTRA_CA, for every daemon's upstream TLS.
    add_env(env, "SSL_CERT_FILE", M.IN.upstream_ca)
    mount(st.upstream_ca, M.IN.upstream_ca)
  end

  -- egress follows the hop policy: in the agent's path it gets its CA,
  -- the tokens and the next hop as its upstream; left out, it idles with an
  -- empty table and holds no token.
  mount(st.egress_routes, M.IN.egress_routes)
  if plan.egress_in_path then
    mount(st.egress_ca_pem, M.IN.egress_ca)
    for _, slot in ipairs(plan.token_slots) do
      add_env(env, slot.slot, plan.host_env_value(slot.ref), true)
    end
    if plan.egress_upstream then
      add_env(env, "EGRESS_UPSTREAM_PROXY", "http://127.0.0.1:" .. defaults.PORTS[plan.egress_upstream])
    end
    add_env(env, "EGRESS_UPSTREAM_CA", M.IN.egress_upstream_ca)
    mount(st.egress_upstream_ca, M.IN.egress_upstream_ca)
  end

  if #plan.git_gate.repos > 0 then
    add_env(env, "GIT_GATE_PORT", tostring(defaults.PORTS["git-gate"]))
    for _, f in ipairs({ "entrypoint.sh", "access-hook", "pre-receive", "repos", "known_hosts" }) do
      mount(st.git_gate_dir .. "/" .. f, M.IN.git_gate_dir .. "/" .. f)
    end
    for _, r in ipairs(plan.git_gate.repos) do
      mount(r.identity, M.IN.git_gate_dir .. "/keys/" .. r.name)
    end
  end

  if plan.sockets and plan.socket_mode == "bundle" then
    -- bottle-init's relay makes the sockets, owned by the user who runs
    -- bottle (smolvm, running as that user, dials them).
    local routes = {}
    for _, sk in ipairs(plan.sockets) do
      routes[#routes + 1] = sk.bundle .. "=127.0.0.1:" .. sk.port
    end
    add_env(env, "BOTTLE_RELAY_ROUTES", table.concat(routes, " "))
    add_env(env, "BOTTLE_RELAY_OWNER", plan.owner)
    mount(st.sockets_dir, M.IN.sockets_dir, false)
  end

  if plan.supervise then
    add_env(env, "SUPERVISE_BOTTLE_SLUG", plan.slug)
    add_env(env, "SUPERVISE_QUEUE_DIR", M.IN.supervise_queue)
    add_env(env, "SUPERVISE_PORT", tostring(defaults.PORTS.supervise))
    mount(st.supervise_queue, M.IN.supervise_queue, false)
    -- supervise appends each request; `bottle supervise` appends the
    -- decisions to the same file from the host.
    add_env(env, "SUPERVISE_AUDIT", M.IN.supervise_audit)
    mount(st.audit, M.IN.supervise_audit, false)
    add_env(env, "SUPERVISE_ROUTES", M.IN.egress_routes)
  end

  return {
    name = names.resource("bundle", plan.slug),
    image = plan.images.sidecars,
    network = names.resource("network", plan.slug),
    daemons = daemons,
    -- Host ports only where bottle's own socket relay (socket mode "host")
    -- reaches the bundle through them.
    publish = M.publish(plan),
    env = env,
    volumes = volumes,
    labels = names.labels(plan, "bundle", { [names.LABEL.daemons] = table.concat(daemons, ",") }),
  }
end

--- The env table (NAME -> value) for the engine's create body.
function M.env_values(spec)
  local out = {}
  for _, e in ipairs(spec.env) do
    out[e.name] = e.value
  end
  return out
end

return M
