/* l_util.c: see l_util.h. */
#include "l_util.h"

#include <string.h>

#include <lauxlib.h>

void lutil_check_fields(lua_State *L, int idx, const char *fname, const char *const *allowed) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int ok = 0;
    for (const char *const *a = allowed; key && *a; a++)
      if (strcmp(*a, key) == 0) ok = 1;
    if (ok) continue;
    const char *shown = key ? key : luaL_typename(L, -1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *const *a = allowed; *a; a++) {
      if (a != allowed) luaL_addstring(&b, ", ");
      luaL_addstring(&b, *a);
    }
    luaL_pushresult(&b);
    luaL_error(L, "%s: unknown option '%s' (expected one of: %s)", fname, shown, lua_tostring(L, -1));
  }
}

void lutil_opt_table(lua_State *L, int idx, const char *fname, const char *const *allowed) {
  if (lua_isnoneornil(L, idx)) {
    if (lua_gettop(L) < idx) lua_settop(L, idx);
    lua_newtable(L);
    lua_replace(L, idx);
    return;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  lutil_check_fields(L, idx, fname, allowed);
}

const char *lutil_opt_str(lua_State *L, int idx, const char *fname, const char *key) {
  int t = lua_getfield(L, idx, key);
  const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (t != LUA_TSTRING && t != LUA_TNIL) luaL_error(L, "%s: %s must be a string", fname, key);
  lua_pop(L, 1);
  return s;
}

const char *lutil_req_str(lua_State *L, int idx, const char *fname, const char *key) {
  const char *s = lutil_opt_str(L, idx, fname, key);
  if (!s) luaL_error(L, "%s: %s must be a string", fname, key);
  if (!*s) luaL_error(L, "%s: %s must not be empty", fname, key);
  return s;
}

int lutil_opt_bool(lua_State *L, int idx, const char *fname, const char *key, int def) {
  int t = lua_getfield(L, idx, key);
  int v = t == LUA_TNIL ? def : lua_toboolean(L, -1);
  if (t != LUA_TBOOLEAN && t != LUA_TNIL) luaL_error(L, "%s: %s must be a boolean", fname, key);
  lua_pop(L, 1);
  return v;
}

lua_Integer lutil_opt_int(lua_State *L, int idx, const char *fname, const char *key, lua_Integer def) {
  int t = lua_getfield(L, idx, key);
  int isnum = 0;
  lua_Integer v = t == LUA_TNUMBER ? lua_tointegerx(L, -1, &isnum) : 0;
  if (!isnum && t != LUA_TNIL) luaL_error(L, "%s: %s must be an integer", fname, key);
  lua_pop(L, 1);
  return isnum ? v : def;
}

const char **lutil_opt_list(lua_State *L, int idx, const char *fname, const char *key) {
  idx = lua_absindex(L, idx);
  int t = lua_getfield(L, idx, key);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (t != LUA_TTABLE) luaL_error(L, "%s: %s must be a list of strings", fname, key);
  lua_Integer n = luaL_len(L, -1);
  if (n < 0 || n > 1000000) luaL_error(L, "%s: %s has a bad length", fname, key);
  luaL_checkstack(L, 4, "too many options");
  const char **v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -2, i) != LUA_TSTRING) luaL_error(L, "%s: %s[%d] must be a string", fname, key, (int)i);
    v[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  v[n] = NULL;
  lua_remove(L, -2); /* the list stays referenced by the options table */
  return v;
}

const char **lutil_opt_map(lua_State *L, int idx, const char *fname, const char *key) {
  idx = lua_absindex(L, idx);
  int t = lua_getfield(L, idx, key);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (t != LUA_TTABLE) luaL_error(L, "%s: %s must be a table of name = string", fname, key);
  int tbl = lua_gettop(L);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    lua_pop(L, 1);
    n++;
  }
  luaL_checkstack(L, 4, "too many options");
  const char **v = lua_newuserdatauv(L, sizeof(char *) * (2 * n + 1), 0);
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: %s must map names to strings (bad entry '%s')", fname, key,
                 lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2));
    const char *name = lua_tostring(L, -2);
    if (!*name || strchr(name, '=')) luaL_error(L, "%s: bad name '%s' in %s", fname, name, key);
    v[i++] = name;
    v[i++] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  v[i] = NULL;
  lua_remove(L, tbl); /* the map stays referenced by the options table */
  return v;
}

int lutil_fail(lua_State *L, const char *message, const char *code) {
  lua_pushnil(L);
  lua_pushstring(L, message);
  lua_pushstring(L, code);
  return 3;
}
