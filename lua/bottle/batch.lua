--- One upload and one exec for many provisioning steps.
--
-- Every guest round trip is paid on every launch (a smolvm exec is a vsock
-- round trip into the VM), so provisioning steps do not each copy files in
-- and run commands: they add files to one archive and shell fragments to
-- one script, which the guest runs in a single exec with the archive on its
-- stdin. The script unpacks the archive into a private staging directory
-- ($BOTTLE_STAGE), then runs each step's fragment in order, framing its
-- output with markers, so each step still checks its own output afterwards
-- (`bottle.launch.provision`). A fatal step that fails stops the script;
-- the steps after it did not run.
--
-- Nothing secret goes into the script (it is a command line); files travel
-- in the archive, on stdin.
local tar = require("bottle.tar")
local errors = require("bottle.errors")

local M = {}

M.MARK = "::bottle-step"

--- Quotes a string for sh.
---@param s string
---@return string
function M.quote(s)
  s = tostring(s)
  if s:match("^[%w%-_./=:,@%%+]+$") then
    return s
  end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- A command line from words, each quoted.
---@param argv string[]
function M.command(argv)
  local out = {}
  for i, a in ipairs(argv) do
    out[i] = M.quote(a)
  end
  return table.concat(out, " ")
end

local Batch = {}
Batch.__index = Batch

function M.new()
  return setmetatable({ archive = tar.writer(), parts = {}, current = nil, names = {} }, Batch)
end

--- Starts the part of step `name`. opts.fatal = false: a failure does not
--- stop the steps after it.
function Batch:begin(name, opts)
  self.current = { name = name, lines = {}, fatal = not (opts and opts.fatal == false) }
  self.parts[#self.parts + 1] = self.current
end

--- Adds a file to the archive under the staging directory and returns the
--- path a fragment uses for it ("$BOTTLE_STAGE/<name>"). meta: mode, uid,
--- gid, uname, gname.
---@return string
function Batch:file(name, data, meta)
  self.archive:file(name, data, meta)
  return '"$BOTTLE_STAGE"/' .. M.quote(name)
end

--- Adds a host directory tree under the staging directory; returns its
--- staged path as for file.
function Batch:tree(host_dir, name, meta)
  self.archive:tree(host_dir, name, meta)
  return '"$BOTTLE_STAGE"/' .. M.quote(name)
end

--- Adds a shell fragment to the current step, run as root (or as `user`,
--- with HOME and USER set, through runuser).
---@param fragment string
---@param user? string
function Batch:sh(fragment, user)
  local part = errors.must(self.current, "batch: sh() before begin()")
  if user and user ~= "root" then
    local home = user == "node" and "/home/node" or ("/home/" .. user)
    fragment = M.command({ "runuser", "-u", user, "--", "env", "HOME=" .. home, "USER=" .. user, "sh", "-c",
      fragment })
  end
  part.lines[#part.lines + 1] = fragment
end

--- Whether the batch holds anything to run.
function Batch:empty()
  return #self.parts == 0
end

--- The archive's bytes (stdin of the exec).
function Batch:stdin()
  return self.archive.count > 0 and self.archive:finish() or ""
end

--- The script: unpack, then each part in a subshell between markers.
---@return string
function Batch:script()
  local out = {
    "exec 2>&1",
    'BOTTLE_STAGE=$(mktemp -d /tmp/bottle-stage.XXXXXX) || exit 1',
    "export BOTTLE_STAGE",
    "trap 'rm -rf \"$BOTTLE_STAGE\"' EXIT",
  }
  if self.archive.count > 0 then
    out[#out + 1] = 'tar -xf - -C "$BOTTLE_STAGE" || { echo "cannot unpack the upload"; exit 1; }'
  end
  for _, p in ipairs(self.parts) do
    out[#out + 1] = string.format("echo '%s begin %s'", M.MARK, p.name)
    out[#out + 1] = "(\n" .. table.concat(p.lines, "\n") .. "\n)"
    out[#out + 1] = string.format("rc=$?; echo '%s end %s' $rc", M.MARK, p.name)
    if p.fatal then
      out[#out + 1] = '[ "$rc" = 0 ] || exit "$rc"'
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- The parts of a script made by Batch:script(), in order: { name,
--- fragment, fatal } (the scenario fakes answer each part on its own).
---@param script string
---@return table[]
function M.split_script(script)
  local out = {}
  local mark = M.MARK:gsub("%-", "%%-")
  for name, body, tail in script:gmatch("echo '" .. mark .. " begin ([^']+)'\n%(\n(.-)\n%)\nrc=%$%?; echo '" ..
    mark .. " end [^']+' %$rc\n([^\n]*)") do
    out[#out + 1] = { name = name, fragment = body, fatal = tail:find('|| exit "$rc"', 1, true) ~= nil }
  end
  return out
end

--- Splits the exec's output into each step's part.
---@param output string
---@return table parts name -> { output, code } (code nil: it never ended)
---@return string rest what the script printed outside any part
function M.parse(output)
  local parts, rest = {}, {}
  local current
  for line in (output .. "\n"):gmatch("(.-)\n") do
    local what, name, code = line:match("^" .. M.MARK:gsub("%-", "%%-") .. " (%a+) (%S+) ?(%d*)$")
    if what == "begin" then
      current = { lines = {} }
      parts[name] = current
    elseif what == "end" and current then
      current.code = tonumber(code)
      current = nil
    elseif current then
      current.lines[#current.lines + 1] = line
    else
      rest[#rest + 1] = line
    end
  end
  for _, p in pairs(parts) do
    p.output = table.concat(p.lines, "\n")
    p.lines = nil
  end
  return parts, table.concat(rest, "\n")
end

return M
