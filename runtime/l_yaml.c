/* l_yaml.c: rt.yaml, YAML through libyaml for manifests and rendered configs.
 *
 *   rt.yaml.load(text [, name [, {line_offset=N}]]) -> value | nil, message
 *   rt.yaml.dump(value) -> text
 *   rt.yaml.mark(tbl [, key]) -> line, col | nil
 *   rt.yaml.ordered(tbl, {keys...}) -> tbl
 *   rt.yaml.null                       the sentinel for YAML null
 *
 * libyaml does all of the YAML: its event parser feeds load, its emitter
 * writes dump. This file (the loader) and l_yaml_dump.c (the emitter) only
 * map events to Lua values and back, applying
 * the YAML 1.2 core schema to plain scalars. Anchors, aliases and tags other
 * than !!str are refused so a manifest is exactly what it reads as (and an
 * alias expansion bomb cannot exist).
 *
 * Positions of loaded tables and of their keys live in a weak-keyed table in
 * the registry, so they vanish with the values. Parser and emitter state sit
 * in to-be-closed userdata: an error anywhere (a bad document, a value dump
 * refuses, a memory error) still frees libyaml's buffers. See docs/api.md. */
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yaml.h>

#include "bindings.h"
#include "l_util.h"
#include "l_yaml.h"

#define LOADER_MT "rt.yaml.loader"
#define LOAD_ERROR_MT "rt.yaml.load_error"
#define MARKS_KEY "rt.yaml.marks"
#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* rt.yaml.null is a light userdata pointing here: unique, comparable, and
 * never collected. */
static const char null_sentinel;

void lyaml_push_null(lua_State *L) { lua_pushlightuserdata(L, (void *)&null_sentinel); }

int lyaml_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == (void *)&null_sentinel;
}

/* ---- the plain-scalar resolver (YAML 1.2 core schema) ------------------ */

int lyaml_is_one_of(const char *s, size_t len, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == len && memcmp(*words, s, len) == 0) return 1;
  return 0;
}

static size_t digits_span(const char *s, size_t i, size_t len) {
  size_t start = i;
  while (i < len && lyaml_is_digit((unsigned char)s[i])) i++;
  return i - start;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int is_float_text(const char *s, size_t len) {
  size_t i = 0;
  if (i < len && (s[i] == '-' || s[i] == '+')) i++;
  size_t whole = digits_span(s, i, len);
  i += whole;
  if (i < len && s[i] == '.') {
    i++;
    size_t frac = digits_span(s, i, len);
    if (whole == 0 && frac == 0) return 0;
    i += frac;
  } else if (whole == 0) {
    return 0;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '-' || s[i] == '+')) i++;
    size_t exp = digits_span(s, i, len);
    if (exp == 0) return 0;
    i += exp;
  }
  return i == len;
}

enum lyaml_kind lyaml_resolve_plain(const char *s, size_t len) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
  static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};
  static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
                                     "-.inf", "-.Inf", "-.INF", NULL};
  static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
  if (lyaml_is_one_of(s, len, nulls)) return K_NULL;
  if (lyaml_is_one_of(s, len, bools)) return K_BOOL;
  if (lyaml_is_one_of(s, len, infs)) return K_INF;
  if (lyaml_is_one_of(s, len, nans)) return K_NAN;
  size_t i = (len > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i < len && digits_span(s, i, len) == len - i) return K_INT;
  if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    int hex = s[1] == 'x';
    size_t j = 2;
    for (; j < len; j++) {
      int c = (unsigned char)s[j];
      int ok = hex ? (lyaml_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) : (c >= '0' && c <= '7');
      if (!ok) break;
    }
    if (j == len) return K_HEXOCT;
  }
  if (is_float_text(s, len)) return K_FLOAT;
  return K_STR;
}

/* 0x / 0o text (already validated) as an integer, or a float when it does
 * not fit in 64 bits. */
