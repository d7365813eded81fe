/* l_util.h: helpers shared by the rt.* bindings: option tables and the
 * failure return.
 *
 * The option getters read field `key` of the table at `idx` and raise on a
 * wrong type, naming the function and the key ("docker.exec: cmd must be a
 * list of strings"); an absent (nil) field gives the default. Strings stay
 * owned by the options table, which the caller keeps on the stack for the
 * whole call; arrays of pointers live in a userdata the getter leaves on
 * the top of the stack (so it too lives as long as the call). */
#ifndef BOTTLE_L_UTIL_H
#define BOTTLE_L_UTIL_H

#include <lua.h>

/* Raises when the options table at idx has a key not in `allowed`
 * (NULL-terminated), naming the key and the accepted set:
 *   proc.run: unknown option 'shell' (expected one of: argv, env, ...) */
void lutil_check_fields(lua_State *L, int idx, const char *fname, const char *const *allowed);

/* An optional options table at `idx`: checked with lutil_check_fields, or
 * an empty table put there when the argument is none or nil. */
void lutil_opt_table(lua_State *L, int idx, const char *fname, const char *const *allowed);

/* A string field, or NULL when absent. */
const char *lutil_opt_str(lua_State *L, int idx, const char *fname, const char *key);
/* A required, non-empty string field. */
const char *lutil_req_str(lua_State *L, int idx, const char *fname, const char *key);
/* A boolean field (true/false only), or def. */
int lutil_opt_bool(lua_State *L, int idx, const char *fname, const char *key, int def);
/* An integral number field, or def. */
lua_Integer lutil_opt_int(lua_State *L, int idx, const char *fname, const char *key, lua_Integer def);
/* A list of strings as a NULL-terminated array (anchored on the stack), or
 * NULL when absent. */
const char **lutil_opt_list(lua_State *L, int idx, const char *fname, const char *key);

/* A map of names to strings ({NAME = "value"}) as a flat NULL-terminated
 * array name, value, name, value, ... (anchored on the stack), or NULL when
 * absent. Names must be non-empty and without '='. Values are never shown
 * in a message: env values may be secrets. */
const char **lutil_opt_map(lua_State *L, int idx, const char *fname, const char *key);

/* The expected-failure return every rt.* binding uses: pushes nil,
 * message, code and returns 3. */
int lutil_fail(lua_State *L, const char *message, const char *code);

#endif
