/* l_proc.c: rt.proc, the Lua binding of proc.c and the secret registry.
 *
 *   rt.proc.run{argv=, env=, stdin=, timeout_ms=, interactive=, max_output=}
 *     -> {code=, stdout=, stderr=, truncated=} | nil, message, code[, partial]
 *   rt.proc.secret(value)      register a value to redact everywhere
 *   rt.proc.redact(s)          s with every registered value as ***
 *   rt.proc.has_secret(s)      true when s contains a registered value
 *   rt.proc.environ()          our environment as a table
 * See docs/api.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>

#include "bindings.h"
#include "l_util.h"
#include "host.h"
#include "log.h"
#include "pidinfo.h"
#include "proc.h"
#include "secret.h"
#include "bgproc.h"

extern char **environ;

/* name, value pairs -> a "NAME=value" array (anchored in a userdata and a
 * table of strings left on the stack). */
static const char **env_list(lua_State *L, const char **pairs) {
  int n = 0;
  while (pairs[2 * n]) n++;
  const char **v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  lua_createtable(L, n, 0);
  int holder = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    lua_pushfstring(L, "%s=%s", pairs[2 * i], pairs[2 * i + 1]);
    v[i] = lua_tostring(L, -1);
    lua_rawseti(L, holder, i + 1);
  }
  v[n] = NULL;
  return v;
}

/* Shell-style rendering of argv for traces and messages (redacted later). */
static void push_command_line(lua_State *L, const char *const *argv) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; argv[i]; i++) {
    if (i) luaL_addchar(&b, ' ');
    const char *a = argv[i];
    int plain = *a != '\0';
    for (const char *p = a; *p; p++)
      if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@%+", *p)) plain = 0;
    if (plain) {
      luaL_addstring(&b, a);
      continue;
    }
    luaL_addchar(&b, '\'');
    for (const char *p = a; *p; p++) {
      if (*p == '\'') luaL_addstring(&b, "'\\''");
      else luaL_addchar(&b, *p);
    }
    luaL_addchar(&b, '\'');
  }
  luaL_pushresult(&b);
}

/* Pushes s with registered secrets replaced. */
static void push_redacted(lua_State *L, const char *s, size_t len) {
  size_t rlen;
  char *r = secret_redact(s, len, &rlen);
  if (!r) luaL_error(L, "out of memory");
  lua_pushlstring(L, r, rlen);
  free(r);
}

static void push_result(lua_State *L, const struct proc_result *res) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, res->code);
  lua_setfield(L, -2, "code");
  lua_pushlstring(L, res->out, res->out_len);
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, res->err, res->err_len);
  lua_setfield(L, -2, "stderr");
  lua_pushboolean(L, res->truncated);
  lua_setfield(L, -2, "truncated");
}

static const char *const run_fields[] = {"argv", "env", "stdin", "timeout_ms", "interactive",
                                         "max_output", NULL};

