-- rt.defer: cleanup scopes.
local defer = require("rt.defer")
local A = require("bottle.testing.assert")

test("entries run newest first with their arguments", function()
  local order = {}
  local s = defer.scope()
  s:defer(function(x) order[#order + 1] = x end, "first")
  s:defer(function(x, y) order[#order + 1] = x .. y end, "sec", "ond")
  A.eq(s:size(), 2)
  A.eq(s:close(), true)
  A.eq(order, { "second", "first" })
end)

test("every entry runs and failures are reported together", function()
  local ran = {}
  local s = defer.scope()
  s:defer(function() ran[#ran + 1] = "a" end)
  s:defer(function() error("network remove: boom", 0) end)
  s:defer(function() ran[#ran + 1] = "c" end)
  s:defer(function() error("vm delete: bang", 0) end)
  local ok, err = s:close()
  A.eq(ok, nil)
  A.eq(ran, { "c", "a" })
  A.eq(err, "cleanup failed: vm delete: bang; network remove: boom")
end)

test("closing twice is a no-op", function()
  local n = 0
  local s = defer.scope()
  s:defer(function() n = n + 1 end)
  s:close()
  A.eq(s:close(), true)
  A.eq(n, 1)
  A.ok(s:is_closed())
  A.raises(function() s:defer(function() end) end, "already closed")
end)

test("<close> runs the scope at the end of the block, also on error", function()
  local log = {}
  local ok, err = pcall(function()
    local s <close> = defer.scope()
    s:defer(function() log[#log + 1] = "cleaned" end)
    error("step failed", 0)
  end)
  A.falsy(ok)
  A.eq(err, "step failed")
  A.eq(log, { "cleaned" })
end)

test("<close> combines a cleanup failure with the error unwinding", function()
  local _, err = pcall(function()
    local s <close> = defer.scope()
    s:defer(function() error("rm failed", 0) end)
    error("create failed", 0)
  end)
  A.contains(err, "create failed (cleanup also failed: rm failed)")
end)

test("<close> raises a cleanup failure after success", function()
  local _, err = pcall(function()
    local s <close> = defer.scope()
    s:defer(function() error("rm failed", 0) end)
  end)
  A.contains(err, "cleanup failed: rm failed")
end)

test("a scope dropped without closing is closed by the collector", function()
  local n = 0
  do
    local s = defer.scope()
    s:defer(function() n = n + 1 end)
  end
  collectgarbage("collect")
  collectgarbage("collect")
  A.eq(n, 1)
end)

test("defer checks its arguments", function()
  local s <close> = defer.scope()
  A.raises(function() s:defer("not a function") end, "function expected")
end)
