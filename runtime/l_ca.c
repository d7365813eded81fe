/* l_ca.c: rt.ca, the Lua binding of ca.c.
 *
 *   rt.ca.mint{dir=, name=, common_name=, days=30, key="ec-p256", key_format=, overwrite=false}
 *     -> {cert=, key=, pem=, fingerprint_sha256=} | nil, message, code
 *   rt.ca.bundle{out=, extra={paths...}, mode=0644} -> out | nil, message, code
 *   rt.ca.fingerprint(cert_path)  -> "AB:CD:..." | nil, message, code
 *   rt.ca.system_roots()          -> path | nil, message, code
 * See docs/api.md. */
#include <string.h>

#include <lauxlib.h>

#include "bindings.h"
#include "l_util.h"
#include "ca.h"

/* Field `name` of the options table at idx as a string; NULL when absent
 * and optional. The string stays referenced by the table. */
static const char *string_field(lua_State *L, int idx, const char *fname, const char *name, int required) {
  int t = lua_getfield(L, idx, name);
  const char *s = NULL;
  if (t == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (t != LUA_TNIL || required) luaL_error(L, "%s: %s must be a string", fname, name);
  lua_pop(L, 1);
  if (s && required && !*s) luaL_error(L, "%s: %s must not be empty", fname, name);
  return s;
}

static int push_failure(lua_State *L, const struct ca_error *err) {
  lua_pushnil(L);
  lua_pushstring(L, err->message);
  lua_pushstring(L, err->code);
  return 3;
}

static const char *const mint_fields[] = {"dir", "name", "common_name", "days", "key", "key_format", "overwrite", NULL};

static int l_mint(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lutil_check_fields(L, 1, "ca.mint", mint_fields);
  struct ca_mint_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dir = string_field(L, 1, "ca.mint", "dir", 1);
  spec.name = string_field(L, 1, "ca.mint", "name", 1);
  spec.common_name = string_field(L, 1, "ca.mint", "common_name", 0);

  int t = lua_getfield(L, 1, "days");
  if (t != LUA_TNIL) {
    if (!lua_isinteger(L, -1)) luaL_error(L, "ca.mint: days must be an integer");
    lua_Integer d = lua_tointeger(L, -1);
    if (d < 1 || d > 36500) luaL_error(L, "ca.mint: days must be between 1 and 36500");
    spec.days = (int)d;
  }
  lua_pop(L, 1);

  const char *key = string_field(L, 1, "ca.mint", "key", 0);
  if (!key || strcmp(key, "ec-p256") == 0) spec.key = CA_KEY_EC_P256;
  else if (strcmp(key, "rsa-2048") == 0) spec.key = CA_KEY_RSA_2048;
  else luaL_error(L, "ca.mint: key must be \"ec-p256\" or \"rsa-2048\", not \"%s\"", key);

  const char *format = string_field(L, 1, "ca.mint", "key_format", 0);
  if (!format) spec.key_format = CA_KEY_FORMAT_DEFAULT;
  else if (strcmp(format, "sec1") == 0) spec.key_format = CA_KEY_FORMAT_SEC1;
  else if (strcmp(format, "pkcs8") == 0) spec.key_format = CA_KEY_FORMAT_PKCS8;
  else luaL_error(L, "ca.mint: key_format must be \"sec1\" or \"pkcs8\", not \"%s\"", format);
  if (spec.key_format == CA_KEY_FORMAT_SEC1 && spec.key != CA_KEY_EC_P256)
    luaL_error(L, "ca.mint: key_format \"sec1\" needs key \"ec-p256\"");

  t = lua_getfield(L, 1, "overwrite");
  if (t != LUA_TNIL && t != LUA_TBOOLEAN) luaL_error(L, "ca.mint: overwrite must be a boolean");
  spec.overwrite = lua_toboolean(L, -1);
  lua_pop(L, 1);

  struct ca_minted out;
  struct ca_error err;
  if (ca_mint(&spec, &out, &err) < 0) return push_failure(L, &err);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, out.cert);
  lua_setfield(L, -2, "cert");
  lua_pushstring(L, out.key);
  lua_setfield(L, -2, "key");
  lua_pushstring(L, out.pem);
  lua_setfield(L, -2, "pem");
  lua_pushstring(L, out.fingerprint);
  lua_setfield(L, -2, "fingerprint_sha256");
  return 1;
}

static const char *const bundle_fields[] = {"out", "extra", "mode", NULL};

static int l_bundle(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lutil_check_fields(L, 1, "ca.bundle", bundle_fields);
  const char *out = string_field(L, 1, "ca.bundle", "out", 1);

  lua_Integer mode = 0644;
  int t = lua_getfield(L, 1, "mode");
  if (t != LUA_TNIL) {
    if (!lua_isinteger(L, -1)) luaL_error(L, "ca.bundle: mode must be an integer");
    mode = lua_tointeger(L, -1);
    if (mode < 0 || mode > 0777) luaL_error(L, "ca.bundle: mode out of range");
  }
  lua_pop(L, 1);

  /* The path array lives in a userdata; the strings stay referenced by the
   * extra table, which stays on the stack. */
  const char **extra = NULL;
  t = lua_getfield(L, 1, "extra");
  if (t == LUA_TTABLE) {
    int tbl = lua_gettop(L);
    lua_Integer n = luaL_len(L, tbl);
    if (n < 0 || n > 10000) luaL_error(L, "ca.bundle: extra has a bad length");
    extra = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
      if (lua_rawgeti(L, tbl, i) != LUA_TSTRING) luaL_error(L, "ca.bundle: extra[%d] must be a string", (int)i);
      extra[i - 1] = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
    extra[n] = NULL;
  } else if (t != LUA_TNIL) {
    luaL_error(L, "ca.bundle: extra must be a list of paths");
  }

  struct ca_error err;
  if (ca_bundle(out, extra, (mode_t)mode, &err) < 0) return push_failure(L, &err);
  lua_pushstring(L, out);
  return 1;
}

static int l_fingerprint(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char fp[CA_FINGERPRINT_SIZE];
  struct ca_error err;
  if (ca_fingerprint(path, fp, &err) < 0) return push_failure(L, &err);
  lua_pushstring(L, fp);
  return 1;
}

static int l_system_roots(lua_State *L) {
  char path[PATH_MAX];
  struct ca_error err;
  if (ca_system_roots(path, sizeof path, &err) < 0) return push_failure(L, &err);
  lua_pushstring(L, path);
  return 1;
}

static const luaL_Reg ca_funcs[] = {
    {"mint", l_mint},
    {"bundle", l_bundle},
    {"fingerprint", l_fingerprint},
    {"system_roots", l_system_roots},
    {NULL, NULL},
};

int luaopen_rt_ca(lua_State *L) {
  luaL_newlib(L, ca_funcs);
  return 1;
}
