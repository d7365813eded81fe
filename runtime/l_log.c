/* l_log.c: rt.log, the Lua face of log.c. Everything written is redacted.
 *
 *   rt.log.write(level, msg [, plain])  level: "error" | "warn" | "info" | "trace";
 *                               plain: no "error: "-style prefix
 *   rt.log.set_level(level) / rt.log.level()
 *   rt.log.set_color(bool) / rt.log.color() / rt.log.is_tty()
 *   rt.log.step_begin(text) / rt.log.step_end([final_line]) */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "bindings.h"
#include "log.h"

static const char *const level_names[] = {"error", "warn", "info", "trace", NULL};

static int l_write(lua_State *L) {
  int level = luaL_checkoption(L, 1, NULL, level_names);
  int plain = lua_toboolean(L, 3);
  size_t len;
  const char *msg = luaL_tolstring(L, 2, &len);
  if (plain) log_write_plain((enum log_level)level, msg, len);
  else log_write((enum log_level)level, msg, len);
  return 0;
}

static int l_set_level(lua_State *L) {
  log_set_level((enum log_level)luaL_checkoption(L, 1, NULL, level_names));
  return 0;
}

static int l_level(lua_State *L) {
  lua_pushstring(L, level_names[log_get_level()]);
  return 1;
}

static int l_set_color(lua_State *L) {
  log_set_color(lua_toboolean(L, 1));
  return 0;
}

static int l_color(lua_State *L) {
  lua_pushboolean(L, log_color());
  return 1;
}

static int l_is_tty(lua_State *L) {
  lua_pushboolean(L, log_is_tty());
  return 1;
}

static int l_step_begin(lua_State *L) {
  log_step_begin(luaL_checkstring(L, 1));
  return 0;
}

static int l_step_end(lua_State *L) {
  log_step_end(luaL_optstring(L, 1, NULL));
  return 0;
}

/* capture(true) starts capturing; capture(false) stops and returns the text. */
static int l_capture(lua_State *L) {
  if (lua_toboolean(L, 1)) {
    log_capture_begin();
    return 0;
  }
  size_t len;
  char *text = log_capture_end(&len);
  lua_pushlstring(L, text ? text : "", text ? len : 0);
  free(text);
  return 1;
}

static const luaL_Reg log_funcs[] = {
    {"capture", l_capture},
    {"write", l_write},
    {"set_level", l_set_level},
    {"level", l_level},
    {"set_color", l_set_color},
    {"color", l_color},
    {"is_tty", l_is_tty},
    {"step_begin", l_step_begin},
    {"step_end", l_step_end},
    {NULL, NULL},
};

int luaopen_rt_log(lua_State *L) {
  luaL_newlib(L, log_funcs);
  return 1;
}
