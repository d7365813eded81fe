/* l_util.h: helpers shared by the rt.* bindings. */
#ifndef BOTTLE_L_UTIL_H
#define BOTTLE_L_UTIL_H

#include <lua.h>

/* Raises when the options table at idx has a key not in `allowed`
 * (NULL-terminated), naming the key and the accepted set:
 *   proc.run: unknown option 'shell' (expected one of: argv, env, ...) */
void lutil_check_fields(lua_State *L, int idx, const char *fname, const char *const *allowed);

#endif
