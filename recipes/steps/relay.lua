-- Provisioning step `relay`: the guest's only way out (the smolmachines VM
-- and the docker container alike).
--
-- The guest has no network device but loopback. Each service of its
-- bundle (the agent-facing proxy, git-gate, supervise) reaches it as a unix
-- socket mounted at /run/bottle/<service>.sock; here one socat per socket
-- listens on the guest's own loopback at the daemon's port and forwards to
-- it, so HTTPS_PROXY, GIT_GATE_URL and MCP_SUPERVISE_URL are 127.0.0.1 URLs.
--
-- The relays start in the background with their stdio closed, so the
-- provisioning exec does not wait for them and the guest keeps them (smolvm
-- runs every exec in one long-lived container: docs/smolvm.md); then each
-- one is proved to answer through the whole chain (an HTTP answer from the
-- proxy or supervise, a git protocol answer from git-gate) and reports one
-- line, which `check` requires.
local errors = require("bottle.errors")
local batch = require("bottle.batch")

local SCRIPT = [[
command -v socat >/dev/null 2>&1 || { echo "socat is not installed in the agent image"; exit 1; }
for spec in %s; do
  rest=${spec#*:}; port=${rest%%%%:*}; sock=${rest#*:}
  socat TCP-LISTEN:"$port",bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:"$sock" </dev/null >/dev/null 2>&1 &
done
for spec in %s; do
  svc=${spec%%%%:*}; rest=${spec#*:}; port=${rest%%%%:*}; sock=${rest#*:}
  i=0
  until
    case $svc in
      git-gate) timeout 5 git ls-remote "git://127.0.0.1:$port/bottle-relay-probe" 2>&1 | grep -q "remote error" ;;
      *) curl -s -o /dev/null --noproxy '*' --max-time 5 "http://127.0.0.1:$port/" ;;
    esac
  do
    i=$((i + 1))
    if [ "$i" -ge 50 ]; then
      echo "relay $svc: 127.0.0.1:$port does not answer through $sock"
      exit 1
    fi
    sleep 0.1
  done
  echo "relay $svc 127.0.0.1:$port ok"
done]]

local function specs(plan)
  local out = {}
  for _, sk in ipairs(plan.sockets) do
    out[#out + 1] = batch.quote(string.format("%s:%d:%s", sk.service, sk.guest_port, sk.guest))
  end
  return table.concat(out, " ")
end

return {
  description = "serve the bundle's sockets on the guest's loopback",
  prepare = function(_, plan, b)
    local list = specs(plan)
    b:sh(string.format(SCRIPT, list, list))
  end,
  check = function(ctx, plan, part)
    if part.code ~= 0 then
      errors.raise(string.format("the guest-side relays did not come up: %s",
        errors.first_line(errors.tail(part.output, 1))), part.output)
    end
    for _, sk in ipairs(plan.sockets) do
      local line = string.format("relay %s 127.0.0.1:%d ok", sk.service, sk.guest_port)
      if not part.output:find(line, 1, true) then
        errors.raise(string.format("the relay for %s did not report `%s`", sk.service, line), part.output)
      end
    end
    ctx.log.trace("%s", part.output)
  end,
}
