-- Scenarios for careless and hostile input: `?` values without a terminal,
-- teardown that fails, and the scenario API's own strictness.

local ASK = "---\nenv:\n  GITEA_TOKEN: \"?Gitea token\"\n---\n"

scenario("without a terminal, a ? value comes from BOTTLE_ASK_<NAME>", function(t)
  local answer = "given-secret-9d1e77"
  local r = t:run({
    args = { "--bottle", "ask", "--yes" }, tty = false,
    files = { ["bottles/ask.md"] = ASK },
    env = { BOTTLE_ASK_GITEA_TOKEN = answer },
  })
  r:exit(0)
  r:no_secret({ answer })
  local execs = r:all("smolvm machine exec")
  t:ok(#execs > 0, "no exec ran")
  for _, c in ipairs(execs) do
    t:eq(c.guest_env.GITEA_TOKEN, answer)
  end
end)

scenario("without a terminal, a ? value comes from the file BOTTLE_ASK_<NAME>_FILE names", function(t)
  local answer = "file-secret-4c2a10"
  local r = t:run({
    args = { "--bottle", "ask", "--yes" }, tty = false,
    files = { ["bottles/ask.md"] = ASK },
    home = { ["gitea-token"] = answer .. "\n" },
    env = { BOTTLE_ASK_GITEA_TOKEN_FILE = "~/gitea-token" },
    secrets = { answer },
  })
  r:exit(0)
  r:no_secret()
  for _, c in ipairs(r:all("smolvm machine exec")) do
    t:eq(c.guest_env.GITEA_TOKEN, answer)
  end
end)

scenario("without a terminal and no value given, the error names the variable and both routes", function(t)
  local r = t:run({ args = { "--bottle", "ask", "--yes" }, tty = false, files = { ["bottles/ask.md"] = ASK } })
  r:exit(1)
  t:contains(r.message, "cannot ask for GITEA_TOKEN")
  t:contains(r.message, "BOTTLE_ASK_GITEA_TOKEN=<value>")
  t:contains(r.message, "BOTTLE_ASK_GITEA_TOKEN_FILE=<file holding it>")
  r:removed_all()
end)

scenario("a BOTTLE_ASK_<NAME>_FILE that is not a regular file is refused by name", function(t)
  local r = t:run({
    args = { "--bottle", "ask", "--yes" }, tty = false,
    files = { ["bottles/ask.md"] = ASK },
    env = { BOTTLE_ASK_GITEA_TOKEN_FILE = "/dev/zero" },
  })
  r:exit(1)
  t:contains(r.message, "BOTTLE_ASK_GITEA_TOKEN_FILE=/dev/zero")
  t:contains(r.message, "not a regular file")
  t:eq(#r.calls, 0)
end)

scenario("t:run refuses confirm that is not a boolean", function(t)
  local ok, err = pcall(t.run, t, { args = {}, confirm = "n" })
  t:falsy(ok, "confirm = \"n\" was accepted")
  t:contains(tostring(err), "field 'confirm' must be a boolean")
end)

scenario("t:run refuses a misspelt field and suggests the right one", function(t)
  local ok, err = pcall(t.run, t, { args = { "--yes" }, agnet_exit = 3 })
  t:falsy(ok, "agnet_exit was accepted")
  t:contains(tostring(err), "unknown field 'agnet_exit'")
  t:contains(tostring(err), "did you mean 'agent_exit'?")
end)

scenario("a failed teardown names what is left, says bottle cleanup and keeps the state dir", function(t)
  local base = t:run({ args = { "docker", "--yes" } })
  base:exit(0)
  local remove = base:find("docker container_remove bottle-bundle-")
  t:ok(remove, "the bundle is removed in a clean run")
  local r = t:run({ args = { "docker", "--yes" }, fail = base.calls[remove].n })
  r:exit(1)
  t:contains(r.message, "injected failure")
  t:contains(r.message, "left behind: container bottle-bundle-")
  t:contains(r.message, "run bottle cleanup")
  t:eq(#r.state_dirs, 1, "the state dir naming the leftover was removed")
  t:contains(r.message, "state dir ~/.local/state/bottle/" .. r.state_dirs[1])
end)
