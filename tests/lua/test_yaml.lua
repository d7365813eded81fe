-- rt.yaml: libyaml-backed load and dump.
local yaml = require("rt.yaml")
local A = require("bottle.testing.assert")

local null = yaml.null

-- Deep equality that also tells integers from floats and NaN from NaN.
local function same(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then
    return string.format("%s: %s (%s) vs %s (%s)", path, tostring(a), type(a), tostring(b), type(b))
  end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then
      return string.format("%s: %s is %s, %s is %s", path, a, math.type(a), b, math.type(b))
    end
    if a ~= b and not (a ~= a and b ~= b) then
      return string.format("%s: %.17g vs %.17g", path, a, b)
    end
    return nil
  end
  if type(a) ~= "table" then
    if a ~= b then
      return string.format("%s: %q vs %q", path, tostring(a), tostring(b))
    end
    return nil
  end
  for k, v in pairs(a) do
    local d = same(v, b[k], path .. "." .. tostring(k))
    if d then
      return d
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return path .. "." .. tostring(k) .. ": missing"
    end
  end
  return nil
end

local function load_ok(text, ...)
  local v, err = yaml.load(text, ...)
  if err then
    error("unexpected load error: " .. err, 2)
  end
  return v
end

local function load_err(text, ...)
  local v, err = yaml.load(text, ...)
  if v ~= nil or type(err) ~= "string" then
    error("expected a load error for " .. string.format("%q", text), 2)
  end
  return err
end

-- ---- load: scalars ------------------------------------------------------

test("plain scalars resolve per the YAML 1.2 core schema", function()
  local cases = {
    { "true", true }, { "True", true }, { "TRUE", true },
    { "false", false }, { "False", false }, { "FALSE", false },
    { "null", null }, { "Null", null }, { "NULL", null }, { "~", null }, { "", null },
    { "0", 0 }, { "42", 42 }, { "-17", -17 }, { "+5", 5 }, { "012", 12 },
    { "0x1F", 31 }, { "0xff", 255 }, { "0o17", 15 },
    { "9223372036854775807", math.maxinteger }, { "-9223372036854775808", math.mininteger },
    { "1.5", 1.5 }, { "-2.25", -2.25 }, { ".5", 0.5 }, { "1.", 1.0 }, { "1e3", 1000.0 },
    { "2.5E-1", 0.25 }, { "+1.0", 1.0 },
    { ".inf", math.huge }, { ".Inf", math.huge }, { "+.INF", math.huge }, { "-.inf", -math.huge },
    -- not in the core schema: strings
    { "yes", "yes" }, { "no", "no" }, { "on", "on" }, { "y", "y" }, { "tRUE", "tRUE" },
    { "nul", "nul" }, { "-0x1F", "-0x1F" }, { "0x", "0x" }, { "0o8", "0o8" }, { "0b101", "0b101" },
    { "1_000", "1_000" }, { "12:30", "12:30" }, { "1.2.3", "1.2.3" }, { "e5", "e5" }, { ".", "." },
    { "1e", "1e" }, { "inf", "inf" }, { "nan", "nan" }, { "hello world", "hello world" },
  }
  for _, c in ipairs(cases) do
    local v = load_ok("v: " .. c[1] .. "\n").v
    local d = same(v, c[2])
    if d then
      error(string.format("%q: %s", c[1], d))
    end
  end
  local nan = load_ok("[.nan, .NaN, .NAN]")
  for i = 1, 3 do
    A.ok(nan[i] ~= nan[i], "NaN expected")
  end
end)

test("integers beyond 64 bits become floats", function()
  local t = load_ok("a: 99999999999999999999\nb: 0x1FFFFFFFFFFFFFFFF\nc: -9223372036854775809\n")
  A.eq(math.type(t.a), "float")
  A.eq(t.a, 1e20)
  A.eq(math.type(t.b), "float")
  A.eq(t.b, 2.0 ^ 65 - 1)
  A.eq(math.type(t.c), "float")
end)

test("quoted, block and !!str scalars stay strings", function()
  local t = load_ok([[
a: 'true'
b: "123"
c: ''
d: "null"
e: |
  123
f: >
  true
g: !!str 0x10
h: !!str
i: '~'
]])
  A.eq(t, { a = "true", b = "123", c = "", d = "null", e = "123\n", f = "true\n", g = "0x10", h = "", i = "~" })
end)

test("an empty value is the null sentinel, distinct from an absent key", function()
  local t = load_ok("egress:\nenv: {}\n")
  A.eq(t.egress, null)
  A.ok(t.egress ~= nil)
  A.eq(t.other, nil)
  A.eq(type(null), "userdata")
  A.eq(yaml.load("x: ~").x, yaml.null)
end)

test("empty text, comments only and a bare --- are null", function()
  A.eq(yaml.load(""), null)
  A.eq(yaml.load("# only a comment\n\n   # another\n"), null)
  A.eq(yaml.load("---\n"), null)
  A.eq(yaml.load("--- # c\n...\n"), null)
end)

test("nested mappings and sequences", function()
  local t = load_ok([==[
extends: base
env:
  GIT_AUTHOR_NAME: Ada
  GITEA_TOKEN: "?Gitea token"
egress:
  routes:
    - host: api.github.com
      auth: {scheme: Bearer, token_ref: GH_PAT}
      matches:
        - paths: [{type: prefix, value: /repos/}]
          methods: [GET, POST]
    - host: pypi.org
supervise: true
nums: [1, [2, [3, []]], {}]
]==])
  A.eq(t, {
    extends = "base",
    env = { GIT_AUTHOR_NAME = "Ada", GITEA_TOKEN = "?Gitea token" },
    egress = { routes = {
      { host = "api.github.com", auth = { scheme = "Bearer", token_ref = "GH_PAT" },
        matches = { { paths = { { type = "prefix", value = "/repos/" } }, methods = { "GET", "POST" } } } },
      { host = "pypi.org" },
    } },
    supervise = true,
    nums = { 1, { 2, { 3, {} } }, {} },
  })
end)

test("scalar keys keep their text; non-scalar keys are refused", function()
  local t = load_ok("1: one\ntrue: yes\n~: tilde\n0x10: hex\n'q': quoted\n")
  A.eq(t, { ["1"] = "one", ["true"] = "yes", ["~"] = "tilde", ["0x10"] = "hex", q = "quoted" })
  A.eq(load_err("[a, b]: 1\n", "m.md"), "m.md:1:1: mapping keys must be scalars")
  A.eq(load_err("? {a: 1}\n: x\n", "m.md"), "m.md:1:3: mapping keys must be scalars")
  A.eq(load_err("!!int 1: x\n", "m.md"), "m.md:1:1: unsupported tag '!!int'")
end)

-- ---- load: refusals and errors --------------------------------------------

test("duplicate keys name the key and both lines", function()
  A.eq(load_err("a: 1\nb: 2\na: 3\n", "bottle.md"), "bottle.md:3:1: duplicate key 'a' (first defined at line 1)")
  A.eq(load_err("env:\n  X: 1\n  Y: 2\n  X: 3\n", "bottle.md", { line_offset = 1 }),
    "bottle.md:5:3: duplicate key 'X' (first defined at line 3)")
  -- the same text spelled differently is the same key
  A.eq(load_err("1: a\n'1': b\n"), "<yaml>:2:1: duplicate key '1' (first defined at line 1)")
  -- same key in different mappings is fine
  A.eq(load_ok("a: {x: 1}\nb: {x: 2}\n"), { a = { x = 1 }, b = { x = 2 } })
end)

test("anchors and aliases are refused", function()
  A.eq(load_err("a: &x 1\n", "m"), "m:1:4: anchors and aliases are not supported")
  A.eq(load_err("a: &x {b: 1}\n", "m"), "m:1:4: anchors and aliases are not supported")
  A.eq(load_err("- &x [1]\n", "m"), "m:1:3: anchors and aliases are not supported")
  A.eq(load_err("a: 1\nb: *x\n", "m"), "m:2:4: anchors and aliases are not supported")
  A.eq(load_err("&k a: 1\n", "m"), "m:1:1: anchors and aliases are not supported")
  A.eq(load_err("? *k\n: 1\n", "m"), "m:1:3: anchors and aliases are not supported")
  -- the classic expansion bomb never gets expanded
  A.contains(load_err("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"), "anchors and aliases are not supported")
end)

test("tags other than !!str are refused, naming the tag", function()
  A.eq(load_err("a: !!int 1\n"), "<yaml>:1:4: unsupported tag '!!int'")
  A.eq(load_err("a: !!map {}\n"), "<yaml>:1:4: unsupported tag '!!map'")
  A.eq(load_err("a: !!str [x]\n"), "<yaml>:1:4: unsupported tag '!!str'")
  A.eq(load_err("a: !custom x\n"), "<yaml>:1:4: unsupported tag '!custom'")
  A.eq(load_err("%TAG !e! tag:example.com,2000:\n---\na: !e!thing x\n"),
    "<yaml>:3:4: unsupported tag 'tag:example.com,2000:thing'")
end)

test("more than one document is refused", function()
  A.eq(load_err("a: 1\n---\nb: 2\n", "bottle.md"), "bottle.md:2:1: expected a single YAML document")
  A.eq(load_err("--- a\n--- b\n", "f", { line_offset = 4 }), "f:6:1: expected a single YAML document")
  A.eq(load_ok("a: 1\n...\n"), { a = 1 })
end)

test("syntax errors carry libyaml's problem and context with line:col", function()
  A.eq(load_err("a: b: c\n", "bottle.md"), "bottle.md:1:5: mapping values are not allowed in this context")
  A.eq(load_err("env:\n  A: 1\n  B: c: d\n", "bottle.md", { line_offset = 1 }),
    "bottle.md:4:7: mapping values are not allowed in this context")
  A.eq(load_err("a: [1, 2\n", "x.md"),
    "x.md:2:1: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 4)")
  A.eq(load_err("a:\n  - x\n  y: 1\n", "x.md", { line_offset = 10 }),
    "x.md:13:3: did not find expected '-' indicator (while parsing a block collection at line 12, column 3)")
  A.eq(load_err("a: 'open\n"),
    "<yaml>:2:1: found unexpected end of stream (while scanning a quoted scalar at line 1, column 4)")
  A.eq(load_err("a:\n\tb: 1\n"),
    "<yaml>:2:1: found character that cannot start any token (while scanning for the next token at line 2, column 1)")
  A.eq(load_err('a: "\\q"\n'),
    "<yaml>:1:5: found unknown escape character (while parsing a quoted scalar at line 1, column 4)")
end)

test("bytes that are not UTF-8 are a positioned error", function()
  A.eq(load_err("a: 1\nb: x\255\n", "m.md"), "m.md:2:5: invalid leading UTF-8 octet (#xFF)")
  A.eq(load_err("ok: é\nb: \1\n", "m.md", { line_offset = 2 }),
    "m.md:4:4: control characters are not allowed (#x01)")
end)

test("excessive nesting is an error, not a crash", function()
  local deep = string.rep("[", 300) .. string.rep("]", 300)
  A.contains(load_err(deep), "nesting deeper than 256 levels")
  A.eq(#load_ok(string.rep("[", 200) .. string.rep("]", 200)), 1)
end)

test("options are checked", function()
  A.raises(function() yaml.load("a: 1", "n", { offset = 1 }) end,
    "unknown option 'offset' (expected one of: line_offset)")
  A.raises(function() yaml.load("a: 1", "n", { line_offset = -1 }) end, "line_offset must be a non-negative integer")
  A.raises(function() yaml.load("a: 1", "n", { line_offset = 1.5 }) end, "line_offset must be a non-negative integer")
  A.raises(function() yaml.load(nil) end, "string expected")
  A.eq(load_ok("a: 1", nil, { line_offset = 2.0 }), { a = 1 })
end)

-- ---- marks ------------------------------------------------------------------

test("marks give positions of nodes, keys and elements", function()
  local src = "top:\n  a: 1\n  list:\n    - x\n    - k: v\n      j: [1, 2]\n"
  local t = load_ok(src)
  A.eq({ yaml.mark(t) }, { 1, 1 })
  A.eq({ yaml.mark(t, "top") }, { 1, 1 })
  A.eq({ yaml.mark(t.top) }, { 2, 3 })
  A.eq({ yaml.mark(t.top, "a") }, { 2, 3 })
  A.eq({ yaml.mark(t.top, "list") }, { 3, 3 })
  A.eq({ yaml.mark(t.top.list) }, { 4, 5 })
  A.eq({ yaml.mark(t.top.list, 1) }, { 4, 7 })
  A.eq({ yaml.mark(t.top.list, 2) }, { 5, 7 })
  A.eq({ yaml.mark(t.top.list[2]) }, { 5, 7 })
  A.eq({ yaml.mark(t.top.list[2], "j") }, { 6, 7 })
  A.eq({ yaml.mark(t.top.list[2].j) }, { 6, 10 })
  A.eq({ yaml.mark(t.top.list[2].j, 2) }, { 6, 14 })
end)

test("marks include line_offset", function()
  local t = load_ok("env:\n  A: 1\nlist: [x, y]\n", "bottle.md", { line_offset = 7 })
  A.eq({ yaml.mark(t, "env") }, { 8, 1 })
  A.eq({ yaml.mark(t.env, "A") }, { 9, 3 })
  A.eq({ yaml.mark(t.list, 2) }, { 10, 11 })
end)

test("marks are nil where unknown", function()
  local t = load_ok("a: {b: 1}\nl: [1]\n")
  A.eq(select("#", yaml.mark(t, "missing")), 0)
  A.eq(yaml.mark(t.l, 2), nil)
  A.eq(yaml.mark(t.l, 0), nil)
  A.eq(yaml.mark({}), nil)
  A.eq(yaml.mark({ a = 1 }, "a"), nil)
  A.eq(yaml.mark("text"), nil)
  A.eq(yaml.mark(t, {}), nil)
end)

test("marks do not keep loaded values alive", function()
  local weak = setmetatable({}, { __mode = "k" })
  local function load_and_drop()
    local t = load_ok("a: {b: [1, {c: 2}]}\n")
    weak[t] = true
    weak[t.a] = true
    weak[t.a.b[2]] = true
    A.ok(yaml.mark(t.a.b[2], "c"))
  end
  load_and_drop()
  collectgarbage("collect")
  collectgarbage("collect")
  A.eq(next(weak), nil, "a loaded table survived a full collection")
end)

test("repeated loads and errors do not grow memory", function()
  local doc = "a: {b: [1, 2, {c: x}]}\nd: 'text'\n"
  local function round()
    for _ = 1, 200 do
      load_ok(doc)
      load_err("a: b: c\n")
      load_err("a: &x 1\n")
      load_err("a: 1\na: 2\n")
      pcall(yaml.dump, { f = print })
    end
  end
  round()
  collectgarbage("collect")
  collectgarbage("collect")
  local before = collectgarbage("count")
  round()
  collectgarbage("collect")
  collectgarbage("collect")
  local grown = collectgarbage("count") - before
  A.ok(grown < 64, string.format("Lua heap grew by %.1f KiB over 200 rounds", grown))
end)

-- ---- dump -------------------------------------------------------------------

test("dump writes block style with sorted keys", function()
  local out = yaml.dump({
    version = 1,
    enabled = true,
    off = false,
    ratio = 0.5,
    whole = 2.0,
    none = null,
    name = "pipelock",
    api_allowlist = { "api.anthropic.com", "pypi.org" },
    nested = { b = { 1, 2 }, a = { x = "y" } },
    list_of_maps = { { host = "a", port = 1 }, { host = "b" } },
  })
  A.eq(out, [[
api_allowlist:
- api.anthropic.com
- pypi.org
enabled: true
list_of_maps:
- host: a
  port: 1
- host: b
name: pipelock
nested:
  a:
    x: "y"
  b:
  - 1
  - 2
none: null
"off": false
ratio: 0.5
version: 1
whole: 2.0
]])
end)

test("__yaml_order and ordered() put named keys first", function()
  local t = yaml.ordered({ zeta = 1, alpha = 2, mode = 3, beta = 4 }, { "mode", "zeta", "missing", "mode" })
  A.eq(getmetatable(t).__yaml_order, { "mode", "zeta", "missing", "mode" })
  A.eq(yaml.dump(t), "mode: 3\nzeta: 1\nalpha: 2\nbeta: 4\n")
  local mt = { __index = {} }
  local u = setmetatable({ b = 1, a = 2 }, mt)
  A.eq(yaml.ordered(u, { "b" }), u)
  A.eq(getmetatable(u), mt)
  A.eq(yaml.dump(u), "b: 1\na: 2\n")
  A.eq(yaml.dump({ x = yaml.ordered({ c = 1, a = 2 }, { "c" }) }), "x:\n  c: 1\n  a: 2\n")
  A.raises(function() yaml.ordered({}, { 1 }) end, "expected a list of string keys")
  A.raises(function() yaml.dump(setmetatable({ a = 1 }, { __yaml_order = { true } })) end,
    "__yaml_order must list string keys")
end)

test("empty tables are [] unless marked __yaml_map", function()
  A.eq(yaml.dump({}), "[]\n")
  A.eq(yaml.dump(setmetatable({}, { __yaml_map = true })), "{}\n")
  A.eq(yaml.dump({ a = {}, b = setmetatable({}, { __yaml_map = true }) }), "a: []\nb: {}\n")
  A.eq(yaml.dump(yaml.ordered({}, { "x" })), "{}\n")
end)

test("top-level scalars", function()
  A.eq(yaml.dump("x"), "x\n")
  A.eq(yaml.load(yaml.dump("x")), "x")
  A.eq(yaml.load(yaml.dump(null)), null)
  A.eq(yaml.load(yaml.dump(7)), 7)
  A.eq(yaml.load(yaml.dump(false)), false)
end)

test("strings are plain only when they load back as the same string", function()
  local plain = { "hello", "hello world", "a:b", "a#b", "-x", "--verbose", "?x", "x?", "ünïcödé", "日本語",
    "/repos/", "api.github.com", "1password", "a, b", "x[1]", "C:\\path", "it's", 'say "hi"', "a  b" }
  for _, s in ipairs(plain) do
    A.eq(yaml.dump({ k = s }), "k: " .. s .. "\n", s)
  end
  local quoted = {
    [""] = '""', ["true"] = '"true"', ["False"] = '"False"', ["null"] = '"null"', ["~"] = '"~"',
    ["123"] = '"123"', ["-1"] = '"-1"', ["1.5"] = '"1.5"', ["0x1F"] = '"0x1F"', ["0o7"] = '"0o7"',
    [".inf"] = '".inf"', [".nan"] = '".nan"', ["1e3"] = '"1e3"', ["yes"] = '"yes"', ["no"] = '"no"',
    ["on"] = '"on"', ["Off"] = '"Off"', ["12:30"] = '"12:30"', ["1_000"] = '"1_000"', ["2024-01-02"] = '"2024-01-02"',
    [" lead"] = '" lead"', ["trail "] = '"trail "', ["a: b"] = '"a: b"', ["a:"] = '"a:"', ["#x"] = '"#x"',
    ["a #b"] = '"a #b"', ["- x"] = '"- x"', ["-"] = '"-"', ["? x"] = '"? x"', [": x"] = '": x"',
    ["key: value"] = '"key: value"', ["[a]"] = '"[a]"', ["{a}"] = '"{a}"', ["*a"] = '"*a"', ["&a"] = '"&a"',
    ["!a"] = '"!a"', ["|"] = '"|"', [">"] = '">"', ["'q'"] = "\"'q'\"", ['"q"'] = '"\\"q\\""', ["%x"] = '"%x"',
    ["@x"] = '"@x"', ["`x"] = '"`x"', ["---"] = '"---"', ["..."] = '"..."', ["<<"] = '"<<"',
    ["tab\there"] = '"tab\\there"', ["two\nlines"] = '"two\\nlines"', ["cr\r"] = '"cr\\r"',
    ["nul\0"] = '"nul\\0"', ["bell\7"] = '"bell\\a"', ["😀"] = '"\\U0001F600"',
    ["\u{2028}"] = '"\\L"', ["\u{85}"] = '"\\N"', ["\u{feff}x"] = '"\\uFEFFx"',
  }
  for s, want in pairs(quoted) do
    A.eq(yaml.dump({ k = s }), "k: " .. want .. "\n", string.format("%q", s))
  end
end)

test("keys are quoted by the same rules", function()
  A.eq(yaml.dump({ ["1"] = "a", ["true"] = "b", plain = "c", ["a: b"] = "d" }),
    '"1": a\n"a: b": d\nplain: c\n"true": b\n')
  A.eq(yaml.load(yaml.dump({ ["1"] = "a", [""] = "e" })), { ["1"] = "a", [""] = "e" })
end)

test("numbers are written so they load back with the same type", function()
  local t = { 0, -1, math.maxinteger, math.mininteger, 1.0, -0.5, 0.1, 1 / 3, 1e300, -1e-300, 2.0 ^ 63,
    5e-324, 123456789.0, math.huge, -math.huge }
  local out = yaml.dump(t)
  A.eq(same(yaml.load(out), t), nil)
  A.contains(out, "- 1.0\n")
  A.contains(out, "- .inf\n- -.inf\n")
  A.contains(out, "- 0.1\n")
  local nan = yaml.load(yaml.dump({ 0 / 0 }))[1]
  A.ok(nan ~= nan and math.type(nan) == "float")
end)

test("dump refuses what YAML cannot carry, naming where", function()
  A.raises(function() yaml.dump({ a = { b = print } }) end, "yaml.dump: cannot dump a function (at .a.b)")
  A.raises(function() yaml.dump({ l = { 1, coroutine.create(print) } }) end, "cannot dump a thread (at .l[2])")
  A.raises(function() yaml.dump({ [1] = "a", [3] = "c" }) end, "mapping keys must be strings, got number 1")
  A.raises(function() yaml.dump({ 1, 2, x = 3 }) end, "mapping keys must be strings, got number")
  A.raises(function() yaml.dump({ [true] = 1 }) end, "mapping keys must be strings, got boolean true")
  A.raises(function() yaml.dump(setmetatable({ 1 }, { __yaml_map = true })) end, "mapping keys must be strings")
  A.raises(function() yaml.dump({ s = "bad \255 utf8" }) end, "string is not valid UTF-8 (at .s)")
  A.raises(function() yaml.dump() end, "value expected")
end)

test("cycles are refused; shared subtables are fine", function()
  local c = { name = "loop" }
  c.self = { list = { c } }
  A.raises(function() yaml.dump(c) end, "cycle: a table contains itself (at .self.list[1])")
  local shared = { x = 1 }
  A.eq(yaml.dump({ a = shared, b = shared }), "a:\n  x: 1\nb:\n  x: 1\n")
  local deep = {}
  local cur = deep
  for _ = 1, 300 do
    cur.n = {}
    cur = cur.n
  end
  A.raises(function() yaml.dump(deep) end, "nesting deeper than 256 levels")
end)

-- ---- round trip --------------------------------------------------------------

local pieces = {
  "", " ", "  ", "\t", "\n", "\r\n", "\r", ":", ": ", " :", " #", "#", "#x", "-", "- ", "- x", "--", "key: value",
  "'", '"', "''", "\\", "\\n", "{", "}", "[", "]", ",", "&a", "*a", "!", "!!str", "|", ">", "%", "@", "`", "?",
  "? x", "---", "...", "yes", "no", "on", "off", "y", "n", "Y", "true", "False", "null", "Null", "~", "NULL",
  "0x1F", "0o17", "012", "1e3", "1.5", ".5", ".inf", "-.inf", ".nan", "+5", "-0", "123", "1_000", "12:30", "<<",
  "=", "é", "ünï", "日本", "😀", "\u{2028}", "\u{85}", "\u{feff}", "\u{a0}", "\u{fffd}", "\0", "\1", "\127",
  "a", "b c", "x:y", "x#y", "http://h:1/p?q=1#f", "$HOME", "${GH_PAT}", "?Gitea token", "\\x41",
}

local function rand_string()
  local n = math.random(0, 4)
  local parts = {}
  for i = 1, n do
    parts[i] = pieces[math.random(#pieces)]
  end
  return table.concat(parts)
end

local numbers = { 0, 1, -1, 42, math.maxinteger, math.mininteger, 0.0, -0.0, 0.5, 1.0, -2.5, 0.1, 1e300, 1e-300,
  math.huge, -math.huge, 2.0 ^ 53, 2.0 ^ 63, 123456.789 }

local function rand_scalar()
  local r = math.random(10)
  if r <= 5 then
    return r == 1 and pieces[math.random(#pieces)] or rand_string()
  elseif r == 6 then
    return numbers[math.random(#numbers)]
  elseif r == 7 then
    return math.random(2) == 1 and math.random(-1000000, 1000000) or (math.random() - 0.5) * 10.0 ^ math.random(-20, 20)
  elseif r == 8 then
    return math.random(2) == 1
  else
    return null
  end
end

local function rand_value(depth)
  local r = math.random(10)
  if depth > 4 or r <= 5 then
    return rand_scalar()
  elseif r <= 7 then
    local t = {}
    for i = 1, math.random(0, 5) do
      t[i] = rand_value(depth + 1)
    end
    return t
  else
    local t = {}
    for _ = 1, math.random(0, 5) do
      t[rand_string()] = rand_value(depth + 1)
    end
    if next(t) == nil then
      setmetatable(t, { __yaml_map = true })
    end
    return t
  end
end

test("load(dump(v)) == v for many generated values", function()
  math.randomseed(20240611)
  for i = 1, 1500 do
    local v = rand_value(0)
    local text = yaml.dump(v)
    local back, err = yaml.load(text, "dump#" .. i)
    if err then
      error(string.format("case %d: %s\n%s", i, err, text))
    end
    local d = same(back, v)
    if d then
      error(string.format("case %d: %s\n--- dumped:\n%s", i, d, text))
    end
  end
end)

test("every awkward piece round-trips as a key and as a value", function()
  for _, a in ipairs(pieces) do
    for _, b in ipairs({ "", "x", " ", "\n", "1" }) do
      local s = a .. b
      local v = { [s] = s, list = { s, b .. a } }
      local text = yaml.dump(v)
      local back, err = yaml.load(text)
      A.eq(err, nil, string.format("%q -> %s", s, text))
      A.eq(same(back, v), nil, string.format("%q -> %s", s, text))
    end
  end
end)