static int l_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lutil_check_fields(L, 1, "proc.run", run_fields);
  struct proc_spec spec;
  memset(&spec, 0, sizeof spec);

  spec.argv = lutil_opt_list(L, 1, "proc.run", "argv");
  if (!spec.argv || !spec.argv[0]) luaL_error(L, "proc.run: argv must be a non-empty list of strings");
  const char **env = lutil_opt_map(L, 1, "proc.run", "env");
  if (env) spec.envp = env_list(L, env);
  int t = lua_getfield(L, 1, "stdin");
  if (t == LUA_TSTRING) spec.input = lua_tolstring(L, -1, &spec.input_len);
  else if (t != LUA_TNIL) luaL_error(L, "proc.run: stdin must be a string");
  lua_Integer timeout_ms = lutil_opt_int(L, 1, "proc.run", "timeout_ms", 0);
  if (timeout_ms > 0x7fffffff) luaL_error(L, "proc.run: timeout_ms out of range");
  spec.timeout_ms = timeout_ms < 0 ? 0 : (int)timeout_ms; /* <= 0: no limit */
  spec.interactive = lutil_opt_bool(L, 1, "proc.run", "interactive", 0);
  lua_Integer max_output = lutil_opt_int(L, 1, "proc.run", "max_output", 0);
  if (max_output < 0) luaL_error(L, "proc.run: max_output out of range");
  spec.max_output = (size_t)max_output;
  spec.pending_signal = host_pending_signal;

  push_command_line(L, spec.argv);
  int cmd_idx = lua_gettop(L);
  if (log_get_level() >= LOG_TRACE) {
    size_t len;
    const char *cmd = lua_tolstring(L, cmd_idx, &len);
    log_write(LOG_TRACE, cmd, len);
  }

  struct proc_result res;
  proc_run(&spec, &res);
  switch (res.status) {
  case PROC_EXITED:
    push_result(L, &res);
    proc_result_free(&res);
    return 1;
  case PROC_NOT_FOUND:
    proc_result_free(&res);
    lua_pushnil(L);
    if (res.error == EACCES) {
      lua_pushfstring(L, "%s: permission denied", spec.argv[0]);
      lua_pushliteral(L, "EACCES");
    } else {
      lua_pushfstring(L, "%s: not found", spec.argv[0]);
      lua_pushliteral(L, "ENOENT");
    }
    return 3;
  case PROC_SPAWN_FAILED:
    proc_result_free(&res);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: cannot start: %s", spec.argv[0], strerror(res.error));
    lua_pushliteral(L, "ESPAWN");
    return 3;
  case PROC_TIMEOUT: {
    lua_pushnil(L);
    size_t len;
    const char *cmd = lua_tolstring(L, cmd_idx, &len);
    push_redacted(L, cmd, len);
    lua_pushfstring(L, "%s: timed out after %d ms", lua_tostring(L, -1), spec.timeout_ms);
    lua_remove(L, -2);
    lua_pushliteral(L, "TIMEOUT");
    push_result(L, &res);
    proc_result_free(&res);
    return 4;
  }
  case PROC_INTERRUPTED:
    proc_result_free(&res);
    return host_raise_interrupt(L);
  }
  return 0;
}

static int l_secret(lua_State *L) {
  size_t len;
  const char *v = luaL_checklstring(L, 1, &len);
  if (secret_add(v, len) < 0) return luaL_error(L, "out of memory");
  return 0;
}

static int l_redact(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  push_redacted(L, s, len);
  return 1;
}

static int l_has_secret(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_pushboolean(L, secret_contains(s, len));
  return 1;
}

static int l_environ(lua_State *L) {
  lua_newtable(L);
  for (char **e = environ; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || eq == *e) continue;
    lua_pushlstring(L, *e, (size_t)(eq - *e));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  return 1;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

/* children() -> true when this process has a child not yet reaped. */
static int l_children(lua_State *L) {
  int st;
  pid_t r = waitpid(-1, &st, WNOHANG);
  lua_pushboolean(L, r >= 0 || errno != ECHILD);
  return 1;
}

/* fd_count() -> number of open descriptors (leak checks in tests). */
static int l_fd_count(lua_State *L) {
  struct rlimit rl;
  long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 1024;
  if (max > 65536) max = 65536;
  int n = 0;
  for (int fd = 0; fd < max; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  lua_pushinteger(L, n);
  return 1;
}

/* alive(pid) -> true when a process with that pid exists. */
static int l_alive(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  lua_pushboolean(L, pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM));
  return 1;
}

/* is_bottle(pid) -> true when pid is a live bottle process; false when it
 * has exited or the pid now runs another program (pidinfo.h); nil, message,
 * "ENOSYS" when the pid is alive but this system cannot say what it runs. */
static int l_is_bottle(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  enum pid_state st = pid > 0 && pid <= INT_MAX ? pid_runs_bottle((pid_t)pid) : PID_GONE;
  if (st == PID_UNKNOWN) {
    lua_pushfstring(L, "cannot tell which program pid %I runs on this system", pid);
    return lutil_fail(L, lua_tostring(L, -1), "ENOSYS");
  }
  lua_pushboolean(L, st == PID_RUNS);
  return 1;
}

static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* ---- background programs: rt.proc.spawn ---------------------------------- */

#define BG_META "rt.proc.bg"
enum { BG_GRACE_MS = 2000 };

struct bg {
  pid_t pid;
  int done, code;
};

static struct bg *check_bg(lua_State *L) { return luaL_checkudata(L, 1, BG_META); }

/* spawn{argv=, env=, log=} -> handle | nil, message, code */
static const char *const spawn_fields[] = {"argv", "env", "log", NULL};
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lutil_check_fields(L, 1, "proc.spawn", spawn_fields);
  struct proc_bg_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.argv = lutil_opt_list(L, 1, "proc.spawn", "argv");
  if (!spec.argv || !spec.argv[0]) luaL_error(L, "proc.spawn: argv must be a non-empty list of strings");
  const char **env = lutil_opt_map(L, 1, "proc.spawn", "env");
  if (env) spec.envp = env_list(L, env);
  spec.log_path = lutil_opt_str(L, 1, "proc.spawn", "log");
  push_command_line(L, spec.argv);
  if (log_get_level() >= LOG_TRACE) {
    size_t len;
    const char *cmd = lua_tolstring(L, -1, &len);
    log_write(LOG_TRACE, cmd, len);
  }
  struct bg *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  b->done = 1; /* nothing to stop until the start succeeded */
  luaL_setmetatable(L, BG_META);
  pid_t pid;
  if (proc_bg_start(&spec, &pid) < 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", spec.argv[0], e == ENOENT ? "not found" : strerror(e));
    lua_pushstring(L, e == ENOENT ? "ENOENT" : e == EACCES ? "EACCES" : "ESPAWN");
    return 3;
  }
  b->pid = pid;
  b->done = 0;
  return 1;
}

