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
