/* l_yaml.h: what the two halves of rt.yaml share: l_yaml.c (the loader,
 * the module table, rt.yaml.null) and l_yaml_dump.c (the emitter). */
#ifndef BOTTLE_L_YAML_H
#define BOTTLE_L_YAML_H

#include <stddef.h>

#include <lua.h>

/* Nesting deeper than this is refused, loading and dumping. */
#define LYAML_MAX_DEPTH 256

static inline int lyaml_is_digit(int c) { return c >= '0' && c <= '9'; }

/* What a plain scalar's text means under the YAML 1.2 core schema. */
enum lyaml_kind { K_STR, K_NULL, K_BOOL, K_INT, K_HEXOCT, K_FLOAT, K_INF, K_NAN };
enum lyaml_kind lyaml_resolve_plain(const char *s, size_t len);
/* 1 when s[0..len) is one of the NULL-terminated words. */
int lyaml_is_one_of(const char *s, size_t len, const char *const *words);

/* rt.yaml.null, the sentinel for YAML null. */
void lyaml_push_null(lua_State *L);
int lyaml_is_null(lua_State *L, int idx);

/* rt.yaml.dump and rt.yaml.ordered. */
int lyaml_dump(lua_State *L);
int lyaml_ordered(lua_State *L);
/* Registers the dumper's metatable (its __gc/__close free the emitter);
 * leaves it on the stack. */
void lyaml_open_dumper(lua_State *L);

#endif