/* handle:wait([timeout_ms = -1]) -> code | nil while it runs */
static int l_bg_wait(lua_State *L) {
  struct bg *b = check_bg(L);
  if (!b->done && proc_bg_wait(b->pid, (int)luaL_optinteger(L, 2, -1), &b->code)) b->done = 1;
  if (!b->done) return 0;
  lua_pushinteger(L, b->code);
  return 1;
}

/* handle:stop([grace_ms]) -> code; safe to call twice (also __close, __gc) */
static int l_bg_stop(lua_State *L) {
  struct bg *b = check_bg(L);
  if (!b->done) {
    b->code = proc_bg_stop(b->pid, (int)luaL_optinteger(L, 2, BG_GRACE_MS));
    b->done = 1;
  }
  lua_pushinteger(L, b->code);
  return 1;
}

static int l_bg_pid(lua_State *L) {
  lua_pushinteger(L, check_bg(L)->pid);
  return 1;
}

static int l_bg_gc(lua_State *L) {
  struct bg *b = check_bg(L);
  if (!b->done) {
    proc_bg_stop(b->pid, BG_GRACE_MS);
    b->done = 1;
  }
  return 0;
}

static const luaL_Reg bg_methods[] = {
    {"wait", l_bg_wait}, {"stop", l_bg_stop}, {"pid", l_bg_pid}, {NULL, NULL},
};

/* self_exe() -> path of this executable | nil, message, code */
static int l_self_exe(lua_State *L) {
  char path[4096];
  if (proc_self_exe(path, sizeof path) < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "cannot find bottle's own executable on this platform");
    lua_pushliteral(L, "ENOSYS");
    return 3;
  }
  lua_pushstring(L, path);
  return 1;
}

/* which(prog [, env]) -> path | nil, message, code (PATH from env when given) */
static int l_which(lua_State *L) {
  const char *prog = luaL_checkstring(L, 1);
  const char *const *envp = NULL;
  if (lua_istable(L, 2)) {
    lua_settop(L, 2);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "env");
    const char **pairs = lutil_opt_map(L, 3, "proc.which", "env");
    envp = env_list(L, pairs);
  }
  char path[4096];
  if (proc_resolve(prog, envp, path, sizeof path) < 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", prog, e == EACCES ? "permission denied" : "not found");
    lua_pushstring(L, e == EACCES ? "EACCES" : "ENOENT");
    return 3;
  }
  lua_pushstring(L, path);
  return 1;
}

/* ids() -> uid, gid of this process */
static int l_ids(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getuid());
  lua_pushinteger(L, (lua_Integer)getgid());
  return 2;
}

static const luaL_Reg proc_funcs[] = {
    {"spawn", l_spawn},
    {"self_exe", l_self_exe},
    {"which", l_which},
    {"ids", l_ids},
    {"run", l_run},
    {"secret", l_secret},
    {"redact", l_redact},
    {"has_secret", l_has_secret},
    {"environ", l_environ},
    {"getpid", l_getpid},
    {"children", l_children},
    {"fd_count", l_fd_count},
    {"isatty", l_isatty},
    {"alive", l_alive},
    {"is_bottle", l_is_bottle},
    {NULL, NULL},
};

int luaopen_rt_proc(lua_State *L) {
  if (luaL_newmetatable(L, BG_META)) {
    luaL_newlib(L, bg_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_bg_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_bg_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  luaL_newlib(L, proc_funcs);
  return 1;
}
