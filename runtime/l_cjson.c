/* l_cjson.c: `require "cjson"`, the part of lua-cjson's API bottle and its
 * recipes use, over libcJSON (which the Docker transport links anyway).
 *
 * It is the only `cjson` bottle has, on every platform: lua-cjson has no
 * Homebrew formula, and one implementation everywhere means the suite run on
 * Linux tests exactly what a Mac runs (see vendor/README.md).
 *
 * Compatible with lua-cjson 2.1.0's defaults where bottle can tell:
 *   encode(v)  one argument; objects in table order; "/" escaped as "\/";
 *              control bytes and DEL as \u00XX, other bytes as they are;
 *              floats with 14 significant digits; NaN and infinities, cycles
 *              (nesting beyond 1000), excessively sparse arrays (more than
 *              half holes past index 10), keys that are neither strings nor
 *              numbers and values of other types raise "Cannot serialise ...".
 *              An empty table is {} unless its metatable has __json_array
 *              (bottle.json's marker, also cjson.array_mt).
 *   decode(s)  one string argument; JSON null is cjson.null (a NULL light
 *              userdata); a later duplicate key wins; a failure raises a
 *              message ending "at character N" (1-based).
 *   null, _NAME, _VERSION.
 * Where it deliberately differs: integers encode exactly (lua-cjson rounds
 * them to 14 digits) and a number whose value is a whole number a double
 * holds exactly (|n| < 2^53) decodes as a Lua integer (lua-cjson: always a
 * float; they compare equal either way); cJSON refuses NaN, Infinity and hex
 * numbers, which lua-cjson accepts by default; and a string holding \u0000
 * is refused, because cJSON's strings end at the first NUL and a silently
 * shortened string is worse than an error. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <lauxlib.h>
#include <lua.h>

#include "bindings.h"

#define MAX_DEPTH 1000
#define ENC_MT "cjson.encoder"
#define DEC_MT "cjson.tree"

/* ---- encode ------------------------------------------------------------ */

/* The output lives in a userdata so that an error raised half way (a bad
 * value deep inside) leaves it to the collector instead of leaking it. */
struct enc {
  char *p;
  size_t len, cap;
};

static int enc_gc(lua_State *L) {
  struct enc *e = luaL_checkudata(L, 1, ENC_MT);
  free(e->p);
  e->p = NULL;
  e->len = e->cap = 0;
  return 0;
}

static void add(lua_State *L, struct enc *e, const char *s, size_t n) {
  if (n > e->cap - e->len) {
    size_t cap = e->cap ? e->cap : 256;
    while (cap - e->len < n) {
      if (cap > SIZE_MAX / 2) luaL_error(L, "not enough memory");
      cap *= 2;
    }
    char *p = realloc(e->p, cap);
    if (!p) luaL_error(L, "not enough memory");
    e->p = p;
    e->cap = cap;
  }
  memcpy(e->p + e->len, s, n);
  e->len += n;
}

static void add_string(lua_State *L, struct enc *e, int idx) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  add(L, e, "\"", 1);
  size_t run = 0; /* bytes copied as they are, flushed in one add */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char hex[8];
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '/': esc = "\\/"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    default:
      if (c < 0x20 || c == 0x7f) {
        snprintf(hex, sizeof hex, "\\u%04x", c);
        esc = hex;
      }
    }
    if (!esc) {
      run++;
      continue;
    }
    add(L, e, s + i - run, run);
    run = 0;
    add(L, e, esc, strlen(esc));
  }
  add(L, e, s + n - run, run);
  add(L, e, "\"", 1);
}

static void add_number(lua_State *L, struct enc *e, int idx) {
  char num[64];
  int n;
  if (lua_isinteger(L, idx)) {
    n = snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
  } else {
    double d = (double)lua_tonumber(L, idx);
    if (isnan(d) || isinf(d)) luaL_error(L, "Cannot serialise number: must not be NaN or Inf");
    n = snprintf(num, sizeof num, "%.14g", d);
  }
  add(L, e, num, (size_t)n);
}

/* lua-cjson's test: every key a whole number >= 1 makes an array as long as
 * the largest key, unless it is excessively sparse. -1: an object. */
static lua_Integer array_length(lua_State *L, int idx) {
  lua_Integer max = 0, items = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    lua_Integer k;
    if (lua_type(L, -1) != LUA_TNUMBER) goto object;
    if (lua_isinteger(L, -1)) {
      k = lua_tointeger(L, -1);
    } else {
      double d = (double)lua_tonumber(L, -1);
      if (floor(d) != d || !lua_numbertointeger(d, &k)) goto object;
    }
    if (k < 1) goto object;
    if (k > max) max = k;
    items++;
  }
  if (max > 10 && max > items * 2) luaL_error(L, "Cannot serialise table: excessively sparse array");
  return max;
object:
  lua_pop(L, 1);
  return -1;
}

static int marked_array(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  lua_getfield(L, -1, "__json_array");
  int yes = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return yes;
}

static void encode_value(lua_State *L, struct enc *e, int idx, int depth);

