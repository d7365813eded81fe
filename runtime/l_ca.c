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

static int push_failure(lua_State *L, const struct ca_error *err) { return lutil_fail(L, err->message, err->code); }

static const char *const mint_fields[] = {"dir", "name", "common_name", "days", "key", "key_format", "overwrite", NULL};

static int l_mint(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lutil_check_fields(L, 1, "ca.mint", mint_fields);
  struct ca_mint_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dir = lutil_req_str(L, 1, "ca.mint", "dir");
  spec.name = lutil_req_str(L, 1, "ca.mint", "name");
  spec.common_name = lutil_opt_str(L, 1, "ca.mint", "common_name");

  lua_Integer days = lutil_opt_int(L, 1, "ca.mint", "days", LUA_MININTEGER);
  if (days != LUA_MININTEGER && (days < 1 || days > 36500))
    luaL_error(L, "ca.mint: days must be between 1 and 36500");
  spec.days = days == LUA_MININTEGER ? 0 : (int)days;

  const char *key = lutil_opt_str(L, 1, "ca.mint", "key");
  if (!key || strcmp(key, "ec-p256") == 0) spec.key = CA_KEY_EC_P256;
  else if (strcmp(key, "rsa-2048") == 0) spec.key = CA_KEY_RSA_2048;
  else luaL_error(L, "ca.mint: key must be \"ec-p256\" or \"rsa-2048\", not \"%s\"", key);

  const char *format = lutil_opt_str(L, 1, "ca.mint", "key_format");
  if (!format) spec.key_format = CA_KEY_FORMAT_DEFAULT;
  else if (strcmp(format, "sec1") == 0) spec.key_format = CA_KEY_FORMAT_SEC1;
  else if (strcmp(format, "pkcs8") == 0) spec.key_format = CA_KEY_FORMAT_PKCS8;
  else luaL_error(L, "ca.mint: key_format must be \"sec1\" or \"pkcs8\", not \"%s\"", format);
  if (spec.key_format == CA_KEY_FORMAT_SEC1 && spec.key != CA_KEY_EC_P256)
    luaL_error(L, "ca.mint: key_format \"sec1\" needs key \"ec-p256\"");
  spec.overwrite = lutil_opt_bool(L, 1, "ca.mint", "overwrite", 0);

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
  const char *out = lutil_req_str(L, 1, "ca.bundle", "out");

  lua_Integer mode = lutil_opt_int(L, 1, "ca.bundle", "mode", 0644);
  if (mode < 0 || mode > 0777) luaL_error(L, "ca.bundle: mode out of range");
  const char **extra = lutil_opt_list(L, 1, "ca.bundle", "extra");

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
