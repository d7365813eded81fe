-- Provisioning step `ca`: trust the agent-facing proxy's CA in the guest.
--
-- Exactly one CA is installed: the agent-facing hop's (plan.guest_ca, from
-- the hop policy): egress's when egress faces the agent, else pipelock's.
-- The copy is followed by ONE `sh -c` (chown, chmod,
-- update-ca-certificates) so the guest pays a single exec round trip, and
-- the output must report "1 added": failing silently here is how a broken
-- trust store goes unnoticed until every TLS request fails.
local ca = require("rt.ca")
local fs = require("rt.fs")
local errors = require("bottle.errors")
local plan_mod = require("bottle.plan")

return {
  description = "install the agent-facing proxy's CA into the guest trust store",
  run = function(ctx, plan, target)
    local facing = plan.guest_ca
    local minted = target.rec.cas[facing]
    local cert = minted and minted.cert
    if not cert or not fs.exists(cert) then
      errors.raise(string.format("%s's CA %s does not exist; the CAs are minted by the launch's " ..
        "`CAs` step, which must run before provisioning", facing, cert or "(not minted)"))
    end
    local dest = plan_mod.GUEST_CA
    target:put(cert, dest)
    local r = target:run({ "sh", "-c",
      'chown root:root "$1" && chmod 644 "$1" && update-ca-certificates', "sh", dest })
    local out = (r.stdout or "") .. (r.stderr or "")
    if r.code ~= 0 then
      errors.raise(string.format("installing %s's CA failed: exit %d: %s", facing, r.code,
        errors.first_line(r.stderr ~= "" and r.stderr or r.stdout)), out)
    end
    if not out:find("1 added", 1, true) then
      errors.raise(string.format("update-ca-certificates did not report '1 added'; the guest would not trust %s",
        facing), out)
    end
    local summary = out:match("(%d+ added[^\n]*)") or ""
    ctx.log.info("trusting %s's CA, SHA-256 %s (%s)", facing, errors.must(ca.fingerprint(cert)), summary)
  end,
}
