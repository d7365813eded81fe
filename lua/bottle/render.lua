--- The per-launch config files, as text. Nothing here
--- touches the disk: plan.materialize writes them into the state dir.
--
-- No file rendered here ever holds a secret value: the egress table names
-- token slots, pipelock's config names CA paths.
local yaml = require("rt.yaml")
local json = require("bottle.json")
local assets = require("bottle.assets")
local bundle = require("bottle.bundle")
local manifest = require("bottle.manifest")

local M = {}

-- pipelock's own defaults (v2.3.0, internal/config/defaults.go and
-- normalize.go) that would break a normal agent session; each is set below
-- with the reason. docs/bundle.md lists every key with its source line.
M.PIPELOCK = {
  -- 60/min per base domain by default; api.anthropic.com and
  -- statsig.anthropic.com share "anthropic.com", and every CONNECT and every
  -- intercepted request counts, so one busy session reaches it in seconds.
  max_requests_per_minute = 1200,
  -- Non-streamed intercepted responses are buffered whole for scanning and
  -- refused past 5 MiB by default; package tarballs and release archives are
  -- larger than that.
  max_response_bytes = 64 * 1024 * 1024,
  -- Hosts whose tunnels are spliced, not decrypted: they serve the agent's
  -- own multi-hundred-MiB binaries, past any sensible scanning buffer.
  passthrough_domains = { "downloads.claude.ai" },
  -- 300 s by default, counted from the CONNECT: a keep-alive tunnel to the
  -- model API carries a whole session's streams and must not be cut mid-answer.
  max_tunnel_seconds = 3600,
  idle_timeout_seconds = 600,
}

local function domain_of(host_entry)
  return (host_entry:match("^([^:]+):"))
end

