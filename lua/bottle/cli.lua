--- The command line: parses argv, dispatches, returns the exit code.
--
-- Exit codes: 0 success; 1 a failed command; 2 usage; 128+N for signal N.
-- `--help` anywhere prints help and does nothing else.
local log = require("rt.log")
local host = require("rt.host")
local errors = require("bottle.errors")
local ui = require("bottle.ui")

local M = {}

local MAIN_USAGE = [[
usage: bottle [--lua-dir DIR]... [-v|--verbose] [-q|--quiet] [--no-color] COMMAND

Runs a coding agent in a sandbox whose only way out is a per-bottle bundle
of proxies that hold the real credentials.

commands:
  recipe list                 recipes found, with where each comes from
  recipe show NAME            print a recipe's source
  recipe which NAME|MODULE    the path it loads from, or builtin:<path>
  recipe eject NAME|MODULE    copy the built-in source into the user dir
  recipe run [NAME] ...       launch an agent (NAME defaults to smolmachines)
  supervise [--json] [--once] pending agent requests; approve|deny ID
  ls [--json]                 live bottles on every backend
  cleanup [--yes] [--json]    remove leftovers of crashed launches
  test [PATH]...              run scripted scenario files
  version                     print the version
  help [COMMAND]              help for a command

Run 'bottle help COMMAND' for a command's options.]]

local RECIPE_USAGE = [[
usage: bottle recipe list|show|which|eject|run ...

  recipe list                 recipes and steps found, with where each comes from
  recipe show NAME            print a recipe's source
  recipe which NAME|MODULE    the path it loads from, or builtin:<path>
  recipe eject NAME|MODULE    copy the built-in source into the user dir
  recipe run [NAME] ...       launch an agent (see: bottle help recipe run)]]

-- Per-command help, options and handler. `flags` are booleans, `values`
-- take one argument, `multi` may repeat; `args` bounds positionals.
local commands = {}

local function usage_error(cmd, msg)
  io.stderr:write("bottle: ", msg, "\n")
  local help = cmd and commands[cmd] and commands[cmd].usage or (cmd == "recipe" and RECIPE_USAGE) or MAIN_USAGE
  io.stderr:write(help:match("^[^\n]*"), "\n")
  io.stderr:write("Run 'bottle help", cmd and (" " .. cmd) or "", "' for more.\n")
  return 2
end

-- " (did you mean 'x'?)" when `word` is a typo of one of `choices`.
local function did_you_mean(word, choices)
  local hint = require("bottle.schema").suggest(word, choices)
  return hint and string.format(" (did you mean '%s'?)", hint) or ""
end

local function command_names(prefix)
  local out = {}
  for name, c in pairs(commands) do
    if not c.hidden then
      local rest = prefix and name:match("^" .. prefix .. " (.+)$") or (not prefix and name:match("^[^ ]+"))
      if rest then
        out[#out + 1] = rest
      end
    end
  end
  table.sort(out)
  return out
end

local GLOBAL_FLAGS = {
  ["-v"] = "verbose", ["--verbose"] = "verbose",
  ["-q"] = "quiet", ["--quiet"] = "quiet",
  ["--no-color"] = "no_color",
  ["-h"] = "help", ["--help"] = "help",
  ["--version"] = "version",
}

--- Splits argv into global options, the command words, per-command options
--- and the words after `--`. Returns nil, message on a usage error.
local function parse(argv)
  local g = { lua_dirs = {} }
  local words, rest = {}, nil
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      rest = table.move(argv, i + 1, #argv, 1, {})
      break
    elseif GLOBAL_FLAGS[a] then
      g[GLOBAL_FLAGS[a]] = true
    elseif a == "--lua-dir" then
      if not argv[i + 1] then
        return nil, "--lua-dir needs a directory"
      end
      g.lua_dirs[#g.lua_dirs + 1] = argv[i + 1]
      i = i + 1
    elseif a:match("^%-%-lua%-dir=") then
      g.lua_dirs[#g.lua_dirs + 1] = a:sub(11)
    else
      words[#words + 1] = a
    end
    i = i + 1
  end
  return g, words, rest or {}
end

--- Parses a command's own options out of its words.
local function parse_options(name, spec, words)
  local opts, pos = {}, {}
  for _, v in pairs(spec.multi or {}) do
    opts[v] = {}
  end
  local i = 1
  while i <= #words do
    local a = words[i]
    local key, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    key = key or a
    if spec.flags and spec.flags[key] and not inline then
      opts[spec.flags[key]] = true
    elseif (spec.values and spec.values[key]) or (spec.multi and spec.multi[key]) then
      local v = inline or words[i + 1]
      if not v then
        return nil, string.format("%s needs a value", key)
      end
      if not inline then
        i = i + 1
      end
      if spec.values and spec.values[key] then
        opts[spec.values[key]] = v
      else
        table.insert(opts[spec.multi[key]], v)
      end
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return nil, string.format("unknown option '%s' for '%s'", a, name)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  local max = spec.args or 0
  if #pos > max then
    return nil, string.format("unexpected argument '%s' for '%s'", pos[max + 1], name)
  end
  if spec.min_args and #pos < spec.min_args then
    return nil, string.format("'%s' needs %s", name, spec.arg_name or "an argument")
  end
  return opts, pos
end

commands["recipe list"] = {
  usage = "usage: bottle recipe list\n\nLists the recipes and provisioning steps bottle can run, and where each\n" ..
    "one loads from (a user file overrides the built-in of the same name).",
  run = function()
    local recipes = require("bottle.recipes")
    for _, r in ipairs(recipes.list()) do
      local where = r.kind == "builtin" and ("builtin:" .. r.tree) or r.path
      local note = r.overrides and "  (overrides the built-in)" or ""
      io.stdout:write(string.format("%-16s %s%s\n", r.name, where, note))
    end
    return 0
  end,
}

commands["recipe show"] = {
  usage = "usage: bottle recipe show NAME\n\nPrints the source of the recipe (or module) that would run.",
  args = 1, min_args = 1, arg_name = "a recipe name",
  run = function(_, pos)
    local src = require("bottle.recipes").source(pos[1])
    io.stdout:write(src)
    return 0
  end,
}

commands["recipe which"] = {
  usage = "usage: bottle recipe which NAME|MODULE\n\nPrints the file a recipe, step (steps/ca) or module " ..
    "(bottle.smolvm)\nloads from, or builtin:<path> for the copy inside the binary.",
  args = 1, min_args = 1, arg_name = "a recipe or module name",
  run = function(_, pos)
    local where, err = require("bottle.recipes").locate(pos[1])
    if not where then
      errors.raise(err)
    end
    io.stdout:write(where.builtin and ("builtin:" .. where.path) or where.path, "\n")
    return 0
  end,
}

commands["recipe eject"] = {
  usage = "usage: bottle recipe eject NAME|MODULE [--force]\n\nWrites the built-in source into the user dir " ..
    "(~/.config/bottle/recipes or\n~/.config/bottle/lua), where it then overrides the built-in. Edit it freely;\n" ..
    "delete it to return to the built-in.\n\n  --force   replace an existing file",
  args = 1, min_args = 1, arg_name = "a recipe or module name",
  flags = { ["--force"] = "force" },
  run = function(opts, pos)
    local path = require("bottle.recipes").eject(pos[1], opts.force)
    io.stdout:write(path, "\n")
    return 0
  end,
}

commands["recipe run"] = {
  usage = [[usage: bottle recipe run [NAME] [--agent A] [--bottle B]... [--label L]
                          [--dry-run] [--json] [--yes] [-- CMD ARG...]

Plans and launches an agent in a bottle. NAME is a recipe (default
smolmachines; also docker) or a path to a .lua recipe file.

  --agent A     agent manifest (default: the agent's or built-in claude)
  --bottle B    bottle manifest; repeat to merge several in order
  --label L     use L in the launch's slug (names every resource)
  --dry-run     plan only: print the preflight summary, create nothing
  --json        with --dry-run, print the plan as one JSON object
  --yes         do not ask for confirmation before launching
  -- CMD ARG    run CMD instead of the agent's command]],
  args = 1,
  flags = { ["--dry-run"] = "dry_run", ["--json"] = "json", ["--yes"] = "yes", ["-y"] = "yes" },
  values = { ["--agent"] = "agent", ["--label"] = "label" },
  multi = { ["--bottle"] = "bottles" },
  check = function(opts)
    if opts.json and not opts.dry_run then
      return "--json prints the plan and needs --dry-run (a launch prints no JSON)"
    end
  end,
  run = function(opts, pos, rest)
    local recipes = require("bottle.recipes")
    local runner = require("bottle.runner")
    local name = pos[1] or "smolmachines"
    local recipe, origin = recipes.load(name)
    local ctx = runner.context({ name = name, origin = origin, args = rest, opts = opts })
    return runner.run(recipe, ctx)
  end,
}

commands["test"] = {
  usage = "usage: bottle test [PATH]...\n\nRuns scenario files (or every *.lua in a directory) against scripted " ..
    "fake\ndocker and smolvm drivers. Ends with `N passed, N failed`.",
  args = math.huge,
  run = function(_, pos)
    return require("bottle.testing.scenario").main(pos)
  end,
}

commands["supervise"] = {
  usage = "usage: bottle supervise [--json] [--once]\n       bottle supervise approve ID [--reason TEXT]\n" ..
    "       bottle supervise deny ID --reason TEXT\n\n" ..
    "Lists the requests agents made through the supervise MCP server, across all\n" ..
    "live bottles, oldest first; on a terminal, asks about each in turn. An approved\n" ..
    "egress host is opened for that launch at once (never in the manifest).\n\n" ..
    "  --json          print the pending requests (or the decision) as JSON\n" ..
    "  --once          print the list and exit, even on a terminal\n" ..
    "  --reason TEXT   the note the agent gets (required to deny)",
  flags = { ["--json"] = "json", ["--once"] = "once" },
  values = { ["--reason"] = "reason" },
  args = 2,
  run = function(opts, pos)
    return require("bottle.supervise").main(opts, pos)
  end,
}

commands["ls"] = {
  usage = "usage: bottle ls [--json]\n\nLists live bottles on every backend (docker engine resources by label,\n" ..
    "smolvm machines named bottle-*): slug, backend, agent, age, daemons.",
  flags = { ["--json"] = "json" },
  run = function(opts)
    return require("bottle.inventory").ls(opts)
  end,
}

commands["cleanup"] = {
  usage = "usage: bottle cleanup [--yes] [--json]\n\nFinds leftovers of crashed launches (containers, networks, " ..
    "VMs, state dirs),\nlists them, asks once, removes them. Running it twice is harmless.\n\n" ..
    "  --yes    do not ask\n  --json   print what was found and removed as JSON",
  flags = { ["--yes"] = "yes", ["-y"] = "yes", ["--json"] = "json" },
  run = function(opts)
    return require("bottle.inventory").cleanup(opts)
  end,
}

commands["version"] = {
  usage = "usage: bottle version\n\nPrints bottle's version.",
  run = function()
    io.stdout:write("bottle ", host.version, " (", _VERSION, ")\n")
    return 0
  end,
}

commands["help"] = {
  usage = "usage: bottle help [COMMAND]\n\nPrints help for bottle or one of its commands.",
  args = 2,
  run = function(_, pos)
    local name = table.concat(pos, " ")
    if name == "" then
      io.stdout:write(MAIN_USAGE, "\n")
      return 0
    end
    local cmd = commands[name]
    if name == "recipe" then
      io.stdout:write(RECIPE_USAGE, "\n")
      return 0
    end
    if not cmd or cmd.hidden then
      return usage_error(nil, string.format("no help for unknown command '%s'", name))
    end
    io.stdout:write(cmd.usage, "\n")
    return 0
  end,
}

commands["__test-lua"] = {
  hidden = true,
  usage = "usage: bottle __test-lua FILE...",
  args = math.huge,
  run = function(_, pos)
    return require("bottle.testing.unit").main(pos)
  end,
}

local function apply_globals(g)
  if g.no_color then
    log.set_color(false)
  end
  if g.quiet then
    log.set_level("error")
  end
  if g.verbose then
    log.set_level("trace")
  end
end

--- Parses `recipe run` words (as after `bottle recipe run`): returns opts,
--- positionals and the words after `--`, or nil and a usage message. The
--- scenario runner uses it so scenarios can give real command lines.
---@param argv string[]
function M.parse_run_args(argv)
  local g, words, rest = parse(argv)
  if not g then
    return nil, words
  end
  local opts, pos = parse_options("recipe run", commands["recipe run"], words)
  if not opts then
    return nil, pos
  end
  local bad = commands["recipe run"].check(opts)
  if bad then
    return nil, bad
  end
  return opts, pos, rest
end

--- Entry point called by the C host with argv (without argv[0]).
---@param argv string[]
---@return integer exit code
function M.main(argv)
  local g, words, rest = parse(argv)
  if not g then
    return usage_error(nil, words)
  end
  apply_globals(g)
  if g.version and not g.help then
    if #words > 0 then
      return usage_error(nil, "--version takes no command")
    end
    return commands.version.run()
  end

  local name = words[1]
  local consumed = 1
  if name == "recipe" then
    if words[2] and commands["recipe " .. words[2]] then
      name = "recipe " .. words[2]
      consumed = 2
    elseif g.help then
      io.stdout:write(RECIPE_USAGE, "\n")
      return 0
    elseif not words[2] then
      io.stderr:write(RECIPE_USAGE, "\n")
      return 2
    else
      return usage_error("recipe", string.format("unknown recipe command '%s'%s (list, show, which, eject, run)",
        words[2], did_you_mean(words[2], command_names("recipe"))))
    end
  end
  if not name then
    if g.help then
      io.stdout:write(MAIN_USAGE, "\n")
      return 0
    end
    return usage_error(nil, "no command given")
  end
  local cmd = commands[name]
  if not cmd then
    return usage_error(nil, string.format("unknown command '%s'%s", name, did_you_mean(name, command_names())))
  end
  if g.help then
    io.stdout:write(cmd.usage, "\n")
    return 0
  end
  if #rest > 0 and name ~= "recipe run" then
    return usage_error(name, string.format("'%s' takes no command after --", name))
  end
  local opts, pos = parse_options(name, cmd, table.move(words, consumed + 1, #words, 1, {}))
  if not opts then
    return usage_error(name, pos)
  end
  local bad = cmd.check and cmd.check(opts)
  if bad then
    return usage_error(name, bad)
  end
  local ok, code = xpcall(cmd.run, function(e)
    if errors.is(e) then
      return e
    end
    return debug.traceback(tostring(e), 2)
  end, opts, pos, rest)
  if not ok then
    local sig = host.signal()
    if errors.is(code) then
      ui.error("%s", code.message)
      if code.detail then
        ui.detail(code.detail)
      end
    elseif ui.verbose() then
      ui.error("%s", code)
    else
      ui.error("%s", (tostring(code):match("^[^\n]*")))
    end
    return sig ~= 0 and 128 + sig or 1
  end
  return code or 0
end

return M
