/* l_yaml_dump.c: rt.yaml.dump and rt.yaml.ordered, the emitter half of
 * rt.yaml (l_yaml.c is the loader and the module; see there). Values are
 * walked depth first into libyaml emitter events; plain scalars are used
 * only where they read back as the same string under both YAML 1.2 and
 * 1.1, everything else is quoted. */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yaml.h>

#include "l_yaml.h"
#include "util.h"

#define DUMPER_MT "rt.yaml.dumper"

struct dumper {
  yaml_emitter_t emitter;
  int have_emitter;
  struct buf out;
  int path, visiting; /* stack indices during the walk */
};

static int dumper_close(lua_State *L) {
  struct dumper *d = luaL_checkudata(L, 1, DUMPER_MT);
  if (d->have_emitter) yaml_emitter_delete(&d->emitter);
  d->have_emitter = 0;
  buf_free(&d->out);
  return 0;
}

static int write_output(void *data, unsigned char *bytes, size_t size) {
  struct dumper *d = data;
  return buf_addn(&d->out, bytes, size) == 0;
}

/* Pushes where the walk is, e.g. `.egress.routes[2]`, or `the top level`. */
static void push_path(lua_State *L, struct dumper *d) {
  luaL_Buffer b;
  lua_Integer n = (lua_Integer)lua_rawlen(L, d->path);
  luaL_buffinit(L, &b);
  if (n == 0) luaL_addstring(&b, "the top level");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, d->path, i);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_pushfstring(L, "[%I]", lua_tointeger(L, -1));
      lua_remove(L, -2);
    } else {
      lua_pushfstring(L, ".%s", lua_tostring(L, -1));
      lua_remove(L, -2);
    }
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

static int dump_fail(lua_State *L, struct dumper *d, const char *what) {
  push_path(L, d);
  return luaL_error(L, "yaml.dump: %s (at %s)", what, lua_tostring(L, -1));
}

static void emit(lua_State *L, struct dumper *d, yaml_event_t *ev) {
  /* The emitter owns the event from here, on failure too. */
  if (!yaml_emitter_emit(&d->emitter, ev))
    dump_fail(L, d, d->emitter.problem ? d->emitter.problem : "emitter error");
}

static void emit_scalar(lua_State *L, struct dumper *d, const char *s, size_t len, yaml_scalar_style_t style) {
  yaml_event_t ev;
  if (len > INT_MAX) dump_fail(L, d, "string too long");
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)len, 1, 1, style))
    dump_fail(L, d, "string is not valid UTF-8");
  emit(L, d, &ev);
}

/* Words and number-like text that YAML 1.1 readers (which many programs
 * still are) would not take as strings. */
static int yaml11_ambiguous(const char *s, size_t len) {
  static const char *const words[] = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                                      "on", "On", "ON", "off", "Off", "OFF", "<<", "=", NULL};
  if (lyaml_is_one_of(s, len, words)) return 1;
  size_t i = (len > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i < len && s[i] == '.') i++;
  if (i >= len || !lyaml_is_digit((unsigned char)s[i])) return 0;
  for (size_t j = 0; j < len; j++)
    if (!strchr("0123456789_.:+-eExXoObBaAcCdDfF", s[j]) || s[j] == '\0') return 0;
  return 1;
}

/* Whether the emitter may write s as a plain scalar in block context and
 * it reads back as the same string. This mirrors libyaml's own analysis
 * (printable set, indicators, spaces) and adds the resolver: text that
 * would load as null, a boolean or a number is quoted. */
static int plain_ok(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  if (len == 0 || lyaml_resolve_plain(str, len) != K_STR || yaml11_ambiguous(str, len)) return 0;
  if (strchr("#,[]{}&*!|>'\"%@`", s[0])) return 0;
  if ((s[0] == '-' || s[0] == '?' || s[0] == ':') && (len == 1 || s[1] == ' ')) return 0;
  if (len >= 3 && (memcmp(s, "---", 3) == 0 || memcmp(s, "...", 3) == 0)) return 0;
  if (s[0] == ' ' || s[len - 1] == ' ') return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = s[i];
    if (c < 0x20 || c == 0x7f) return 0;
    if (c == ':' && (i + 1 == len || s[i + 1] == ' ')) return 0;
    if (c == '#' && s[i - 1] == ' ') return 0;
    if (c < 0x80) continue;
    /* Non-ASCII: libyaml writes only BMP characters other than C1
     * controls, surrogates, line/paragraph separators, BOM, U+FFFE/FFFF
     * unescaped. */
    size_t w = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (i + w > len) return 0;
    unsigned char c1 = s[i + 1], c2 = w > 2 ? s[i + 2] : 0;
    int printable = (c == 0xC2 && c1 >= 0xA0) || (c > 0xC2 && c < 0xE0) || (c >= 0xE0 && c < 0xED) ||
                    (c == 0xED && c1 < 0xA0) || c == 0xEE ||
                    (c == 0xEF && !(c1 == 0xBB && c2 == 0xBF) && !(c1 == 0xBF && (c2 == 0xBE || c2 == 0xBF)));
    if (!printable || (c == 0xE2 && c1 == 0x80 && (c2 == 0xA8 || c2 == 0xA9))) return 0;
    i += w - 1;
  }
  return 1;
}

