/* l_docker.c: rt.docker, the Lua binding of docker.c (Docker Engine API).
 *
 * Thin by design: it checks option tables (unknown keys raise), turns them
 * into docker.c specs, and turns answers back into tables. Expected failures
 * return nil, "<operation>: <engine message>", code, http status: code is
 * docker_code()'s string ("NOT_FOUND", "CONFLICT", "ECONNREFUSED" ...), the
 * status 0 when no answer came. A signal that stopped a call is raised as
 * an interrupt. One connection per Lua
 * state, closed with it; rt.docker.reset() drops it so the next call reads
 * DOCKER_HOST again. The full API is in docs/api.md (## rt.docker). */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "bindings.h"
#include "l_util.h"
#include "docker.h"
#include "host.h"

#define CONN_META "rt.docker.connection"

static struct docker *conn(lua_State *L) {
  struct docker **d = lua_touserdata(L, lua_upvalueindex(1));
  if (!*d) {
    *d = docker_new(host_pending_signal);
    if (!*d) luaL_error(L, "docker: %s", docker_new_error());
  }
  return *d;
}

static int conn_gc(lua_State *L) {
  struct docker **d = luaL_checkudata(L, 1, CONN_META);
  docker_free(*d);
  *d = NULL;
  return 0;
}

/* nil, message, code, HTTP status (0: no answer); or the interrupt raised
 * when a signal stopped it. */
static int failure(lua_State *L, struct docker *d) {
  if (docker_interrupted(d)) return host_raise_interrupt(L);
  lutil_fail(L, docker_errmsg(d), docker_code(d));
  lua_pushinteger(L, docker_status(d));
  return 4;
}

/* ---- option tables ---- */

static void *anchor(lua_State *L, size_t size) {
  luaL_checkstack(L, 4, "docker: too many options");
  return lua_newuserdatauv(L, size, 0);
}

/* The map at t[key] ({name = "value"}) as a key-NULL-terminated array. */
static struct docker_kv *opt_map(lua_State *L, int idx, const char *fname, const char *key) {
  const char **pairs = lutil_opt_map(L, idx, fname, key);
  if (!pairs) return NULL;
  size_t n = 0;
  while (pairs[2 * n]) n++;
  struct docker_kv *v = anchor(L, sizeof *v * (n + 1));
  for (size_t i = 0; i < n; i++) {
    v[i].key = pairs[2 * i];
    v[i].value = pairs[2 * i + 1];
  }
  v[n].key = v[n].value = NULL;
  return v;
}

/* Calls `each(L, item_index, out_element)` for every table in the list at
 * t[key]; returns the array (element size `size`, zero-terminated). */
static void *opt_records(lua_State *L, int idx, const char *fname, const char *key, size_t size,
                         void (*each)(lua_State *L, int item, const char *fname, void *out)) {
  int t = lua_getfield(L, idx, key);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (t != LUA_TTABLE) luaL_error(L, "%s: %s must be a list of tables", fname, key);
  int list = lua_gettop(L);
  lua_Integer n = luaL_len(L, list);
  char *v = anchor(L, size * (size_t)(n + 1));
  memset(v, 0, size * (size_t)(n + 1));
  char where[96];
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, list, i) != LUA_TTABLE) luaL_error(L, "%s: %s[%d] must be a table", fname, key, (int)i);
    snprintf(where, sizeof where, "%s: %s[%d]", fname, key, (int)i);
    each(L, lua_gettop(L), where, v + size * (size_t)(i - 1));
    /* Anchors the item's own arrays made by `each` stay below it; keep them. */
    lua_pop(L, 1);
  }
  lua_remove(L, list);
  return v;
}

/* ---- JSON answers to Lua ---- */

