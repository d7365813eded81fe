-- Test driver for the rt.docker binding. test_docker.c runs
--   bottle --lua-dir tests/c/docker-lua IMAGE RUN_ID
-- so this file stands in for bottle.cli. It prints `ok - name` or
-- `not ok - name: why` per check and returns 1 when any failed. Everything
-- it creates carries io.bottle.test=RUN_ID (test_docker.c sweeps it too).
local docker = require("rt.docker")
local proc = require("rt.proc")
local time = require("rt.time")
local host = require("rt.host")

local M = {}

local failed = 0
local function check(name, cond, why)
  if cond then
    print("ok - " .. name)
  else
    failed = failed + 1
    print("not ok - " .. name .. ": " .. tostring(why))
  end
end

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  return not ok and tostring(err) or nil
end

function M.main(args)
  local image, run_id = args[3], args[4]
  local labels = { ["io.bottle.test"] = run_id }
  local function name(what) return "bottle-test-lua-" .. what .. "-" .. run_id end

  -- Misuse raises with the option's name.
  local err = raises(docker.container_create, { image = image, bogus = 1 })
  check("unknown option raises", err and err:find("unknown option 'bogus'", 1, true), err)
  err = raises(docker.container_create, { image = image, env = { A = 1 } })
  check("env values must be strings", err and err:find("env must map names to strings", 1, true), err)
  err = raises(docker.container_create, { image = image, publish = { { port = 80, hostport = 1 } } })
  check("nested unknown option raises", err and err:find("publish[1]: unknown option 'hostport'", 1, true), err)
  err = raises(docker.exec, "x", { cmd = {} })
  check("exec needs cmd", err and err:find("cmd must be a non-empty list", 1, true), err)
  err = raises(docker.network_list, { label = {} })
  check("network_list options checked", err and err:find("unknown option 'label'", 1, true), err)

  check("ping", docker.ping() == true)
  local v = docker.version()
  check("version", type(v) == "table" and v.api:match("^1%.4%d$") and v.os == "linux", v and v.api)
  docker.reset()
  check("ping after reset", docker.ping() == true)
  check("socket", type(docker.socket()) == "string")

  -- Networks.
  local net = name("net")
  local id, msg
  for _ = 1, 12 do
    local x = math.random(0, 255)
    id, msg = docker.network_create({
      name = net, subnet = ("10.231.%d.0/24"):format(x), gateway = ("10.231.%d.1"):format(x), labels = labels,
    })
    if id or not tostring(msg):find("overlap") then break end
  end
  check("network_create", type(id) == "string", msg)
  local again = docker.network_create({ name = net, labels = labels })
  check("network_create again is the same network", again == id, again)
  local none, code, status
  none, msg, code, status = docker.network_create({ name = net, labels = { ["io.bottle.test"] = "other" } })
  check("network_create conflict", none == nil and code == "CONFLICT" and status == 409
    and msg:find("^network create: .*already exists"), msg)
  local list = docker.network_list({ labels = labels })
  check("network_list by label", #list == 1 and list[1].name == net and list[1].id == id
    and list[1].labels["io.bottle.test"] == run_id and #list[1].subnets == 1, #list)
  local info = docker.network_inspect(net)
  check("network_inspect", info and info.Name == net and info.Labels["io.bottle.test"] == run_id)
  none, msg, code, status = docker.network_inspect(name("absent"))
  check("network_inspect missing", none == nil and code == "NOT_FOUND" and status == 404
    and msg:find("^network inspect: "), msg)

  -- A container with env, published ports and a second network.
  local secret = ("%08x%08x"):format(math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local cname = name("c")
  local cid
  cid, msg = docker.container_create({
    name = cname, image = image, labels = labels,
    cmd = { "sh", "-c", "echo to-out; echo to-err >&2; exec httpd -f -p 8080 -h /www" },
    env = { LUA_SECRET = secret },
    publish = { { port = 8080 }, { port = 9099, host_ip = "127.0.0.1", host_port = 0 } },
    networks = { { name = net, aliases = { "lua-alias" } } },
  })
  check("container_create", type(cid) == "string", msg)
  check("container_start", docker.container_start(cid) == true)
  local ports = docker.ports(cid)
  check("ports keyed by container port", ports and ports[8080] and ports[8080].host_ip == "127.0.0.1"
    and ports[8080].host_port > 0 and ports[9099] and ports[9099].host_port > 0
    and ports[8080].host_port ~= ports[9099].host_port)
  info = docker.container_inspect(cid)
  local has_env = false
  for _, e in ipairs(info.Config.Env) do has_env = has_env or e == "LUA_SECRET=" .. secret end
  check("env reached the container", has_env)
  check("second network joined", info.NetworkSettings.Networks[net] ~= nil)
  local found = false
  for _, c in ipairs(docker.container_list({ labels = labels })) do
    found = found or (c.id == cid and c.names[1] == cname and c.state == "running"
      and c.labels["io.bottle.test"] == run_id)
  end
  check("container_list", found)

  local r
  r, msg = docker.exec(cid, {
    cmd = { "sh", "-c", "cat; echo \"$X\" >&2; exit 5" }, stdin = "piped\n", env = { X = "from-env" },
  })
  check("exec", r and r.code == 5 and r.stdout == "piped\n" and r.stderr == "from-env\n",
    msg or (r and r.stdout))
  r = docker.exec(cid, { cmd = { "pwd" }, workdir = "/www", user = "65534" })
  check("exec workdir", r and r.stdout == "/www\n" and r.code == 0)
  none, msg, code, status = docker.exec(cid, { cmd = { "sleep", "5" }, timeout_ms = 300 })
  check("exec timeout", none == nil and code == "TIMEOUT" and status == 0
    and msg == "exec: timed out after 300 ms", msg)
  local out, errs
  for _ = 1, 50 do
    out, errs = docker.container_logs(cid)
    if out:find("to-out") and errs:find("to-err") then break end
    time.sleep_ms(100)
  end
  check("container_logs", out == "to-out\n" and errs == "to-err\n", out)
  out = docker.container_logs(cid, { tail = 0 })
  check("container_logs tail", out == "")

  -- A signal while blocked in a call raises an interrupt promptly.
  local t0 = time.now_ms()
  proc.run({ argv = { "sh", "-c", ("(sleep 0.5; kill -INT %d) >/dev/null 2>&1 &"):format(proc.getpid()) } })
  err = raises(docker.container_wait, cid, 0)
  local took = time.now_ms() - t0
  host.reset_signal()
  check("interrupted wait raises", err and err:find("interrupted by SIGINT", 1, true), err)
  check("interrupted promptly", took < 2500, took)
  check("usable after an interrupt", docker.ping() == true)

  check("container_stop", docker.container_stop(cid, 1) == true)
  check("container_wait", docker.container_wait(cid, 10000) == 137)
  check("container_remove", docker.container_remove(cid, { force = true, volumes = true }) == true)
  check("container_remove missing", docker.container_remove(cid) == true)
  none, msg, code, status = docker.container_inspect(cid)
  check("container_inspect missing",
    none == nil and code == "NOT_FOUND" and status == 404 and msg:find("^container inspect: No such container"), msg)

  none, msg = docker.container_create({ name = cname .. "-dup", image = image, labels = labels })
  check("create for conflict", type(none) == "string", msg)
  local dup
  dup, msg, code, status = docker.container_create({ name = cname .. "-dup", image = image, labels = labels })
  check("conflict is the engine's message", dup == nil and code == "CONFLICT" and status == 409
    and msg:find('^container create: Conflict%. The container name "/' .. cname:gsub("%-", "%%-")
      .. '%-dup" is already in use'), msg)
  docker.container_remove(cname .. "-dup", { force = true })

  check("network_remove", docker.network_remove(net) == true)
  check("network_remove missing", docker.network_remove(net) == true)

  check("image_exists", docker.image_exists(image) == true)
  check("image_exists missing", docker.image_exists("bottle-test-missing-" .. run_id .. ":x") == false)
  local img = docker.image_inspect(image)
  check("image_inspect", img and img.repo_tags[1] == image and img.id:find("^sha256:"))

  print(("lua binding: %d failed"):format(failed))
  return failed == 0 and 0 or 1
end

return M
