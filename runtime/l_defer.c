/* l_defer.c: rt.defer, cleanup scopes.
 *
 *   local scope <close> = rt.defer.scope()
 *   scope:defer(fn, ...)      -- runs fn(...) when the scope closes
 *   scope:close()             -- true | nil, "cleanup failed: a; b"
 *   scope:failures()          -- entries that failed so far in closing
 *
 * Entries run newest first; every entry runs even when an earlier one
 * fails, and the failures are reported together. Closing twice is a no-op.
 * One function serves close, __close and __gc (Lua's io library does the
 * same for files). Cleanup runs with interrupts masked: a second ^C during
 * teardown does not cut it short. */
#include <string.h>

#include <lauxlib.h>

#include "bindings.h"
#include "host.h"
#include "l_util.h"
#include "log.h"

#define SCOPE_MT "rt.defer.scope"

struct scope {
  int closed;
  int n;        /* entries pushed */
  int failures; /* entries that raised while closing */
};

static int open_scopes;

static struct scope *check_scope(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, SCOPE_MT);
}

static int l_scope(lua_State *L) {
  struct scope *s = lua_newuserdatauv(L, sizeof *s, 1);
  s->closed = 0;
  s->n = 0;
  s->failures = 0;
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, SCOPE_MT);
  open_scopes++;
  return 1;
}

/* scope:defer(fn, ...) */
static int l_defer(lua_State *L) {
  struct scope *s = check_scope(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (s->closed) return luaL_error(L, "defer: scope already closed");
  int nargs = lua_gettop(L) - 1; /* fn + args */
  lua_getiuservalue(L, 1, 1);
  lua_createtable(L, nargs, 1);
  for (int i = 0; i < nargs; i++) {
    lua_pushvalue(L, 2 + i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, nargs);
  lua_setfield(L, -2, "n");
  lua_rawseti(L, -2, ++s->n);
  lua_pop(L, 1);
  return 0;
}

/* Runs every entry newest first. Leaves on the stack the joined error
 * messages (or nil) and returns the number of failures. */
static int run_entries(lua_State *L, int self) {
  struct scope *s = check_scope(L, self);
  int failures = 0;
  luaL_Buffer errs;
  if (s->closed) {
    lua_pushnil(L);
    return 0;
  }
  s->closed = 1;
  open_scopes--;
  host_mask_interrupts(1);
  lua_getiuservalue(L, self, 1);
  int list = lua_gettop(L);
  lua_newtable(L); /* messages */
  int msgs = lua_gettop(L);
  for (int i = s->n; i >= 1; i--) {
    lua_rawgeti(L, list, i);
    int entry = lua_gettop(L);
    lua_getfield(L, entry, "n");
    int nargs = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    for (int k = 1; k <= nargs; k++) lua_rawgeti(L, entry, k);
    if (lua_pcall(L, nargs - 1, 0, 0) != LUA_OK) {
      luaL_tolstring(L, -1, NULL);
      lua_rawseti(L, msgs, ++failures);
      s->failures = failures;
      lua_pop(L, 1); /* the error value */
    }
    lua_pop(L, 1); /* entry */
    lua_pushnil(L);
    lua_rawseti(L, list, i); /* drop references early */
  }
  s->n = 0;
  host_mask_interrupts(-1);
  if (failures == 0) {
    lua_settop(L, list - 1);
    lua_pushnil(L);
    return 0;
  }
  luaL_buffinit(L, &errs);
  for (int i = 1; i <= failures; i++) {
    if (i > 1) luaL_addstring(&errs, "; ");
    lua_rawgeti(L, msgs, i);
    luaL_addvalue(&errs);
  }
  luaL_pushresult(&errs);
  lua_replace(L, list);
  lua_settop(L, list);
  return failures;
}

static int l_close(lua_State *L) {
  if (run_entries(L, 1) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushfstring(L, "cleanup failed: %s", lua_tostring(L, -1));
  return lutil_fail(L, lua_tostring(L, -1), "ECLEANUP");
}

/* __close(scope, err): an error while closing is raised, combined with the
 * error that is unwinding (if any) so neither is lost. */
static int l_close_meta(lua_State *L) {
  int has_err = !lua_isnoneornil(L, 2);
  if (run_entries(L, 1) == 0) return 0;
  if (has_err) {
    const char *orig = luaL_tolstring(L, 2, NULL);
    return luaL_error(L, "%s (cleanup also failed: %s)", orig, lua_tostring(L, -2));
  }
  return luaL_error(L, "cleanup failed: %s", lua_tostring(L, -1));
}

static int l_gc(lua_State *L) {
  if (run_entries(L, 1) > 0) log_printf(LOG_WARN, "cleanup failed: %s", lua_tostring(L, -1));
  return 0;
}

static int l_size(lua_State *L) {
  struct scope *s = check_scope(L, 1);
  lua_pushinteger(L, s->closed ? 0 : s->n);
  return 1;
}

/* failures() lets a later entry (the state dir's removal) see that an
 * earlier one left a resource behind, and keep what names it. */
static int l_failures(lua_State *L) {
  lua_pushinteger(L, check_scope(L, 1)->failures);
  return 1;
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, check_scope(L, 1)->closed);
  return 1;
}

static int l_tostring(lua_State *L) {
  struct scope *s = check_scope(L, 1);
  lua_pushfstring(L, "defer scope (%s, %d entries)", s->closed ? "closed" : "open", s->n);
  return 1;
}

static int l_open_count(lua_State *L) {
  lua_pushinteger(L, open_scopes);
  return 1;
}

static const luaL_Reg scope_methods[] = {
    {"defer", l_defer},
    {"close", l_close},
    {"size", l_size},
    {"is_closed", l_is_closed},
    {"failures", l_failures},
    {NULL, NULL},
};

static const luaL_Reg scope_meta[] = {
    {"__close", l_close_meta},
    {"__gc", l_gc},
    {"__tostring", l_tostring},
    {NULL, NULL},
};

static const luaL_Reg defer_funcs[] = {
    {"scope", l_scope},
    {"open_count", l_open_count},
    {NULL, NULL},
};

int luaopen_rt_defer(lua_State *L) {
  luaL_newmetatable(L, SCOPE_MT);
  luaL_setfuncs(L, scope_meta, 0);
  luaL_newlib(L, scope_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, defer_funcs);
  return 1;
}
