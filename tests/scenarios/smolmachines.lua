-- Scenarios for the smolmachines recipe: the launch against
-- scripted fake docker and smolvm drivers.

local TOKEN = "ghp-scenario-token-7f3a91"
local FORWARDED = "forwarded-secret-5b2c44"

local WORK = [[
---
env:
  GIT_AUTHOR_NAME: Ada
  FORWARDED: "${HOST_SECRET}"
egress:
  routes:
    - host: api.github.com
      auth: {scheme: Bearer, token_ref: GH_PAT}
    - host: pypi.org
git-gate:
  user: {name: Ada, email: ada@example.org}
  repos:
    myrepo:
      url: ssh://git@git.example.org:22/ada/myrepo.git
      identity: ~/.ssh/id_myrepo
      host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTests"
supervise: true
---
The bottle used by the scenarios.
]]

-- The launch with routes, git-gate and supervise.
local function full(extra)
  local spec = {
    args = { "--bottle", "work", "--yes" },
    files = { ["bottles/work.md"] = WORK },
    home = { [".ssh/id_myrepo"] = "not a real key\n" },
    env = { GH_PAT = TOKEN, HOST_SECRET = FORWARDED },
    docker = { ports = { [9099] = 41099, [9418] = 41418, [9100] = 41100 } }, -- socket mode host
  }
  for k, v in pairs(extra or {}) do
    spec[k] = v
  end
  return spec
end

