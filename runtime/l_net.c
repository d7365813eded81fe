/* l_net.c: rt.net, the Lua binding of net.c.
 *
 *   rt.net.wait_tcp(host, port, timeout_ms [, {hold_ms=100}])
 *     -> elapsed_ms | nil, message, "TIMEOUT"|"ERESOLVE"; raises on a signal
 *   rt.net.free_port([host="127.0.0.1"]) -> port | nil, message, code
 * See docs/api.md. */
#include <string.h>

#include <lauxlib.h>

#include "bindings.h"
#include "host.h"
#include "l_util.h"
#include "net.h"

static const char *const wait_fields[] = {"hold_ms", NULL};

static int l_wait_tcp(lua_State *L) {
  struct net_wait_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  if (port < 1 || port > 65535) return luaL_argerror(L, 2, "port must be 1..65535");
  lua_Integer timeout = luaL_checkinteger(L, 3);
  if (timeout < 0 || timeout > 24 * 3600 * 1000) return luaL_argerror(L, 3, "timeout_ms out of range");
  spec.port = (int)port;
  spec.timeout_ms = (int)timeout;
  lutil_opt_table(L, 4, "net.wait_tcp", wait_fields);
  lua_Integer hold = lutil_opt_int(L, 4, "net.wait_tcp", "hold_ms", NET_DEFAULT_HOLD_MS);
  if (hold < 0 || hold > 60000) return luaL_error(L, "net.wait_tcp: hold_ms must be between 0 and 60000");
  spec.hold_ms = (int)hold;
  spec.pending_signal = host_pending_signal;

  struct net_wait_result res;
  if (net_wait_tcp(&spec, &res) == 0) {
    lua_pushinteger(L, res.elapsed_ms);
    return 1;
  }
  if (res.status == NET_INTERRUPTED) return host_raise_interrupt(L);
  int v6 = strchr(spec.host, ':') != NULL;
  lua_pushnil(L);
  if (res.status == NET_RESOLVE_FAILED) {
    lua_pushstring(L, res.error);
    lua_pushliteral(L, "ERESOLVE");
  } else {
    lua_pushfstring(L, "%s%s%s:%d did not accept connections within %d ms (%s)", v6 ? "[" : "", spec.host,
                    v6 ? "]" : "", spec.port, spec.timeout_ms, res.error);
    lua_pushliteral(L, "TIMEOUT");
  }
  return 3;
}

/* wait_unix(path, timeout_ms) -> elapsed_ms | nil, message, code */
static int l_wait_unix(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer timeout = luaL_checkinteger(L, 2);
  if (timeout < 0 || timeout > 24 * 3600 * 1000) return luaL_argerror(L, 2, "timeout_ms out of range");
  struct net_wait_result res;
  if (net_wait_unix(path, (int)timeout, host_pending_signal, &res) == 0) {
    lua_pushinteger(L, res.elapsed_ms);
    return 1;
  }
  if (res.status == NET_INTERRUPTED) return host_raise_interrupt(L);
  lua_pushnil(L);
  if (res.status == NET_RESOLVE_FAILED) {
    lua_pushstring(L, res.error);
    lua_pushliteral(L, "ENAMETOOLONG");
  } else {
    lua_pushfstring(L, "%s did not accept connections within %d ms (%s)", path, (int)timeout, res.error);
    lua_pushliteral(L, "TIMEOUT");
  }
  return 3;
}

static int l_free_port(lua_State *L) {
  const char *host = luaL_optstring(L, 1, "127.0.0.1");
  char err[256];
  const char *code = "EIO";
  int port = net_free_port(host, err, sizeof err, &code);
  if (port < 0) return lutil_fail(L, err, code);
  lua_pushinteger(L, port);
  return 1;
}

static const luaL_Reg net_funcs[] = {
    {"wait_tcp", l_wait_tcp},
    {"wait_unix", l_wait_unix},
    {"free_port", l_free_port},
    {NULL, NULL},
};

int luaopen_rt_net(lua_State *L) {
  luaL_newlib(L, net_funcs);
  return 1;
}