static void push_hexoct(lua_State *L, const char *s, size_t len) {
  unsigned base = s[1] == 'x' ? 16 : 8;
  uint64_t v = 0;
  double d = 0;
  int overflow = 0;
  for (size_t i = 2; i < len; i++) {
    int c = (unsigned char)s[i];
    unsigned digit = lyaml_is_digit(c) ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
    if (!overflow && v > ((uint64_t)LUA_MAXINTEGER - digit) / base) {
      overflow = 1;
      d = (double)v;
    }
    if (overflow) d = d * base + digit;
    else v = v * base + digit;
  }
  if (overflow) lua_pushnumber(L, (lua_Number)d);
  else lua_pushinteger(L, (lua_Integer)v);
}

/* Pushes the Lua value of a plain, untagged scalar. */
static void push_plain(lua_State *L, const char *s, size_t len) {
  switch (lyaml_resolve_plain(s, len)) {
  case K_NULL: lyaml_push_null(L); return;
  case K_BOOL: lua_pushboolean(L, s[0] == 't' || s[0] == 'T'); return;
  case K_INF: lua_pushnumber(L, s[0] == '-' ? -HUGE_VAL : HUGE_VAL); return;
  case K_NAN: lua_pushnumber(L, (lua_Number)NAN); return;
  case K_HEXOCT: push_hexoct(L, s, len); return;
  case K_INT:
  case K_FLOAT:
    /* Validated text, NUL-terminated by libyaml: Lua's own conversion gives
     * an integer, or a float for decimals beyond 64 bits. */
    if (lua_stringtonumber(L, s) != 0) return;
    break;
  case K_STR: break;
  }
  lua_pushlstring(L, s, len);
}

/* Pushes s fit for a one-line message: control bytes escaped, long keys
 * shortened. */
static void push_printable(lua_State *L, const char *s, size_t len) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t shown = len > 80 ? 77 : len;
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n') luaL_addstring(&b, "\\n");
    else if (c == '\t') luaL_addstring(&b, "\\t");
    else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\x%02X", c);
      luaL_addstring(&b, esc);
    } else luaL_addchar(&b, (char)c);
  }
  if (shown < len) luaL_addstring(&b, "...");
  luaL_pushresult(&b);
}

/* The weak-keyed registry table: loaded table -> its marks record. A record
 * holds the node's own position at [0] and each key's (or element's)
 * position under that key, as line << 32 | col. */
static void push_marks(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, MARKS_KEY) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, MARKS_KEY);
}

static lua_Integer pack_mark(lua_Integer line, lua_Integer col) {
  if (line < 0) line = 0;
  if (line > 0x7fffffff) line = 0x7fffffff;
  if (col < 0) col = 0;
  if (col > 0xffffffff) col = 0xffffffff;
  return (line << 32) | col;
}

/* ---- load -------------------------------------------------------------- */

struct loader {
  yaml_parser_t parser;
  yaml_event_t event;
  int have_parser, have_event;
  const char *name;
  const char *text;
  size_t len;
  lua_Integer line_offset;
  int marks; /* stack index of the marks table during the build */
};

static int loader_close(lua_State *L) {
  struct loader *ld = luaL_checkudata(L, 1, LOADER_MT);
  if (ld->have_event) yaml_event_delete(&ld->event);
  if (ld->have_parser) yaml_parser_delete(&ld->parser);
  ld->have_event = ld->have_parser = 0;
  return 0;
}

static lua_Integer line_of(const struct loader *ld, const yaml_mark_t *m) {
  return (lua_Integer)m->line + 1 + ld->line_offset;
}

/* Raises a load error: a table with LOAD_ERROR_MT, which load() turns into
 * nil, message, "EINVAL". Any other error (memory, an interrupt) passes through. */
static int load_fail(lua_State *L, const struct loader *ld, lua_Integer line, lua_Integer col, const char *what) {
  lua_createtable(L, 1, 0);
  lua_pushfstring(L, "%s:%I:%I: %s", ld->name, line, col, what);
  lua_rawseti(L, -2, 1);
  luaL_setmetatable(L, LOAD_ERROR_MT);
  return lua_error(L);
}

