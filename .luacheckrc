-- luacheck configuration (make lint).
std = "lua54"
max_line_length = 120
-- Lua tests get test(); scenario files get scenario() from the runners.
files["tests/lua"] = { read_globals = { "test" } }
files["tests/scenarios"] = { read_globals = { "scenario" } }
files["tests/c/docker-lua"] = { read_globals = { "test" } }
-- Step functions keep one signature (ctx, plan, ...) even when unused.
unused_args = false