static void push_json(lua_State *L, const cJSON *j) {
  luaL_checkstack(L, 3, "docker: JSON nested too deeply");
  if (cJSON_IsObject(j)) {
    lua_createtable(L, 0, cJSON_GetArraySize(j));
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
      if (cJSON_IsNull(e) || !e->string) continue;
      push_json(L, e);
      lua_setfield(L, -2, e->string);
    }
  } else if (cJSON_IsArray(j)) {
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    lua_Integer i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
      push_json(L, e);
      lua_rawseti(L, -2, ++i);
    }
  } else if (cJSON_IsString(j)) {
    lua_pushstring(L, j->valuestring);
  } else if (cJSON_IsNumber(j)) {
    double v = j->valuedouble;
    if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(lua_Integer)v)
      lua_pushinteger(L, (lua_Integer)v);
    else
      lua_pushnumber(L, v);
  } else if (cJSON_IsBool(j)) {
    lua_pushboolean(L, cJSON_IsTrue(j));
  } else {
    lua_pushnil(L);
  }
}

/* Pushes a cJSON answer (and frees it) or the failure. */
static int json_result(lua_State *L, struct docker *d, cJSON *j) {
  if (!j) return failure(L, d);
  push_json(L, j);
  cJSON_Delete(j);
  return 1;
}

static int ok_result(lua_State *L, struct docker *d, int rc) {
  if (rc < 0) return failure(L, d);
  lua_pushboolean(L, 1);
  return 1;
}

static int string_result(lua_State *L, struct docker *d, char *s) {
  if (!s) return failure(L, d);
  lua_pushstring(L, s);
  free(s);
  return 1;
}

/* ---- engine ---- */

static int l_ping(lua_State *L) {
  struct docker *d = conn(L);
  return ok_result(L, d, docker_ping(d));
}

static int l_version(lua_State *L) {
  struct docker *d = conn(L);
  return json_result(L, d, docker_version(d));
}

static int l_reset(lua_State *L) {
  docker_reset(conn(L));
  return 0;
}

static int l_socket(lua_State *L) {
  struct docker *d = conn(L);
  const char *s = docker_socket(d);
  if (!s) return failure(L, d);
  lua_pushstring(L, s);
  return 1;
}

/* ---- networks ---- */

static const char *const network_create_fields[] = {"name", "subnet", "gateway", "internal", "labels", "driver",
                                                    NULL};

static int l_network_create(lua_State *L) {
  static const char fn[] = "docker.network_create";
  luaL_checktype(L, 1, LUA_TTABLE);
  lutil_check_fields(L, 1, fn, network_create_fields);
  struct docker_network_spec s;
  memset(&s, 0, sizeof s);
  s.name = lutil_opt_str(L, 1, fn, "name");
  if (!s.name || !*s.name) return luaL_error(L, "%s: name is required", fn);
  s.subnet = lutil_opt_str(L, 1, fn, "subnet");
  s.gateway = lutil_opt_str(L, 1, fn, "gateway");
  s.driver = lutil_opt_str(L, 1, fn, "driver");
  s.internal = lutil_opt_bool(L, 1, fn, "internal", 0);
  s.labels = opt_map(L, 1, fn, "labels");
  struct docker *d = conn(L);
  return string_result(L, d, docker_network_create(d, &s));
}

static int l_network_remove(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  struct docker *d = conn(L);
  return ok_result(L, d, docker_network_remove(d, name));
}

static int l_network_inspect(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  struct docker *d = conn(L);
  return json_result(L, d, docker_network_inspect(d, name));
}

static const char *const labels_field[] = {"labels", NULL};

static int l_network_list(lua_State *L) {
  static const char fn[] = "docker.network_list";
  lutil_opt_table(L, 1, fn, labels_field);
  struct docker_kv *labels = opt_map(L, 1, fn, "labels");
  struct docker *d = conn(L);
  return json_result(L, d, docker_network_list(d, labels));
}

/* ---- containers ---- */

static const char *const endpoint_fields[] = {"name", "aliases", "ip", NULL};

static void each_endpoint(lua_State *L, int item, const char *where, void *out) {
  struct docker_endpoint *e = out;
  lutil_check_fields(L, item, where, endpoint_fields);
  e->name = lutil_opt_str(L, item, where, "name");
  if (!e->name || !*e->name) luaL_error(L, "%s: name is required", where);
  e->ip = lutil_opt_str(L, item, where, "ip");
  e->aliases = lutil_opt_list(L, item, where, "aliases");
  /* The aliases array is anchored above the item: move it below so the
   * caller's pop removes the item, not the anchor. */
  if (e->aliases) lua_insert(L, item);
}