scenario("happy path with routes, git-gate and supervise", function(t)
  local r = t:run(full())
  r:exit(0)
  r:order({
    "smolvm --version",
    "docker image_inspect bottle-agent:latest",
    "docker network_create bottle-network-",
    "ca mint pipelock/ca",
    "ca mint egress/ca",
    "docker container_create bottle-bundle-",
    "docker container_start bottle-bundle-",
    "docker image_save bottle-agent:latest",
    "smolvm machine create --name bottle-",
    "smolvm machine start --name bottle-",
    "docker exec bottle-bundle-",
    "net wait_unix",
    "part relay",
    "part ca",
    "part prompt",
    "part git",
    "part supervise",
    "runuser -u node -- claude --dangerously-skip-permissions",
    "smolvm machine stop --name bottle-",
    "smolvm machine delete --name bottle-",
    "docker container_remove bottle-bundle-",
    "docker network_remove bottle-network-",
  })
  -- The VM has no network: no --net, no --allow-cidr; one socket per service.
  local create = r:has("smolvm machine create --name bottle-claude")
  t:not_contains(create.text, "--allow-cidr")
  t:not_contains(create.text, "--net")
  local mounted = {}
  for i, a in ipairs(create.argv) do
    if a == "--mount-socket" then
      mounted[#mounted + 1] = create.argv[i + 1]:match("/sockets/([%w-]+%.sock):") .. " -> " ..
        create.argv[i + 1]:match(":(.+)$")
    end
  end
  t:eq(mounted, { "egress.sock -> /run/bottle/egress.sock", "git-gate.sock -> /run/bottle/git-gate.sock",
    "supervise.sock -> /run/bottle/supervise.sock" })
  t:eq(#r:all("net wait_unix"), 3, "every socket answers before provisioning")
  -- provisioning is one upload (the exec's stdin) and one exec: with the
  -- agent's, two execs in all, and nothing copied in with `machine cp`
  local execs = r:all("smolvm machine exec")
  t:eq(#execs, 2, "one provisioning exec, one agent exec")
  r:lacks("smolvm machine cp")
  t:contains(execs[1].argv, "-i")
  -- the relay part: every socket, each reporting itself up
  local relay = r:has("part relay")
  for _, spec in ipairs({ "egress:9099:/run/bottle/egress.sock", "git-gate:9418:/run/bottle/git-gate.sock",
    "supervise:9100:/run/bottle/supervise.sock" }) do
    t:contains(relay.text, spec)
  end
  local ca = r:has("part ca")
  t:contains(ca.text, 'install -o root -g root -m 644 "$BOTTLE_STAGE"/ca.crt ' ..
    "/usr/local/share/ca-certificates/bottle-mitm.crt && update-ca-certificates")
  t:eq(#r:all("update-ca-certificates"), 2, "the CA is installed by one fragment of the one exec")
  local git = r:has("part git")
  t:contains(git.text, "runuser -u node --")
  t:contains(git.text, "url.git://127.0.0.1:9418/myrepo.insteadOf")
  t:contains(git.text, "ssh://git@git.example.org:22/ada/myrepo.git")
  t:contains(r:has("part supervise").text, "claude mcp add --scope user --transport http supervise " ..
    "http://127.0.0.1:9100/")
  -- every exec carries the guest env: the guest's own loopback, relayed
  for _, c in ipairs(r:all("smolvm machine exec")) do
    t:eq(c.guest_env.HTTPS_PROXY, "http://127.0.0.1:9099")
    t:eq(c.guest_env.HTTP_PROXY, "http://127.0.0.1:9099")
    t:eq(c.guest_env.GIT_GATE_URL, "git://127.0.0.1:9418")
    t:eq(c.guest_env.MCP_SUPERVISE_URL, "http://127.0.0.1:9100/")
    t:eq(c.guest_env.FORWARDED, FORWARDED)
  end
  -- the bundle: nothing published; its relay serves the sockets folder
  local bundle = r:has("docker container_create bottle-bundle-").args[1]
  t:eq(bundle.publish, nil, "no port of the bundle is published on the host")
  t:eq(bundle.env.EGRESS_TOKEN_0, TOKEN)
  t:eq(bundle.env.BOTTLE_SIDECAR_DAEMONS, "egress,pipelock,git-gate,supervise,relay")
  t:eq(bundle.env.EGRESS_UPSTREAM_PROXY, "http://127.0.0.1:8888")
  t:match(bundle.env.BOTTLE_RELAY_ROUTES, "^/run/bottle/sockets/egress%.sock=127%.0%.0%.1:9099 " ..
    "/run/bottle/sockets/git%-gate%.sock=127%.0%.0%.1:9418 /run/bottle/sockets/supervise%.sock=127%.0%.0%.1:9100$")
  t:match(bundle.env.BOTTLE_RELAY_OWNER, "^%d+:%d+$")
  local sockets_mount
  for _, b in ipairs(bundle.binds) do
    if b.container == "/run/bottle/sockets" then
      sockets_mount = b
    end
  end
  t:ok(sockets_mount and not sockets_mount.ro, "the socket folder is mounted read-write")
  -- supervise: the queue dir and the audit file, both writable, and the
  -- routes file it reads for list_egress
  local supervise_mounts = {}
  for _, b in ipairs(bundle.binds) do
    if b.container:match("^/var/lib/bottle/") then
      supervise_mounts[#supervise_mounts + 1] = b.host:match("[^/]+$") .. " -> " .. b.container
        .. (b.ro and " ro" or " rw")
    end
  end
  table.sort(supervise_mounts)
  t:eq(supervise_mounts,
    { "audit.jsonl -> /var/lib/bottle/audit.jsonl rw", "supervise -> /var/lib/bottle/supervise rw" })
  t:eq(bundle.env.SUPERVISE_AUDIT, "/var/lib/bottle/audit.jsonl")
  t:eq(bundle.env.SUPERVISE_ROUTES, "/etc/bottle/egress/routes.json")
  r:removed_all()
  t:eq(r.state_dirs, {}, "a clean run removes its state dir")
  t:eq(r.sleeps, {}, "a launch whose guest answers never sleeps")
end)

scenario("without routes pipelock faces the agent and no egress CA is minted", function(t)
  local r = t:run({ args = { "--yes" } })
  r:exit(0)
  r:has("ca mint pipelock/ca")
  r:lacks("ca mint egress/ca")
  local bundle = r:has("docker container_create bottle-bundle-").args[1]
  t:eq(bundle.publish, nil)
  t:eq(bundle.env.EGRESS_UPSTREAM_PROXY, nil)
  t:eq(bundle.env.BOTTLE_RELAY_ROUTES:match("sockets/([%w-]+)%.sock=127%.0%.0%.1:8888$"), "pipelock")
  t:contains(r.output, "trusting pipelock's CA")
  for _, c in ipairs(r:all("smolvm machine exec")) do
    t:eq(c.guest_env.HTTPS_PROXY, "http://127.0.0.1:8888")
  end
  r:removed_all()
end)

scenario("socket mode host: bottle relays the sockets to the bundle's loopback ports and stops its relay", function(t)
  local r = t:run(full({ env = { GH_PAT = TOKEN, HOST_SECRET = FORWARDED, BOTTLE_SOCKETS = "host" } }))
  r:exit(0)
  local bundle = r:has("docker container_create bottle-bundle-").args[1]
  local published = {}
  for _, p in ipairs(bundle.publish) do
    published[#published + 1] = p.port
    t:eq(p.host_ip, "127.0.0.1")
  end
  t:eq(published, { 9099, 9418, 9100 })
  t:eq(bundle.env.BOTTLE_RELAY_ROUTES, nil, "the bundle runs no relay of its own")
  t:eq(bundle.env.BOTTLE_SIDECAR_DAEMONS, "egress,pipelock,git-gate,supervise")
  r:order({ "smolvm machine create", "docker ports bottle-bundle-", "net wait_tcp 127.0.0.1:41099",
    "spawn __relay", "net wait_unix", "part relay" })
  local spawn = r:has("spawn __relay")
  t:eq(spawn.argv[1], "/fake/bin/bottle")
  t:match(spawn.argv[3], "/sockets/egress%.sock=127%.0%.0%.1:41099$")
  t:match(spawn.argv[4], "/sockets/git%-gate%.sock=127%.0%.0%.1:41418$")
  t:match(spawn.argv[5], "/sockets/supervise%.sock=127%.0%.0%.1:41100$")
  -- the guest is the same either way
  for _, c in ipairs(r:all("smolvm machine exec")) do
    t:eq(c.guest_env.HTTPS_PROXY, "http://127.0.0.1:9099")
  end
  r:removed_all()
end)

scenario("an unknown BOTTLE_SOCKETS is refused before anything exists", function(t)
  local r = t:run({ args = { "--yes" }, env = { BOTTLE_SOCKETS = "tcp" } })
  r:exit(1)
  t:contains(r.message, "BOTTLE_SOCKETS=tcp: expected bundle")
  t:eq(#r.calls, 0)
end)

-- Two launch calls may fail by design: a settle poll (settle polls again)
-- and the supervise registration (a warning). The launch goes on.
local function tolerated(call)
  return call.text:find("%-%- true$") or call.text:find("claude mcp add", 1, true)
end

-- Creations and removals pair up, newest first (the pack step's throwaway
-- machine lives and dies inside that step and is left out).
local function check_pairs(t, r, k)
  local created, removed = {}, {}
  for _, c in ipairs(r.calls) do
    if c.text:find("bottle-pack-", 1, true) then
      goto continue
    end
    if c.text:find("network_create") or c.text:find("container_create") or c.text:find("machine create") then
      if not c.failed then
        created[#created + 1] = c.text:match("(bottle%-[%w-]+)")
      end
    elseif c.text:find("network_remove") or c.text:find("container_remove") or c.text:find("machine delete") then
      table.insert(removed, 1, c.text:match("(bottle%-[%w-]+)"))
    end
    ::continue::
  end
  t:eq(removed, created, "call " .. k .. ": removals are the creations in reverse")
end

local HOST_MODE = { GH_PAT = TOKEN, HOST_SECRET = FORWARDED, BOTTLE_SOCKETS = "host" }

for _, mode in ipairs({ "bundle", "host" }) do
scenario("socket mode " .. mode .. ": failing any launch call unwinds everything, names the step, shows stderr",
function(t)
  local env = mode == "host" and HOST_MODE or nil
  local base = t:run(full({ env = env }))
  base:exit(0)
  t:ok(base.launch_calls >= 10, "the sweep covers the whole launch")
  for k = 1, base.launch_calls do
    local r = t:run(full({ fail = k, env = env }))
    local failed
    for _, c in ipairs(r.calls) do
      if c.failed then
        failed = c
      end
    end
    t:ok(failed, "call " .. k .. " was never made")
    -- A removal that fails (the pack step's throwaway machine) leaves that
    -- one thing behind, and says so; everything else is still removed.
    local removal = failed.text:find("machine delete", 1, true)
    if removal then
      t:eq(r.code, 1)
      t:contains(r.message, "cleanup failed")
      t:contains(r.message, "injected failure")
      goto next_call
    end
    r:removed_all()
    check_pairs(t, r, k)
    if not (tolerated(failed) and r.code == 0) then
      if r.code ~= 1 then
        error(string.format("failing call %d (%s): exit %d\n%s", k, failed.text, r.code, r.output))
      end
      -- the message names the step (its prefix) and carries the tool's error
      local msg = r.message or ""
      t:match(msg, "^[%w ]+: ", "call " .. k .. " message: " .. msg)
      t:contains(msg, "injected failure", "call " .. k .. " (" .. failed.text .. ")")
    end
    ::next_call::
  end
end)

scenario("socket mode " .. mode .. ": a signal before any launch call unwinds everything and exits 130",
function(t)
  local env = mode == "host" and HOST_MODE or nil
  local base = t:run(full({ env = env }))
  for k = 1, base.launch_calls do
    local r = t:run(full({ signal = { before = k, name = "SIGINT" }, env = env }))
    if r.code ~= 130 then
      error(string.format("signal before call %d (%s): exit %d\n%s", k, base.calls[k] and base.calls[k].text or "?",
        r.code, r.output))
    end
    r:removed_all()
    t:contains(r.output, "interrupted by SIGINT")
    t:eq(r.state_dirs, {}, "an interrupted launch removes its state dir")
  end
  local r = t:run(full({ signal = { before = 8, name = "SIGTERM" }, env = env }))
  r:exit(143)
  r:removed_all()
end)
end

scenario("an exec smolvm could not deliver is tried again with short, growing delays", function(t)
  local r = t:run(full({ smolvm = { unreachable = 2 } }))
  r:exit(0)
  local tries = r:all("::bottle-step begin relay")
  t:eq(#tries, 3, "two tries did not reach the guest, the third ran")
  t:eq(tries[1].code, 1)
  t:eq(#r:all("part relay"), 1, "the script ran once")
  t:eq(r.sleeps, { 25, 50 })
  r:removed_all()
end)

scenario("a command that ran and was killed (137) is never run again: the launch fails and unwinds", function(t)
  local r = t:run(full({ smolvm = { exit137 = 1 } }))
  r:exit(1)
  t:contains(r.message, "provision: the provisioning exec ended with 137 before any step ran")
  t:eq(#r:all("::bottle-step begin relay"), 1)
  t:eq(r.sleeps, {})
  r:removed_all()
end)

scenario("update-ca-certificates without '1 added' fails loudly and unwinds", function(t)
  local r = t:run(full({ exec = function(argv)
    if argv[3] and argv[3]:find("update-ca-certificates", 1, true) then
      return { code = 0, stdout = "Updating certificates in /etc/ssl/certs...\n0 added, 0 removed; done.\n" }
    end
  end }))
  r:exit(1)
  t:contains(r.message, "provision ca: update-ca-certificates did not report '1 added'")
  t:contains(r.output, "0 added, 0 removed; done.")
  r:lacks("runuser -u node -- claude")
  r:removed_all()
  t:eq(#r.state_dirs, 1, "a failed launch keeps its state dir for inspection")
  t:contains(r.output, "kept ~/.local/state/bottle/")
end)

scenario("no token or forwarded value reaches any argv", function(t)
  local r = t:run(full())
  r:exit(0)
  r:no_secret({ TOKEN, FORWARDED })
  -- secrets are not given at create (smolvm would keep them on disk) ...
  local create = r:has("smolvm machine create --name bottle-claude")
  t:not_contains(create.text, "FORWARDED")
  -- ... but on every exec, by reference, the value in smolvm's environment
  local exec = r:has("smolvm machine exec")
  t:contains(exec.argv, "FORWARDED=BOTTLE_SECRET_FORWARDED")
  t:contains(exec.env_names, "BOTTLE_SECRET_FORWARDED")
end)

scenario("an ejected and edited provisioning step is the one that runs", function(t)
  local r = t:run(full({ lua = { ["recipes/steps/prompt.lua"] = [[
return {
  description = "prompt, edited",
  run = function(ctx, plan, target)
    target:must("edited", { "touch", "/home/node/edited-prompt-step" })
  end,
}
]] } }))
  r:exit(0)
  r:has("touch /home/node/edited-prompt-step")
  r:lacks(".bottle-prompt.txt")
end)

scenario("the agent's exit code is bottle's, and `-- CMD` replaces the agent command", function(t)
  local r = t:run({ args = { "--yes", "--", "sh", "-c", "exit 3" }, agent_exit = 3 })
  r:exit(3)
  r:has("runuser -u node -- sh -c exit 3")
  r:lacks("claude --dangerously-skip-permissions")
  r:removed_all()
  t:eq(#r.state_dirs, 1, "a non-zero agent exit keeps the state dir")
end)

scenario("declining the prompt creates nothing", function(t)
  local r = t:run({ args = {}, confirm = false })
  r:exit(0)
  t:contains(r.output, "aborted by user")
  r:lacks("docker network_create")
  r:lacks("smolvm machine")
end)

scenario("without a terminal and without --yes, refuse instead of hanging", function(t)
  local r = t:run({ args = {}, tty = false })
  r:exit(1)
  t:contains(r.message, "pass --yes")
  -- only the checks that create nothing ran
  r:lacks("create")
end)

scenario("--dry-run creates nothing and prints the plan", function(t)
  local r = t:run(full({ args = { "--bottle", "work", "--dry-run", "--json" } }))
  r:exit(0)
  t:eq(#r.calls, 0)
  t:eq(r.state_dirs, {})
  local plan = require("bottle.json").decode(r.stdout)
  t:eq(plan.hops, { "egress", "pipelock" })
  t:eq(plan.machine.allow_cidrs, nil)
  t:eq(#plan.machine.sockets, 3)
  t:eq(plan.machine.sockets[1].service, "egress")
  t:eq(plan.machine.sockets[1].guest, "/run/bottle/egress.sock")
  t:eq(plan.machine.sockets[1].guest_port, 9099)
  t:match(plan.machine.sockets[1].host, "/sockets/egress%.sock$")
  t:eq(plan.bundle.publish, {})
  t:eq(plan.provision, { "relay", "ca", "prompt", "git", "supervise" })
  r:no_secret({ TOKEN, FORWARDED })
end)

scenario("asked values are passed by name and never shown", function(t)
  local answer = "answered-secret-c0ffee"
  local r = t:run({
    args = { "--bottle", "ask", "--yes" },
    files = { ["bottles/ask.md"] = "---\nenv:\n  GITEA_TOKEN: \"?Gitea token\"\n---\n" },
    answers = { GITEA_TOKEN = answer },
  })
  r:exit(0)
  r:no_secret({ answer })
  for _, c in ipairs(r:all("smolvm machine exec")) do
    t:eq(c.guest_env.GITEA_TOKEN, answer)
  end
end)

scenario("without smolvm the error says so and suggests the docker recipe", function(t)
  local r = t:run({ args = { "--yes" }, smolvm = { missing = true } })
  r:exit(1)
  t:contains(r.message, "smolvm: not found")
  t:contains(r.message, "bottle recipe run docker")
  r:lacks("docker network_create")
end)

scenario("a smolvm older than 1.8.0 is refused before anything is created, naming both versions", function(t)
  local r = t:run({ args = { "--yes" }, smolvm = { version = "1.7.2" } })
  r:exit(1)
  t:contains(r.message, "is smolvm 1.7.2; bottle needs smolvm 1.8.0 or later")
  r:lacks("create")
  r = t:run({ args = { "--yes" }, smolvm = { version = "1.8.0" },
    home = { ["agent.smolmachine"] = "packed elsewhere\n" }, env = { BOTTLE_AGENT_ARTIFACT = "~/agent.smolmachine" } })
  r:exit(0)
  local create = r:has("smolvm machine create --name bottle-")
  t:contains(create.text, "--from ")
  r:removed_all()
end)

scenario("as root, smolvm's per-VM uid drop is refused before anything is created; SMOLVM_VM_UID_DROP=off goes on",
  function(t)
    local r = t:run({ args = { "--yes" }, uid = 0 })
    r:exit(1)
    t:contains(r.message, "smolvm run as root drops each VM to a uid of its own")
    t:contains(r.message, "bottle recipe run docker")
    r:lacks("create")
    r:lacks("docker network_create")
    r = t:run({ args = { "--yes" }, uid = 0, env = { SMOLVM_VM_UID_DROP = "off" } })
    r:exit(0)
    r:has("smolvm machine create --name bottle-")
    r:removed_all()
    r = t:run({ args = { "--yes" }, uid = 0, recipe = "docker" })
    r:exit(0)
  end)

scenario("saving a new agent archive removes those of images the engine no longer has", function(t)
  local cache = ".cache/bottle/smolmachines/"
  local gone, kept = "agent-" .. ("ab"):rep(8) .. ".tar", "agent-" .. ("ef"):rep(8) .. ".tar"
  local r = t:run({
    args = { "--yes" },
    docker = { images = { ["bottle-agent:latest"] = "sha256:" .. ("cd"):rep(32),
      ["other:1"] = "sha256:" .. ("ef"):rep(32) } },
    home = { [cache .. gone] = "an image since rebuilt\n", [cache .. kept] = "another image\n",
      [cache .. "notes.txt"] = "not an archive\n" },
  })
  r:exit(0)
  t:eq(r.cached, { "agent-" .. ("cd"):rep(8) .. ".tar", kept, "notes.txt" })
end)

scenario("skills are copied into the guest and owned by node", function(t)
  local r = t:run({
    args = { "--agent", "coder", "--yes" },
    files = { ["agents/coder.md"] = "---\nskills: [pdf]\n---\nYou write code.\n" },
    home = { [".claude/skills/pdf/SKILL.md"] = "# pdf\n" },
  })
  r:exit(0)
  local part = r:has("part skills")
  t:contains(part.text, 'rm -rf /home/node/.claude/skills/pdf && cp -R "$BOTTLE_STAGE"/skills/pdf ' ..
    "/home/node/.claude/skills/pdf")
  t:contains(part.text, "chown -R node:node /home/node/.claude")
  -- the skill's files travel in the one upload (the exec's stdin, a tar)
  local upload = r:has("smolvm machine exec --name bottle-coder").stdin
  t:contains(upload, "skills/pdf/SKILL.md")
  t:contains(upload, "# pdf\n")
  -- a non-empty prompt adds the prompt file flag
  r:has("claude --dangerously-skip-permissions --append-system-prompt-file /home/node/.bottle-prompt.txt")
end)

scenario("a supervise registration failure is a warning with the manual command", function(t)
  local r = t:run(full({ exec = function(_, call)
    if call.step == "supervise" then
      return { code = 127, stderr = "sh: 1: claude: not found" }
    end
  end }))
  r:exit(0)
  t:contains(r.output, "warning: supervise: could not register the MCP server (exit 127)")
  t:contains(r.output, "claude mcp add --scope user --transport http supervise http://127.0.0.1:9100/")
end)