static void encode_table(lua_State *L, struct enc *e, int idx, int depth) {
  if (depth > MAX_DEPTH) luaL_error(L, "Cannot serialise, excessive nesting (%d)", depth);
  luaL_checkstack(L, 4, "JSON nesting");
  lua_Integer len = array_length(L, idx);
  if (len > 0 || (len == 0 && marked_array(L, idx))) {
    add(L, e, "[", 1);
    for (lua_Integer i = 1; i <= len; i++) {
      if (i > 1) add(L, e, ",", 1);
      lua_rawgeti(L, idx, i);
      encode_value(L, e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    add(L, e, "]", 1);
    return;
  }
  add(L, e, "{", 1);
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (!first) add(L, e, ",", 1);
    first = 0;
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING) {
      add_string(L, e, -2);
    } else if (kt == LUA_TNUMBER) {
      add(L, e, "\"", 1);
      add_number(L, e, -2);
      add(L, e, "\"", 1);
    } else {
      luaL_error(L, "Cannot serialise %s: table key must be a number or string", lua_typename(L, kt));
    }
    add(L, e, ":", 1);
    encode_value(L, e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  add(L, e, "}", 1);
}

static void encode_value(lua_State *L, struct enc *e, int idx, int depth) {
  int t = lua_type(L, idx);
  switch (t) {
  case LUA_TSTRING: add_string(L, e, idx); return;
  case LUA_TNUMBER: add_number(L, e, idx); return;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) add(L, e, "true", 4);
    else add(L, e, "false", 5);
    return;
  case LUA_TNIL: add(L, e, "null", 4); return;
  case LUA_TTABLE: encode_table(L, e, idx, depth); return;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) {
      add(L, e, "null", 4);
      return;
    }
    break;
  default: break;
  }
  luaL_error(L, "Cannot serialise %s: type not supported", lua_typename(L, t));
}

static int l_encode(lua_State *L) {
  luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected 1 argument");
  struct enc *e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  luaL_setmetatable(L, ENC_MT);
  encode_value(L, e, 1, 1);
  lua_pushlstring(L, e->p ? e->p : "", e->len);
  free(e->p);
  e->p = NULL;
  e->len = e->cap = 0;
  return 1;
}

/* ---- decode ------------------------------------------------------------ */

/* The parsed tree, freed by the collector when converting it raises. */
struct tree {
  cJSON *root;
};

static int tree_gc(lua_State *L) {
  struct tree *t = luaL_checkudata(L, 1, DEC_MT);
  cJSON_Delete(t->root);
  t->root = NULL;
  return 0;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The first \u0000 escape or raw NUL byte, as a 1-based position; 0: none. */
static size_t find_nul(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\0') return i + 1;
    if (s[i] != '\\') continue;
    if (i + 5 < n && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0) return i + 1;
    i++; /* the escaped character: "\\u0000" is a backslash and text */
  }
  return 0;
}

static void push_node(lua_State *L, const cJSON *v, int depth) {
  luaL_checkstack(L, 3, "JSON nesting");
  if (cJSON_IsNull(v)) {
    lua_pushlightuserdata(L, NULL);
  } else if (cJSON_IsBool(v)) {
    lua_pushboolean(L, cJSON_IsTrue(v));
  } else if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (floor(d) == d && fabs(d) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
    else lua_pushnumber(L, (lua_Number)d);
  } else if (cJSON_IsString(v)) {
    lua_pushstring(L, v->valuestring ? v->valuestring : "");
  } else if (cJSON_IsArray(v)) {
    lua_createtable(L, cJSON_GetArraySize(v), 0);
    lua_Integer i = 1;
    for (const cJSON *c = v->child; c; c = c->next) {
      push_node(L, c, depth + 1);
      lua_rawseti(L, -2, i++);
    }
  } else if (cJSON_IsObject(v)) {
    lua_createtable(L, 0, cJSON_GetArraySize(v));
    for (const cJSON *c = v->child; c; c = c->next) {
      lua_pushstring(L, c->string ? c->string : "");
      push_node(L, c, depth + 1);
      lua_rawset(L, -3);
    }
  } else {
    luaL_error(L, "Expected value but found invalid token at character 1");
  }
}

static int l_decode(lua_State *L) {
  luaL_argcheck(L, lua_gettop(L) == 1, 1, "expected 1 argument");
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  size_t nul = find_nul(s, n);
  if (nul) return luaL_error(L, "Cannot decode a string holding \\u0000 or a NUL byte at character %d", (int)nul);
  struct tree *t = lua_newuserdatauv(L, sizeof *t, 0);
  t->root = NULL;
  luaL_setmetatable(L, DEC_MT);
  const char *end = NULL;
  t->root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
  if (!t->root) {
    size_t at = end && end >= s ? (size_t)(end - s) : 0;
    while (at < n && is_json_space(s[at])) at++;
    if (at >= n) return luaL_error(L, "Expected value but found T_END at character %d", (int)(n + 1));
    return luaL_error(L, "Expected value but found invalid token at character %d", (int)(at + 1));
  }
  size_t at = (size_t)(end - s);
  while (at < n && is_json_space(s[at])) at++;
  if (at < n) return luaL_error(L, "Expected the end but found more at character %d", (int)(at + 1));
  push_node(L, t->root, 0);
  cJSON_Delete(t->root);
  t->root = NULL;
  return 1;
}

static const luaL_Reg cjson_funcs[] = {
    {"encode", l_encode},
    {"decode", l_decode},
    {NULL, NULL},
};

int luaopen_cjson(lua_State *L) {
  luaL_newmetatable(L, ENC_MT);
  lua_pushcfunction(L, enc_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newmetatable(L, DEC_MT);
  lua_pushcfunction(L, tree_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 2);
  luaL_newlib(L, cjson_funcs);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "__json_array");
  lua_setfield(L, -2, "array_mt");
  lua_pushliteral(L, "cjson");
  lua_setfield(L, -2, "_NAME");
  lua_pushfstring(L, "2.1.0-compatible (libcJSON %s)", cJSON_Version());
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