static const char *const bind_fields[] = {"host", "container", "ro", NULL};

static void each_bind(lua_State *L, int item, const char *where, void *out) {
  struct docker_bind *b = out;
  lutil_check_fields(L, item, where, bind_fields);
  b->host = lutil_opt_str(L, item, where, "host");
  b->container = lutil_opt_str(L, item, where, "container");
  if (!b->host || !*b->host || !b->container || !*b->container)
    luaL_error(L, "%s: host and container paths are required", where);
  b->ro = lutil_opt_bool(L, item, where, "ro", 0);
}

static const char *const publish_fields[] = {"port", "host_ip", "host_port", NULL};

static void each_publish(lua_State *L, int item, const char *where, void *out) {
  struct docker_publish *p = out;
  lutil_check_fields(L, item, where, publish_fields);
  lua_Integer port = lutil_opt_int(L, item, where, "port", 0);
  lua_Integer host_port = lutil_opt_int(L, item, where, "host_port", 0);
  if (port < 1 || port > 65535) luaL_error(L, "%s: port must be 1..65535", where);
  if (host_port < 0 || host_port > 65535) luaL_error(L, "%s: host_port must be 0..65535", where);
  p->port = (int)port;
  p->host_port = (int)host_port;
  p->host_ip = lutil_opt_str(L, item, where, "host_ip");
}

static const char *const create_fields[] = {
    "name",     "image",       "cmd",     "entrypoint", "env",  "labels",     "network",
    "ip",       "aliases",     "networks", "binds",     "publish", "extra_hosts", "user",
    "workdir",  "tty",         "open_stdin", "network_mode", "init", "cap_add", NULL};

static int l_container_create(lua_State *L) {
  static const char fn[] = "docker.container_create";
  luaL_checktype(L, 1, LUA_TTABLE);
  lutil_check_fields(L, 1, fn, create_fields);
  struct docker_container_spec s;
  memset(&s, 0, sizeof s);
  s.name = lutil_opt_str(L, 1, fn, "name");
  s.image = lutil_opt_str(L, 1, fn, "image");
  if (!s.image || !*s.image) return luaL_error(L, "%s: image is required", fn);
  s.cmd = lutil_opt_list(L, 1, fn, "cmd");
  s.entrypoint = lutil_opt_list(L, 1, fn, "entrypoint");
  s.env = opt_map(L, 1, fn, "env");
  s.labels = opt_map(L, 1, fn, "labels");
  s.network = lutil_opt_str(L, 1, fn, "network");
  s.ip = lutil_opt_str(L, 1, fn, "ip");
  s.aliases = lutil_opt_list(L, 1, fn, "aliases");
  if ((s.ip || s.aliases) && !s.network) return luaL_error(L, "%s: ip and aliases need network", fn);
  s.networks = opt_records(L, 1, fn, "networks", sizeof(struct docker_endpoint), each_endpoint);
  s.binds = opt_records(L, 1, fn, "binds", sizeof(struct docker_bind), each_bind);
  s.publish = opt_records(L, 1, fn, "publish", sizeof(struct docker_publish), each_publish);
  s.extra_hosts = lutil_opt_list(L, 1, fn, "extra_hosts");
  s.user = lutil_opt_str(L, 1, fn, "user");
  s.workdir = lutil_opt_str(L, 1, fn, "workdir");
  s.network_mode = lutil_opt_str(L, 1, fn, "network_mode");
  s.tty = lutil_opt_bool(L, 1, fn, "tty", 0);
  s.open_stdin = lutil_opt_bool(L, 1, fn, "open_stdin", 0);
  s.init = lutil_opt_bool(L, 1, fn, "init", 0);
  s.cap_add = lutil_opt_list(L, 1, fn, "cap_add");
  struct docker *d = conn(L);
  return string_result(L, d, docker_container_create(d, &s));
}

static int l_container_start(lua_State *L) {
  const char *id = luaL_checkstring(L, 1);
  struct docker *d = conn(L);
  return ok_result(L, d, docker_container_start(d, id));
}