static int load_fail_at(lua_State *L, const struct loader *ld, const yaml_mark_t *m, const char *what) {
  return load_fail(L, ld, line_of(ld, m), (lua_Integer)m->column + 1, what);
}

static int syntax_error(lua_State *L, struct loader *ld) {
  yaml_parser_t *p = &ld->parser;
  const char *problem = p->problem ? p->problem : "invalid YAML";
  if (p->error == YAML_MEMORY_ERROR) return luaL_error(L, "yaml.load: out of memory");
  if (p->error == YAML_READER_ERROR) {
    /* The reader knows only a byte offset. */
    lua_Integer line = 1, col = 1;
    for (size_t i = 0; i < p->problem_offset && i < ld->len; i++) {
      if (ld->text[i] == '\n') {
        line++;
        col = 1;
      } else if (((unsigned char)ld->text[i] & 0xC0) != 0x80) {
        col++;
      }
    }
    char what[160];
    if (p->problem_value >= 0) snprintf(what, sizeof what, "%s (#x%02X)", problem, (unsigned)p->problem_value);
    else snprintf(what, sizeof what, "%s", problem);
    return load_fail(L, ld, line + ld->line_offset, col, what);
  }
  if (p->context) {
    lua_pushfstring(L, "%s (%s at line %I, column %I)", problem, p->context, line_of(ld, &p->context_mark),
                    (lua_Integer)p->context_mark.column + 1);
    return load_fail_at(L, ld, &p->problem_mark, lua_tostring(L, -1));
  }
  return load_fail_at(L, ld, &p->problem_mark, problem);
}

static void next_event(lua_State *L, struct loader *ld) {
  if (ld->have_event) {
    yaml_event_delete(&ld->event);
    ld->have_event = 0;
  }
  if (!yaml_parser_parse(&ld->parser, &ld->event)) syntax_error(L, ld);
  ld->have_event = 1;
}

static void reject_anchor(lua_State *L, struct loader *ld, const yaml_char_t *anchor) {
  if (ld->event.type == YAML_ALIAS_EVENT || anchor)
    load_fail_at(L, ld, &ld->event.start_mark, "anchors and aliases are not supported");
}

/* Only !!str is accepted, and only on scalars. Returns whether it is there. */
static int check_tag(lua_State *L, struct loader *ld, const yaml_char_t *tag, int scalar) {
  if (!tag) return 0;
  const char *t = (const char *)tag;
  if (scalar && strcmp(t, YAML_TAG_PREFIX "str") == 0) return 1;
  size_t plen = strlen(YAML_TAG_PREFIX);
  if (strncmp(t, YAML_TAG_PREFIX, plen) == 0) lua_pushfstring(L, "unsupported tag '!!%s'", t + plen);
  else lua_pushfstring(L, "unsupported tag '%s'", t);
  return load_fail_at(L, ld, &ld->event.start_mark, lua_tostring(L, -1));
}

/* Pushes the value of the scalar event at hand. */
static void push_scalar(lua_State *L, struct loader *ld) {
  const yaml_event_t *e = &ld->event;
  const char *v = (const char *)e->data.scalar.value;
  size_t len = e->data.scalar.length;
  int forced_str = check_tag(L, ld, e->data.scalar.tag, 1);
  if (!forced_str && e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) push_plain(L, v, len);
  else lua_pushlstring(L, v, len);
}

static void build_node(lua_State *L, struct loader *ld, int depth);

/* Creates the table of a collection node and its marks record; leaves
 * table, record on the stack. */
static void open_collection(lua_State *L, struct loader *ld, int depth) {
  if (depth >= LYAML_MAX_DEPTH) {
    lua_pushfstring(L, "nesting deeper than %d levels", LYAML_MAX_DEPTH);
    load_fail_at(L, ld, &ld->event.start_mark, lua_tostring(L, -1));
  }
  luaL_checkstack(L, 8, "yaml.load: nesting");
  lua_newtable(L);
  lua_newtable(L);
  lua_pushinteger(L, pack_mark(line_of(ld, &ld->event.start_mark), (lua_Integer)ld->event.start_mark.column + 1));
  lua_rawseti(L, -2, 0);
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  lua_rawset(L, ld->marks);
}