--- pipelock's config: strict allowlisting, TLS interception with the
--- per-launch CA, DLP blocking on requests, and the defaults that would
--- break an agent session set explicitly. Rendered with libyaml's emitter.
---@param plan table
---@return string
function M.pipelock_yaml(plan)
  local P = M.PIPELOCK
  local allow = {}
  for i, h in ipairs(plan.allowlist) do
    allow[i] = h
  end
  -- BOTTLE_BUNDLE_HOSTS names upstreams on private addresses on purpose;
  -- pipelock's SSRF check refuses private addresses unless the name is in
  -- trusted_domains (its hostname exemption; raw IPs stay refused).
  local trusted = {}
  for _, entry in ipairs(plan.extra_hosts or {}) do
    trusted[#trusted + 1] = domain_of(entry)
  end
  local keys = { "version", "mode", "enforce", "api_allowlist" }
  local config = {
    version = 1,
    mode = "strict",
    enforce = true,
    api_allowlist = allow,
    fetch_proxy = yaml.ordered({
      monitoring = yaml.ordered({ max_requests_per_minute = P.max_requests_per_minute },
        { "max_requests_per_minute" }),
    }, { "monitoring" }),
    forward_proxy = yaml.ordered({
      enabled = true,
      max_tunnel_seconds = P.max_tunnel_seconds,
      idle_timeout_seconds = P.idle_timeout_seconds,
    }, { "enabled", "max_tunnel_seconds", "idle_timeout_seconds" }),
    tls_interception = yaml.ordered({
      enabled = true,
      ca_cert = bundle.IN.pipelock_ca_cert,
      ca_key = bundle.IN.pipelock_ca_key,
      passthrough_domains = { table.unpack(P.passthrough_domains) },
      max_response_bytes = P.max_response_bytes,
    }, { "enabled", "ca_cert", "ca_key", "passthrough_domains", "max_response_bytes" }),
    -- egress injects Authorization on the way in; pipelock scans the other
    -- credential-bearing headers and every body.
    request_body_scanning = yaml.ordered({
      enabled = true,
      action = "block",
      scan_headers = true,
      header_mode = "sensitive",
      sensitive_headers = { "Cookie", "X-Api-Key", "X-Token", "Proxy-Authorization", "X-Goog-Api-Key" },
    }, { "enabled", "action", "scan_headers", "header_mode", "sensitive_headers" }),
    -- Prompt-injection patterns on responses only warn: SSE scanning blocks
    -- by default, and one false positive on a model's streamed answer would
    -- cut the session's stream.
    response_scanning = yaml.ordered({
      enabled = true,
      action = "warn",
      sse_streaming = yaml.ordered({ enabled = true, action = "warn" }, { "enabled", "action" }),
    }, { "enabled", "action", "sse_streaming" }),
    -- scan_env turns every value of pipelock's own environment (16+ chars:
    -- paths, image settings) into a "secret" that blocks any request quoting
    -- it; no token is ever in that environment (only egress holds them).
    dlp = yaml.ordered({ include_defaults = true, scan_env = false }, { "include_defaults", "scan_env" }),
  }
  if #trusted > 0 then
    config.trusted_domains = trusted
    keys[#keys + 1] = "trusted_domains"
  end
  for _, k in ipairs({ "fetch_proxy", "forward_proxy", "tls_interception", "request_body_scanning",
    "response_scanning", "dlp" }) do
    keys[#keys + 1] = k
  end
  return "# pipelock config for bottle " .. plan.slug .. " (rendered by bottle; do not edit)\n"
    .. yaml.dump(yaml.ordered(config, keys))
end

--- egress's route table (docs/bundle.md): host, matches, auth scheme and
--- token slot name per route. Never a token value.
---@param plan table
---@return string
function M.egress_routes(plan)
  local routes = json.array()
  for _, r in ipairs(plan.egress_table) do
    routes[#routes + 1] = M.route_json(r)
  end
  return json.encode({ version = 1, routes = routes }, true) .. "\n"
end

--- One route of egress's table as JSON-ready data (the plan JSON uses it too).
function M.route_json(r)
  local matches = json.array()
  for _, m in ipairs(r.matches or {}) do
    local entry = {}
    if m.paths then
      entry.paths = json.array()
      for _, p in ipairs(m.paths) do
        entry.paths[#entry.paths + 1] = { type = p.type, value = p.value }
      end
    end
    if m.methods then
      entry.methods = json.array({ table.unpack(m.methods) })
    end
    matches[#matches + 1] = entry
  end
  return {
    host = r.host,
    auth_scheme = r.auth_scheme or json.null,
    token_env = r.token_env or json.null,
    matches = matches,
  }
end

--- host and port of an SSH git URL (ssh://[user@]host[:port]/path or
--- scp-like [user@]host:path), for known_hosts.
function M.ssh_host(url)
  local rest = url:match("^ssh://(.*)$")
  if rest then
    local authority = rest:match("^([^/]*)"):gsub("^.*@", "")
    local host, port = authority:match("^%[(.+)%]:(%d+)$")
    if not host then
      host, port = authority:match("^(.-):(%d+)$")
    end
    return host or authority, tonumber(port)
  end
  return url:match("^[^@/]+@([^:/]+):") or url:match("^([^:/@]+):")
end

--- git-gate's files: the scripts (shipped with bottle), the repos list and
--- the pinned host keys.
---@param plan table
---@return table name -> text
function M.git_gate_files(plan)
  local files = {}
  for _, f in ipairs({ "entrypoint.sh", "access-hook", "pre-receive" }) do
    files[f] = assets.read("images/git-gate/" .. f)
  end
  local repos, known = {}, {}
  for _, r in ipairs(plan.git_gate.repos) do
    repos[#repos + 1] = r.name .. " " .. r.url
    if manifest.is_ssh_url(r.url) and r.host_key then
      local host, port = M.ssh_host(r.url)
      if host then
        local pattern = (port and port ~= 22) and string.format("[%s]:%d", host, port) or host
        known[#known + 1] = pattern .. " " .. r.host_key
      end
    end
  end
  files.repos = table.concat(repos, "\n") .. "\n"
  files.known_hosts = table.concat(known, "\n") .. (#known > 0 and "\n" or "")
  return files
end

return M