static int l_container_stop(lua_State *L) {
  const char *id = luaL_checkstring(L, 1);
  lua_Integer t = luaL_optinteger(L, 2, 10);
  luaL_argcheck(L, t >= 0 && t <= 86400, 2, "timeout must be 0..86400 seconds");
  struct docker *d = conn(L);
  return ok_result(L, d, docker_container_stop(d, id, (int)t));
}

/* A signal name as kill(1) spells it (SIGHUP or HUP) or a number; nothing
 * else reaches the query string. */
static int l_container_kill(lua_State *L) {
  const char *id = luaL_checkstring(L, 1);
  const char *sig = luaL_checkstring(L, 2);
  size_t n = strlen(sig);
  int valid = n > 0 && n <= 16;
  for (size_t i = 0; valid && i < n; i++)
    valid = (sig[i] >= 'A' && sig[i] <= 'Z') || (sig[i] >= '0' && sig[i] <= '9');
  luaL_argcheck(L, valid, 2, "signal must be a name like SIGHUP or a number");
  struct docker *d = conn(L);
  return ok_result(L, d, docker_container_kill(d, id, sig));
}

static const char *const remove_fields[] = {"force", "volumes", NULL};

static int l_container_remove(lua_State *L) {
  static const char fn[] = "docker.container_remove";
  const char *id = luaL_checkstring(L, 1);
  lutil_opt_table(L, 2, fn, remove_fields);
  int force = lutil_opt_bool(L, 2, fn, "force", 0);
  int volumes = lutil_opt_bool(L, 2, fn, "volumes", 0);
  struct docker *d = conn(L);
  return ok_result(L, d, docker_container_remove(d, id, force, volumes));
}

static int l_container_inspect(lua_State *L) {
  const char *id = luaL_checkstring(L, 1);
  struct docker *d = conn(L);
  return json_result(L, d, docker_container_inspect(d, id));
}

static const char *const list_fields[] = {"labels", "all", NULL};

static int l_container_list(lua_State *L) {
  static const char fn[] = "docker.container_list";
  lutil_opt_table(L, 1, fn, list_fields);
  struct docker_kv *labels = opt_map(L, 1, fn, "labels");
  int all = lutil_opt_bool(L, 1, fn, "all", 0);
  struct docker *d = conn(L);
  return json_result(L, d, docker_container_list(d, labels, all));
}

static const char *const logs_fields[] = {"tail", NULL};

static int l_container_logs(lua_State *L) {
  static const char fn[] = "docker.container_logs";
  const char *id = luaL_checkstring(L, 1);
  lutil_opt_table(L, 2, fn, logs_fields);
  lua_Integer tail = lutil_opt_int(L, 2, fn, "tail", -1);
  if (tail < -1 || tail > 1000000000) luaL_error(L, "%s: tail must be a count of lines", fn);
  struct docker *d = conn(L);
  struct docker_output o;
  if (docker_container_logs(d, id, (int)tail, &o) < 0) return failure(L, d);
  lua_pushlstring(L, o.out, o.out_len);
  lua_pushlstring(L, o.err, o.err_len);
  docker_output_free(&o);
  return 2;
}

static int l_container_wait(lua_State *L) {
  const char *id = luaL_checkstring(L, 1);
  lua_Integer ms = luaL_optinteger(L, 2, DOCKER_DEFAULT_TIMEOUT_MS);
  luaL_argcheck(L, ms >= 0 && ms <= 0x7fffffff, 2, "timeout_ms out of range");
  struct docker *d = conn(L);
  int code;
  if (docker_container_wait(d, id, (int)ms, &code) < 0) return failure(L, d);
  lua_pushinteger(L, code);
  return 1;
}

static int l_ports(lua_State *L) {
  const char *id = luaL_checkstring(L, 1);
  struct docker *d = conn(L);
  struct docker_port *p;
  size_t n;
  if (docker_ports(d, id, &p, &n) < 0) return failure(L, d);
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, p[i].host_ip);
    lua_setfield(L, -2, "host_ip");
    lua_pushinteger(L, p[i].host_port);
    lua_setfield(L, -2, "host_port");
    lua_rawseti(L, -2, p[i].port);
  }
  free(p);
  return 1;
}