static void build_sequence(lua_State *L, struct loader *ld, int depth) {
  open_collection(L, ld, depth);
  int tbl = lua_gettop(L) - 1, rec = tbl + 1;
  lua_Integer n = 0;
  for (;;) {
    next_event(L, ld);
    if (ld->event.type == YAML_SEQUENCE_END_EVENT) break;
    lua_Integer packed = pack_mark(line_of(ld, &ld->event.start_mark), (lua_Integer)ld->event.start_mark.column + 1);
    build_node(L, ld, depth + 1);
    lua_rawseti(L, tbl, ++n);
    lua_pushinteger(L, packed);
    lua_rawseti(L, rec, n);
  }
  lua_pop(L, 1); /* the record */
}

static void build_mapping(lua_State *L, struct loader *ld, int depth) {
  open_collection(L, ld, depth);
  int tbl = lua_gettop(L) - 1, rec = tbl + 1;
  for (;;) {
    next_event(L, ld);
    const yaml_event_t *e = &ld->event;
    if (e->type == YAML_MAPPING_END_EVENT) break;
    if (e->type == YAML_ALIAS_EVENT) reject_anchor(L, ld, NULL);
    if (e->type != YAML_SCALAR_EVENT) load_fail_at(L, ld, &e->start_mark, "mapping keys must be scalars");
    reject_anchor(L, ld, e->data.scalar.anchor);
    check_tag(L, ld, e->data.scalar.tag, 1);
    /* Keys keep their text: `1: x` has the key "1". */
    lua_pushlstring(L, (const char *)e->data.scalar.value, e->data.scalar.length);
    int key = lua_gettop(L);
    lua_Integer line = line_of(ld, &e->start_mark);
    lua_pushvalue(L, key);
    if (lua_rawget(L, rec) != LUA_TNIL) { /* rec[key]: the first occurrence */
      lua_Integer first = lua_tointeger(L, -1) >> 32;
      push_printable(L, lua_tostring(L, key), lua_rawlen(L, key));
      lua_pushfstring(L, "duplicate key '%s' (first defined at line %I)", lua_tostring(L, -1), first);
      load_fail_at(L, ld, &e->start_mark, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    lua_pushvalue(L, key);
    lua_pushinteger(L, pack_mark(line, (lua_Integer)e->start_mark.column + 1));
    lua_rawset(L, rec);
    next_event(L, ld);
    build_node(L, ld, depth + 1);
    lua_rawset(L, tbl);
  }
  lua_pop(L, 1); /* the record */
}

/* Pushes the value of the node whose first event is at hand. */
static void build_node(lua_State *L, struct loader *ld, int depth) {
  const yaml_event_t *e = &ld->event;
  switch (e->type) {
  case YAML_ALIAS_EVENT: reject_anchor(L, ld, NULL); break;
  case YAML_SCALAR_EVENT:
    reject_anchor(L, ld, e->data.scalar.anchor);
    push_scalar(L, ld);
    break;
  case YAML_SEQUENCE_START_EVENT:
    reject_anchor(L, ld, e->data.sequence_start.anchor);
    check_tag(L, ld, e->data.sequence_start.tag, 0);
    build_sequence(L, ld, depth);
    break;
  case YAML_MAPPING_START_EVENT:
    reject_anchor(L, ld, e->data.mapping_start.anchor);
    check_tag(L, ld, e->data.mapping_start.tag, 0);
    build_mapping(L, ld, depth);
    break;
  default: load_fail_at(L, ld, &e->start_mark, "unexpected YAML event"); break;
  }
}

/* Runs under lua_pcall: (loader userdata, marks table) -> value */
static int load_document(lua_State *L) {
  struct loader *ld = lua_touserdata(L, 1);
  ld->marks = 2;
  next_event(L, ld); /* stream start */
  next_event(L, ld);
  if (ld->event.type == YAML_STREAM_END_EVENT) {
    lyaml_push_null(L);
    return 1;
  }
  next_event(L, ld); /* past document start */
  build_node(L, ld, 0);
  next_event(L, ld); /* document end */
  next_event(L, ld);
  if (ld->event.type == YAML_DOCUMENT_START_EVENT)
    load_fail_at(L, ld, &ld->event.start_mark, "expected a single YAML document");
  return 1;
}

static const char *const load_fields[] = {"line_offset", NULL};

static int l_load(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, "<yaml>");
  lua_Integer line_offset = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lutil_check_fields(L, 3, "yaml.load", load_fields);
    lua_getfield(L, 3, "line_offset");
    if (!lua_isnil(L, -1)) {
      int exact = 0;
      line_offset = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &exact) : 0;
      if (!exact || line_offset < 0 || line_offset > INT_MAX)
        return luaL_argerror(L, 3, "line_offset must be a non-negative integer");
    }
    lua_pop(L, 1);
  }
  lua_settop(L, 3);

  struct loader *ld = lua_newuserdatauv(L, sizeof *ld, 0);
  memset(ld, 0, sizeof *ld);
  luaL_setmetatable(L, LOADER_MT);
  lua_toclose(L, 4);
  if (!yaml_parser_initialize(&ld->parser)) return luaL_error(L, "yaml.load: out of memory");
  ld->have_parser = 1;
  yaml_parser_set_input_string(&ld->parser, (const unsigned char *)text, len);
  ld->name = name;
  ld->text = text;
  ld->len = len;
  ld->line_offset = line_offset;

  lua_pushcfunction(L, load_document);
  lua_pushvalue(L, 4);
  push_marks(L);
  int rc = lua_pcall(L, 2, 1, 0);
  lua_pushcfunction(L, loader_close); /* free libyaml's buffers now */
  lua_pushvalue(L, 4);
  lua_call(L, 1, 0);
  if (rc == LUA_OK) return 1;
  if (lua_type(L, -1) == LUA_TTABLE && lua_getmetatable(L, -1)) {
    luaL_getmetatable(L, LOAD_ERROR_MT);
    int ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (ours) {
      lua_rawgeti(L, -1, 1);
      return lutil_fail(L, lua_tostring(L, -1), "EINVAL");
    }
  }
  return lua_error(L);
}