static void emit_string(lua_State *L, struct dumper *d, int idx) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  emit_scalar(L, d, s, len, plain_ok(s, len) ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

/* Shortest text that reads back as the same float, always with a '.', an
 * exponent or a YAML special so it loads as a float again. */
static void emit_float(lua_State *L, struct dumper *d, lua_Number x) {
  char buf[64];
  if (isnan(x)) snprintf(buf, sizeof buf, ".nan");
  else if (isinf(x)) snprintf(buf, sizeof buf, "%s", x < 0 ? "-.inf" : ".inf");
  else {
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
      if (strtod(buf, NULL) == (double)x) break;
    }
    char point = localeconv()->decimal_point[0];
    for (char *p = buf; *p; p++)
      if (*p == point) *p = '.';
    if (!strpbrk(buf, ".eE")) strcat(buf, ".0");
  }
  emit_scalar(L, d, buf, strlen(buf), YAML_PLAIN_SCALAR_STYLE);
}

/* The number of elements when the table at idx is a sequence (keys exactly
 * 1..n, n >= 1), else -1. */
static lua_Integer sequence_length(lua_State *L, int idx) {
  lua_Integer n = 0, max = 0;
  int only_index = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    n++;
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
      if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
    } else {
      only_index = 0;
    }
  }
  return (only_index && n >= 1 && max == n) ? n : -1;
}

static int has_meta_field(lua_State *L, int idx, const char *field) {
  if (luaL_getmetafield(L, idx, field) == LUA_TNIL) return 0;
  lua_pop(L, 1);
  return 1;
}

static int is_empty(lua_State *L, int idx) {
  lua_pushnil(L);
  if (!lua_next(L, idx)) return 1;
  lua_pop(L, 2);
  return 0;
}

static int has_meta_flag(lua_State *L, int idx, const char *field) {
  int t = luaL_getmetafield(L, idx, field);
  if (t == LUA_TNIL) return 0;
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

struct keyref {
  const char *s;
  size_t len;
};

static int cmp_keys(const void *a, const void *b) {
  const struct keyref *x = a, *y = b;
  int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

static void dump_value(lua_State *L, struct dumper *d, int idx, int depth);

static void dump_entry(lua_State *L, struct dumper *d, int tbl, int key, int depth) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, d->path);
  lua_pushvalue(L, key);
  lua_rawseti(L, d->path, n + 1);
  emit_string(L, d, key);
  lua_pushvalue(L, key);
  lua_rawget(L, tbl);
  dump_value(L, d, lua_gettop(L), depth + 1);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawseti(L, d->path, n + 1);
}

static void dump_mapping(lua_State *L, struct dumper *d, int tbl, int depth) {
  yaml_event_t ev;
  yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
  emit(L, d, &ev);

  /* Keys named by __yaml_order first, in that order (absent ones skipped). */
  lua_newtable(L);
  int done = lua_gettop(L);
  if (luaL_getmetafield(L, tbl, "__yaml_order") != LUA_TNIL) {
    int order = lua_gettop(L);
    if (!lua_istable(L, order)) dump_fail(L, d, "__yaml_order must be a list of keys");
    lua_Integer n = (lua_Integer)lua_rawlen(L, order);
    for (lua_Integer i = 1; i <= n; i++) {
      if (lua_rawgeti(L, order, i) != LUA_TSTRING) dump_fail(L, d, "__yaml_order must list string keys");
      int key = lua_gettop(L);
      lua_pushvalue(L, key);
      int present = lua_rawget(L, tbl) != LUA_TNIL;
      lua_pushvalue(L, key);
      int seen = lua_rawget(L, done) != LUA_TNIL;
      lua_pop(L, 2);
      if (present && !seen) {
        lua_pushvalue(L, key);
        lua_pushboolean(L, 1);
        lua_rawset(L, done);
        dump_entry(L, d, tbl, key, depth);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }

  /* The rest sorted bytewise: first count and type-check. */
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      const char *type = luaL_typename(L, -1);
      lua_pushfstring(L, "mapping keys must be strings, got %s %s", type, luaL_tolstring(L, -1, NULL));
      dump_fail(L, d, lua_tostring(L, -1));
    }
    count++;
  }
  struct keyref *keys = lua_newuserdatauv(L, sizeof *keys * (count ? count : 1), 0);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, tbl)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, done) == LUA_TNIL && k < count) {
      /* the strings stay alive: tbl holds them as keys */
      keys[k].s = lua_tolstring(L, -2, &keys[k].len);
      k++;
    }
    lua_pop(L, 1);
  }
  qsort(keys, k, sizeof *keys, cmp_keys);
  for (size_t i = 0; i < k; i++) {
    lua_pushlstring(L, keys[i].s, keys[i].len);
    dump_entry(L, d, tbl, lua_gettop(L), depth);
    lua_pop(L, 1);
  }
  lua_pop(L, 2); /* keys, done */

  yaml_mapping_end_event_initialize(&ev);
  emit(L, d, &ev);
}