static const char *const exec_fields[] = {"cmd", "env", "user", "workdir", "stdin", "timeout_ms", NULL};

static int l_exec(lua_State *L) {
  static const char fn[] = "docker.exec";
  const char *id = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lutil_check_fields(L, 2, fn, exec_fields);
  struct docker_exec_spec s;
  memset(&s, 0, sizeof s);
  s.cmd = lutil_opt_list(L, 2, fn, "cmd");
  if (!s.cmd || !s.cmd[0]) return luaL_error(L, "%s: cmd must be a non-empty list of strings", fn);
  s.env = opt_map(L, 2, fn, "env");
  s.user = lutil_opt_str(L, 2, fn, "user");
  s.workdir = lutil_opt_str(L, 2, fn, "workdir");
  int t = lua_getfield(L, 2, "stdin");
  if (t == LUA_TSTRING) s.input = lua_tolstring(L, -1, &s.input_len);
  else if (t != LUA_TNIL) return luaL_error(L, "%s: stdin must be a string", fn);
  lua_pop(L, 1); /* still referenced by the options table */
  lua_Integer ms = lutil_opt_int(L, 2, fn, "timeout_ms", DOCKER_DEFAULT_TIMEOUT_MS);
  if (ms < 0 || ms > 0x7fffffff) return luaL_error(L, "%s: timeout_ms out of range", fn);
  s.timeout_ms = ms == 0 ? -1 : (int)ms;
  struct docker *d = conn(L);
  struct docker_output o;
  if (docker_exec(d, id, &s, &o) < 0) return failure(L, d);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, o.code);
  lua_setfield(L, -2, "code");
  lua_pushlstring(L, o.out, o.out_len);
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, o.err, o.err_len);
  lua_setfield(L, -2, "stderr");
  docker_output_free(&o);
  return 1;
}

/* ---- images ---- */

static int l_image_exists(lua_State *L) {
  const char *ref = luaL_checkstring(L, 1);
  struct docker *d = conn(L);
  int r = docker_image_exists(d, ref);
  if (r < 0) return failure(L, d);
  lua_pushboolean(L, r);
  return 1;
}

static int l_image_inspect(lua_State *L) {
  const char *ref = luaL_checkstring(L, 1);
  struct docker *d = conn(L);
  return json_result(L, d, docker_image_inspect(d, ref));
}

/* image_save(ref, path) -> true: `docker save` of ref into a new file. */
static int l_image_save(lua_State *L) {
  const char *ref = luaL_checkstring(L, 1);
  const char *path = luaL_checkstring(L, 2);
  struct docker *d = conn(L);
  return ok_result(L, d, docker_image_save(d, ref, path));
}

static const luaL_Reg docker_funcs[] = {
    {"image_save", l_image_save},
    {"ping", l_ping},
    {"version", l_version},
    {"reset", l_reset},
    {"socket", l_socket},
    {"network_create", l_network_create},
    {"network_remove", l_network_remove},
    {"network_inspect", l_network_inspect},
    {"network_list", l_network_list},
    {"container_create", l_container_create},
    {"container_start", l_container_start},
    {"container_stop", l_container_stop},
    {"container_remove", l_container_remove},
    {"container_kill", l_container_kill},
    {"container_inspect", l_container_inspect},
    {"container_list", l_container_list},
    {"container_logs", l_container_logs},
    {"container_wait", l_container_wait},
    {"ports", l_ports},
    {"exec", l_exec},
    {"image_exists", l_image_exists},
    {"image_inspect", l_image_inspect},
    {NULL, NULL},
};

int luaopen_rt_docker(lua_State *L) {
  luaL_newlibtable(L, docker_funcs);
  struct docker **d = lua_newuserdatauv(L, sizeof *d, 0);
  *d = NULL; /* connected lazily, on the first call */
  if (luaL_newmetatable(L, CONN_META)) {
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  luaL_setfuncs(L, docker_funcs, 1);
  return 1;
}
