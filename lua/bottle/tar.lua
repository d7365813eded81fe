--- A writer for POSIX ustar archives: how files reach a guest.
--
-- Provisioning steps put files into the guest as one archive that the
-- guest's own `tar -x` unpacks as root, so each entry carries its final
-- path, mode and owner (no chown round trip afterwards), and the archive
-- holds exactly what bottle wrote: no host tar adding macOS AppleDouble
-- (`._*`) files or extended attributes. Paths are relative to the guest's
-- `/` (unpack with `tar -xf - -C /`).
local fs = require("rt.fs")
local errors = require("bottle.errors")

local M = {}

local BLOCK = 512

local function octal(n, width)
  return string.format("%0" .. (width - 1) .. "o", n) .. "\0"
end

local function field(s, width)
  if #s > width then
    return nil
  end
  return s .. string.rep("\0", width - #s)
end

-- Splits a path into ustar's prefix (<= 155) and name (<= 100) at a '/'.
local function split_path(path)
  if #path <= 100 then
    return "", path
  end
  for i = math.min(#path - 1, 156), 1, -1 do
    if path:sub(i, i) == "/" and i - 1 <= 155 and #path - i <= 100 then
      return path:sub(1, i - 1), path:sub(i + 1)
    end
  end
  return nil
end

local function header(path, typeflag, size, meta)
  local prefix, name = split_path(path)
  if not prefix then
    errors.raise(string.format("tar: path too long for an archive entry: %s", path))
  end
  local fields = {
    field(name, 100),
    octal(meta.mode or (typeflag == "5" and 493 or 420), 8),
    octal(meta.uid or 0, 8),
    octal(meta.gid or 0, 8),
    octal(size, 12),
    octal(meta.mtime or 0, 12),
    "        ", -- checksum, counted as spaces
    typeflag,
    field("", 100),
    "ustar\0", "00",
    field(meta.uname or "", 32),
    field(meta.gname or "", 32),
    octal(0, 8), octal(0, 8),
    field(prefix, 155),
    string.rep("\0", 12),
  }
  for _, f in ipairs(fields) do
    if not f then
      errors.raise(string.format("tar: a field of %s does not fit its entry (owner name too long?)", path))
    end
  end
  local h = table.concat(fields)
  local sum = 0
  for i = 1, BLOCK do
    sum = sum + h:byte(i)
  end
  return h:sub(1, 148) .. string.format("%06o\0 ", sum) .. h:sub(157)
end

local function clean(path)
  path = tostring(path):gsub("^/+", ""):gsub("/+$", ""):gsub("//+", "/")
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      errors.raise(string.format("tar: refusing a path that climbs out: %s", path))
    end
  end
  if path == "" then
    errors.raise("tar: empty path")
  end
  return path
end

local Writer = {}
Writer.__index = Writer

--- A new archive in memory.
---@return table writer
function M.writer()
  return setmetatable({ parts = {}, count = 0 }, Writer)
end

--- Adds a directory entry. meta: mode, uid, gid, uname, gname.
function Writer:dir(path, meta)
  self.parts[#self.parts + 1] = header(clean(path) .. "/", "5", 0, meta or {})
  self.count = self.count + 1
  return self
end

--- Adds a regular file with `data` as its content. meta as for dir.
function Writer:file(path, data, meta)
  self.parts[#self.parts + 1] = header(clean(path), "0", #data, meta or {})
  self.parts[#self.parts + 1] = data
  local pad = (BLOCK - #data % BLOCK) % BLOCK
  if pad > 0 then
    self.parts[#self.parts + 1] = string.rep("\0", pad)
  end
  self.count = self.count + 1
  return self
end

--- Adds a host directory's tree under `path` (the directory itself
--- included): regular files with their mode bits, directories, and links
--- followed to what they name. meta gives the owner (uid, gid, uname, gname)
--- of every entry.
---@param host_dir string
---@param path string
---@param meta? table
function Writer:tree(host_dir, path, meta, depth)
  depth = depth or 0
  if depth > 32 then
    errors.raise(string.format("tar: %s nests more than 32 levels (a link loop?)", host_dir))
  end
  meta = meta or {}
  local function with_mode(mode)
    return { mode = mode, uid = meta.uid, gid = meta.gid, uname = meta.uname, gname = meta.gname }
  end
  local st = errors.must(fs.stat(host_dir))
  if st.type == "link" then
    st = errors.must(fs.stat(errors.must(fs.realpath(host_dir))))
  end
  self:dir(path, with_mode(st.mode))
  for _, name in ipairs(errors.must(fs.list(host_dir))) do
    local src, dst = host_dir .. "/" .. name, path .. "/" .. name
    local est = errors.must(fs.stat(src))
    if est.type == "link" then
      local real = fs.realpath(src)
      est = real and fs.stat(real) or { type = "dangling" }
    end
    if est.type == "dir" then
      self:tree(src, dst, meta, depth + 1)
    elseif est.type == "file" then
      self:file(dst, errors.must(fs.read(src)), with_mode(est.mode))
    else
      errors.raise(string.format("tar: %s is neither a file nor a directory", src))
    end
  end
  return self
end

--- The archive's bytes (ends with the two zero blocks tar expects).
---@return string
function Writer:finish()
  return table.concat(self.parts) .. string.rep("\0", 2 * BLOCK)
end

return M