static void dump_sequence(lua_State *L, struct dumper *d, int tbl, lua_Integer n, int depth) {
  yaml_event_t ev;
  yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
  emit(L, d, &ev);
  lua_Integer plen = (lua_Integer)lua_rawlen(L, d->path);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_pushinteger(L, i);
    lua_rawseti(L, d->path, plen + 1);
    lua_rawgeti(L, tbl, i);
    dump_value(L, d, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  lua_rawseti(L, d->path, plen + 1);
  yaml_sequence_end_event_initialize(&ev);
  emit(L, d, &ev);
}

static void dump_table(lua_State *L, struct dumper *d, int idx, int depth) {
  if (depth >= LYAML_MAX_DEPTH) {
    lua_pushfstring(L, "nesting deeper than %d levels", LYAML_MAX_DEPTH);
    dump_fail(L, d, lua_tostring(L, -1));
  }
  luaL_checkstack(L, 16, "yaml.dump: nesting");
  lua_pushvalue(L, idx);
  if (lua_rawget(L, d->visiting) != LUA_TNIL) dump_fail(L, d, "cycle: a table contains itself");
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, d->visiting);

  int as_map = has_meta_flag(L, idx, "__yaml_map") || has_meta_field(L, idx, "__yaml_order");
  lua_Integer n = as_map ? -1 : sequence_length(L, idx);
  if (n > 0) {
    dump_sequence(L, d, idx, n, depth);
  } else if (!as_map && is_empty(L, idx)) {
    yaml_event_t ev; /* an empty table not marked as a mapping: [] */
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_SEQUENCE_STYLE);
    emit(L, d, &ev);
    yaml_sequence_end_event_initialize(&ev);
    emit(L, d, &ev);
  } else {
    dump_mapping(L, d, idx, depth);
  }

  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, d->visiting);
}

static void dump_value(lua_State *L, struct dumper *d, int idx, int depth) {
  int top = lua_gettop(L);
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: emit_string(L, d, idx); break;
  case LUA_TBOOLEAN:
    emit_scalar(L, d, lua_toboolean(L, idx) ? "true" : "false", lua_toboolean(L, idx) ? 4 : 5,
                YAML_PLAIN_SCALAR_STYLE);
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      char buf[32];
      snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
      emit_scalar(L, d, buf, strlen(buf), YAML_PLAIN_SCALAR_STYLE);
    } else {
      emit_float(L, d, lua_tonumber(L, idx));
    }
    break;
  case LUA_TTABLE: dump_table(L, d, idx, depth); break;
  default:
    if (lyaml_is_null(L, idx)) {
      emit_scalar(L, d, "null", 4, YAML_PLAIN_SCALAR_STYLE);
      break;
    }
    lua_pushfstring(L, "cannot dump a %s", luaL_typename(L, idx));
    dump_fail(L, d, lua_tostring(L, -1));
  }
  lua_settop(L, top);
}

int lyaml_dump(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  struct dumper *d = lua_newuserdatauv(L, sizeof *d, 0);
  memset(d, 0, sizeof *d);
  luaL_setmetatable(L, DUMPER_MT);
  lua_toclose(L, 2);
  if (!yaml_emitter_initialize(&d->emitter)) return luaL_error(L, "yaml.dump: out of memory");
  d->have_emitter = 1;
  yaml_emitter_set_output(&d->emitter, write_output, d);
  yaml_emitter_set_encoding(&d->emitter, YAML_UTF8_ENCODING);
  yaml_emitter_set_unicode(&d->emitter, 1);
  yaml_emitter_set_indent(&d->emitter, 2);
  yaml_emitter_set_width(&d->emitter, -1);
  yaml_emitter_set_break(&d->emitter, YAML_LN_BREAK);
  lua_newtable(L);
  d->path = lua_gettop(L);
  lua_newtable(L);
  d->visiting = lua_gettop(L);

  yaml_event_t ev;
  yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
  emit(L, d, &ev);
  yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
  emit(L, d, &ev);
  dump_value(L, d, 1, 0);
  yaml_document_end_event_initialize(&ev, 1);
  emit(L, d, &ev);
  yaml_stream_end_event_initialize(&ev);
  emit(L, d, &ev);
  if (!yaml_emitter_flush(&d->emitter)) return dump_fail(L, d, "cannot write output");
  lua_pushlstring(L, d->out.p ? d->out.p : "", d->out.len);
  return 1;
}

/* ordered(tbl, keys) -> tbl, with keys emitted first by dump. An existing
 * metatable gets the field; otherwise tbl gets a new one. */
int lyaml_ordered(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING) return luaL_argerror(L, 2, "expected a list of string keys");
    lua_pop(L, 1);
  }
  if (!lua_getmetatable(L, 1)) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setmetatable(L, 1);
  }
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "__yaml_order");
  lua_settop(L, 1);
  return 1;
}

void lyaml_open_dumper(lua_State *L) {
  if (luaL_newmetatable(L, DUMPER_MT)) {
    lua_pushcfunction(L, dumper_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, dumper_close);
    lua_setfield(L, -2, "__close");
  }
}
