--- bench/plan.lua: the CPU cost of planning, as a recipe file.
--
-- Run by bench/run (`build/bottle recipe run bench/plan.lua` in a temp
-- HOME that holds the bottles "big" and "baseline"). Calls
-- bottle.plan.build(ctx, "smolmachines") N times for each bottle, measured
-- with os.clock() (CPU seconds of this process, user + system), and prints
-- the mean CPU time per plan, the ratio, and the process's peak RSS.
-- The two bottles are measured in alternating rounds after a warm-up, so
-- that drift (CPU frequency, a noisy neighbour) hits both alike. It prints
-- numbers only: nothing here passes or fails on timing.
local plan = require("bottle.plan")

local ROUNDS = 10

local function peak_rss()
  local f = io.open("/proc/self/status", "r")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  local kb = text:match("VmHWM:%s*(%d+)%s*kB")
  return kb and tonumber(kb)
end

local function context(env, bottle, cwd)
  return { env = env, opts = { bottles = { bottle } }, cwd = cwd, name = "smolmachines" }
end

-- CPU seconds for n plans of ctx's bottle.
local function timed(ctx, n)
  collectgarbage("collect")
  local started = os.clock()
  for _ = 1, n do
    plan.build(ctx, "smolmachines")
  end
  return os.clock() - started
end

return {
  description = "benchmark: CPU time per plan for a big and a baseline bottle",

  run = function(ctx)
    local env = ctx.env
    local n = math.tointeger(tonumber(env.BENCH_N or "200"))
    if not n or n < ROUNDS then
      error(string.format("BENCH_N must be an integer of at least %d", ROUNDS), 0)
    end
    local cwd = env.BENCH_CWD or env.HOME
    local cases = {
      { name = "big", ctx = context(env, "big", cwd), cpu = 0 },
      { name = "baseline", ctx = context(env, "baseline", cwd), cpu = 0 },
    }

    -- Warm-up: loads every module, fills caches, and shows what is planned.
    for _, c in ipairs(cases) do
      local p = plan.build(c.ctx, "smolmachines")
      c.routes, c.repos = #p.routes, #p.git_gate.repos
      timed(c.ctx, math.max(1, n // 10))
    end

    -- Alternating rounds; the order flips every round.
    local per_round = n // ROUNDS
    local done = 0
    for round = 1, ROUNDS do
      local count = round == ROUNDS and (n - done) or per_round
      local first, second = cases[1], cases[2]
      if round % 2 == 0 then
        first, second = second, first
      end
      first.cpu = first.cpu + timed(first.ctx, count)
      second.cpu = second.cpu + timed(second.ctx, count)
      done = done + count
    end

    local ms = {}
    for _, c in ipairs(cases) do
      ms[c.name] = c.cpu * 1000 / n
      print(string.format("plan %s (%d routes, %d repos): %.3f ms CPU per plan (N=%d)", c.name, c.routes, c.repos,
        ms[c.name], n))
    end
    if ms.baseline > 0 then
      print(string.format("ratio big/baseline: %.2f", ms.big / ms.baseline))
    end
    local rss = peak_rss()
    print(rss and string.format("peak RSS: %.1f MiB (VmHWM)", rss / 1024) or
      "peak RSS: n/a (no /proc/self/status)")
    return 0
  end,
}
