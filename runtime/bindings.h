/* bindings.h: the rt.* modules the host preloads. Each is defined at the
 * bottom of its runtime/l_<area>.c. */
#ifndef BOTTLE_BINDINGS_H
#define BOTTLE_BINDINGS_H

#include <lua.h>

int luaopen_rt_host(lua_State *L);
int luaopen_rt_proc(lua_State *L);
int luaopen_rt_defer(lua_State *L);
int luaopen_rt_fs(lua_State *L);
int luaopen_rt_log(lua_State *L);
int luaopen_rt_time(lua_State *L);
int luaopen_rt_term(lua_State *L);
int luaopen_rt_ca(lua_State *L);
int luaopen_rt_net(lua_State *L);
int luaopen_rt_yaml(lua_State *L);
int luaopen_rt_docker(lua_State *L);
/* lua-cjson's API over libcJSON, preloaded as "cjson" (l_cjson.c). */
int luaopen_cjson(lua_State *L);

#endif
