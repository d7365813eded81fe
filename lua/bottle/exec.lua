--- Running commands in a guest right after it starts, reliably.
--
-- Right after a smolvm machine starts, back-to-back execs can be SIGKILLed
-- (exit 137) by a warm-up race in libkrun's exec channel. Instead of a fixed
-- sleep, `settle` polls a trivial exec with short, growing delays until one
-- succeeds (bounded total), and `run` retries an exec that died with 137
-- once after a short settle delay. `must` is the raising twin of `run`.
local time = require("rt.time")
local fs = require("rt.fs")
local proc = require("rt.proc")
local errors = require("bottle.errors")

local M = {}

--- Delays between settle polls, in ms; their sum bounds the wait.
M.SETTLE_DELAYS = { 25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800 }
--- Pause before retrying an exec killed by the warm-up race.
M.RETRY_DELAY_MS = 500

--- Polls target:exec({"true"}) until it exits 0.
---@param target table with exec(argv, opts) -> result
---@return integer attempts
function M.settle(target)
  local last
  for i = 0, #M.SETTLE_DELAYS do
    if i > 0 then
      time.sleep_ms(M.SETTLE_DELAYS[i])
    end
    local r = target:exec({ "true" }, { retry = false })
    if r.code == 0 then
      return i + 1
    end
    last = r
  end
  errors.raise(string.format("the guest did not answer a trivial exec after %d tries (last exit %d)",
    #M.SETTLE_DELAYS + 1, last.code), errors.tail(last.stderr))
end

--- Runs target:exec once more after a settle delay when it died with 137.
--- opts.retry = false disables the retry.
---@return table result {code, stdout, stderr}
function M.run(target, argv, opts)
  opts = opts or {}
  local r = target:exec(argv, opts)
  if r.code == 137 and opts.retry ~= false then
    time.sleep_ms(M.RETRY_DELAY_MS)
    r = target:exec(argv, opts)
  end
  return r
end

--- Like run, but a non-zero exit raises "<what>: exit N" with the output
--- tail as detail.
---@param what string names the step for the message
function M.must(target, what, argv, opts)
  local r = M.run(target, argv, opts)
  if r.code ~= 0 then
    local out = (r.stderr ~= "" and r.stderr) or r.stdout
    local shown = table.concat(argv, " ", 1, math.min(#argv, 4)) .. (#argv > 4 and " ..." or "")
    errors.raise(string.format("%s`%s` exited %d%s", what ~= argv[1] and (what .. ": ") or "", shown, r.code,
      out ~= "" and (": " .. errors.first_line(errors.tail(out, 1))) or ""), errors.tail(out))
  end
  return r
end

--- Packs a host directory's contents into a tar in dir (the state dir);
--- returns its path. The caller removes it.
function M.tar_dir(dir, host_dir)
  local tmp = dir .. "/upload-" .. fs.random_hex(4) .. ".tar"
  local r, msg = proc.run({ argv = { "tar", "-C", host_dir, "-cf", tmp, "." } })
  if not r or r.code ~= 0 then
    fs.rm_rf(tmp)
    errors.raise(string.format("cannot pack %s: %s", host_dir, msg or errors.first_line(r.stderr)))
  end
  return tmp
end

--- Adds run and must (above) as methods of a target class whose exec(argv,
--- opts) runs one command (bottle.vm, bottle.container).
function M.mixin(class)
  function class.run(target, argv, opts)
    return M.run(target, argv, opts)
  end
  function class.must(target, what, argv, opts)
    return M.must(target, what, argv, opts)
  end
  return class
end

return M
