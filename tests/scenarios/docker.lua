-- Scenarios for the docker recipe: the agent container has no
-- network; its bundle's sockets, mounted into it, are its only way out.

local TOKEN = "ghp-docker-scenario-4e1d77"
local FORWARDED = "forwarded-docker-secret-81aa"

local WORK = [[
---
env:
  FORWARDED: "${HOST_SECRET}"
egress:
  routes:
    - host: api.github.com
      auth: {scheme: Bearer, token_ref: GH_PAT}
supervise: true
---
]]

local function full(extra)
  local spec = {
    recipe = "docker",
    args = { "docker", "--bottle", "work", "--yes" },
    files = { ["bottles/work.md"] = WORK },
    env = { GH_PAT = TOKEN, HOST_SECRET = FORWARDED },
  }
  for k, v in pairs(extra or {}) do
    spec[k] = v
  end
  return spec
end

scenario("docker: happy path call sequence", function(t)
  local r = t:run(full())
  r:exit(0)
  r:order({
    "docker image_exists bottle-agent:latest",
    "docker image_exists bottle-sidecars:latest",
    "docker network_create bottle-network-",
    "ca mint pipelock/ca",
    "ca mint egress/ca",
    "docker container_create bottle-bundle-",
    "docker container_start bottle-bundle-",
    "docker container_create bottle-agent-",
    "docker container_start bottle-agent-",
    "docker exec bottle-bundle-",
    "net wait_unix",
    "part relay",
    "part ca",
    "docker exec -i -u node -w /home/node",
    "docker container_remove bottle-agent-",
    "docker container_remove bottle-bundle-",
    "docker network_remove bottle-network-",
  })
  r:lacks("bottle-upstream-")
  local net = r:has("docker network_create bottle-network-").args[1]
  t:eq(net.internal, false, "the bundle's own network is an ordinary bridge for its upstream traffic")
  local bundle = r:has("docker container_create bottle-bundle-").args[1]
  t:eq(bundle.aliases, nil, "nothing needs the bundle's names any more")
  t:eq(bundle.networks, nil)
  t:eq(bundle.publish, nil, "nothing is published on the host")
  t:eq(bundle.env.BOTTLE_SIDECAR_DAEMONS, "egress,pipelock,supervise,relay")
  local agent = r:has("docker container_create bottle-agent-").args[1]
  t:eq(agent.network_mode, "none", "the agent container has no network at all")
  t:eq(agent.network, nil)
  t:eq(#agent.binds, 1, "one mount: the launch's socket folder")
  t:match(agent.binds[1].host, "/sockets$")
  t:eq(agent.binds[1].container, "/run/bottle")
  t:eq(agent.binds[1].ro, true)
  t:eq(agent.env.HTTPS_PROXY, "http://127.0.0.1:9099")
  t:eq(agent.env.MCP_SUPERVISE_URL, "http://127.0.0.1:9100/")
  t:contains(agent.env.NO_PROXY, "127.0.0.1")
  -- the relay step: the same fragment as in the VM
  local relay = r:has("part relay")
  t:contains(relay.text, "egress:9099:/run/bottle/egress.sock")
  t:contains(relay.text, "supervise:9100:/run/bottle/supervise.sock")
  -- provisioning is one exec, as root, with the upload on its stdin
  local batch = r:has("::bottle-step begin ca")
  t:eq(batch.args[2].user, "root")
  t:ok(#batch.stdin > 0)
  t:eq(#r:all("docker exec bottle-agent-"), 1)
  -- the agent runs as node through the docker CLI
  local run = r:has("docker exec -i -u node")
  t:contains(run.text, "claude --dangerously-skip-permissions")
  r:removed_all()
  t:eq(r.state_dirs, {})
end)

scenario("docker: without routes the agent's one socket leads to pipelock", function(t)
  local r = t:run({ recipe = "docker", args = { "docker", "--yes" } })
  r:exit(0)
  local agent = r:has("docker container_create bottle-agent-").args[1]
  t:eq(agent.env.HTTPS_PROXY, "http://127.0.0.1:8888")
  t:contains(r:has("part relay").text, "pipelock:8888:/run/bottle/pipelock.sock")
  r:lacks("ca mint egress/ca")
  r:removed_all()
end)

scenario("docker: failing any launch call unwinds everything", function(t)
  local base = t:run(full())
  base:exit(0)
  for k = 1, base.launch_calls do
    local r = t:run(full({ fail = k }))
    local failed
    for _, c in ipairs(r.calls) do
      if c.failed then
        failed = c
      end
    end
    r:removed_all()
    local tolerated = failed and failed.text:find("claude mcp add", 1, true)
    if not tolerated then
      if r.code ~= 1 then
        error(string.format("failing call %d (%s): exit %d\n%s", k, failed and failed.text or "?", r.code, r.output))
      end
      t:contains(r.message or "", "injected failure", "call " .. k)
    end
  end
end)

scenario("docker: a signal at any launch call unwinds everything with 128+N", function(t)
  local base = t:run(full())
  for k = 1, base.launch_calls do
    local r = t:run(full({ signal = { before = k, name = "SIGTERM" } }))
    if r.code ~= 143 then
      error(string.format("signal before call %d: exit %d\n%s", k, r.code, r.output))
    end
    r:removed_all()
  end
end)

scenario("docker: tokens only in the bundle's create body; nothing secret on an argv", function(t)
  local r = t:run(full())
  r:exit(0)
  r:no_secret({ TOKEN, FORWARDED })
  local function contains(v, s)
    if type(v) == "table" then
      for k, x in pairs(v) do
        if contains(k, s) or contains(x, s) then
          return true
        end
      end
      return false
    end
    return type(v) == "string" and v:find(s, 1, true) ~= nil
  end
  for _, c in ipairs(r.calls) do
    local is_bundle_create = c.text:find("container_create bottle-bundle-", 1, true)
    if not is_bundle_create then
      t:falsy(contains(c.args, TOKEN) or contains(c.argv, TOKEN), "token in call " .. c.index .. ": " .. c.text)
    end
  end
  t:eq(r:has("container_create bottle-bundle-").args[1].env.EGRESS_TOKEN_0, TOKEN)
  -- the forwarded value reaches the docker CLI by name only
  local run = r:has("docker exec -i -u node")
  t:contains(run.argv, "FORWARDED")
  t:contains(run.env_names, "FORWARDED")
end)

scenario("docker: a missing agent image is a clear error before anything is created", function(t)
  local r = t:run(full({ docker = { images = {} } }))
  r:exit(1)
  t:contains(r.message, "the agent image bottle-agent:latest is not in the local engine")
  r:lacks("network_create")
end)
