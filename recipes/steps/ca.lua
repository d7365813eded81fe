-- Provisioning step `ca`: trust the agent-facing proxy's CA in the guest.
--
-- Exactly one CA is installed: the agent-facing hop's (plan.guest_ca, from
-- the hop policy): egress's when egress faces the agent, else pipelock's.
-- The certificate travels in the launch's one upload; ONE fragment puts it
-- in place (owner root, mode 644) and runs update-ca-certificates, whose
-- output must report "1 added": failing silently here is how a broken
-- trust store goes unnoticed until every TLS request fails.
local ca = require("rt.ca")
local fs = require("rt.fs")
local errors = require("bottle.errors")
local batch = require("bottle.batch")
local plan_mod = require("bottle.plan")

return {
  description = "install the agent-facing proxy's CA into the guest trust store",
  prepare = function(ctx, plan, b)
    local facing = plan.guest_ca
    local minted = ctx.launch.cas[facing]
    local cert = minted and minted.cert
    local pem = cert and fs.read(cert)
    if not pem then
      errors.raise(string.format("%s's CA %s does not exist; the CAs are minted by the launch's " ..
        "`CAs` step, which must run before provisioning", facing, cert or "(not minted)"))
    end
    local staged = b:file("ca.crt", pem, { mode = 420 })
    local dest = batch.quote(plan_mod.GUEST_CA)
    b:sh(string.format("install -o root -g root -m 644 %s %s && update-ca-certificates", staged, dest))
  end,
  check = function(ctx, plan, part)
    local facing = plan.guest_ca
    if part.code ~= 0 then
      errors.raise(string.format("installing %s's CA failed: exit %d: %s", facing, part.code,
        errors.first_line(errors.tail(part.output, 1))), part.output)
    end
    if not part.output:find("1 added", 1, true) then
      errors.raise(string.format("update-ca-certificates did not report '1 added'; the guest would not trust %s",
        facing), part.output)
    end
    local summary = part.output:match("(%d+ added[^\n]*)") or ""
    ctx.log.info("trusting %s's CA, SHA-256 %s (%s)", facing,
      errors.must(ca.fingerprint(ctx.launch.cas[facing].cert)), summary)
  end,
}