/* mark(tbl [, key]) -> line, col | nothing */
static int l_mark(lua_State *L) {
  int has_key = !lua_isnoneornil(L, 2);
  if (lua_type(L, 1) != LUA_TTABLE) return 0;
  push_marks(L);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TTABLE) return 0;
  if (has_key) {
    int t = lua_type(L, 2);
    if (!(t == LUA_TSTRING || (lua_isinteger(L, 2) && lua_tointeger(L, 2) >= 1))) return 0;
    lua_pushvalue(L, 2);
  } else {
    lua_pushinteger(L, 0);
  }
  if (lua_rawget(L, -2) != LUA_TNUMBER) return 0;
  lua_Integer packed = lua_tointeger(L, -1);
  lua_pushinteger(L, packed >> 32);
  lua_pushinteger(L, packed & 0xffffffff);
  return 2;
}

static const luaL_Reg yaml_funcs[] = {
    {"load", l_load},
    {"dump", lyaml_dump},
    {"mark", l_mark},
    {"ordered", lyaml_ordered},
    {NULL, NULL},
};

int luaopen_rt_yaml(lua_State *L) {
  if (luaL_newmetatable(L, LOADER_MT)) {
    lua_pushcfunction(L, loader_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, loader_close);
    lua_setfield(L, -2, "__close");
  }
  lyaml_open_dumper(L);
  luaL_newmetatable(L, LOAD_ERROR_MT);
  lua_pop(L, 3);
  luaL_newlib(L, yaml_funcs);
  lyaml_push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}
