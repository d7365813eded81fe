/* host.c: the Lua state, its module search path, signals and rt.host.
 *
 * Search order for a module, first match wins:
 *   1. each --lua-dir DIR, then each BOTTLE_PATH entry;
 *   2. the user dir ${XDG_CONFIG_HOME:-~/.config}/bottle;
 *   3. the install share dir (BOTTLE_SHAREDIR);
 *   4. the copy embedded in the binary (chunk name @builtin/<path>).
 * Every root has the layout of the source tree: module `bottle.smolvm` is
 * lua/bottle/smolvm.lua and module `recipes.steps.ca` is recipes/steps/ca.lua.
 * Only Lua source is loaded (mode "t"); there is no C loader, no ./?.lua and
 * no LUA_PATH. */
#include "host.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bindings.h"
#include "embed.h"
#include "log.h"
#include "secret.h"

/* ---- roots ------------------------------------------------------------ */

#define MAX_ROOTS (HOST_MAX_LUA_DIRS + 40)
struct root {
  char *dir;
  const char *kind; /* "lua-dir", "BOTTLE_PATH", "user", "share" */
};
static struct root roots[MAX_ROOTS];
static int nroots;
/* Off while a scenario runs: a test of the built-in recipes must not pick
 * up the user's ejected copies (rt.host.user_roots). */
static int use_user_roots = 1;

static int root_active(int r) {
  return use_user_roots ||
         (strcmp(roots[r].kind, "user") != 0 && strcmp(roots[r].kind, "BOTTLE_PATH") != 0);
}

static void add_root(const char *dir, size_t len, const char *kind) {
  if (nroots >= MAX_ROOTS || len == 0) return;
  char *d = malloc(len + 1);
  if (!d) return;
  memcpy(d, dir, len);
  d[len] = '\0';
  while (len > 1 && d[len - 1] == '/') d[--len] = '\0';
  roots[nroots].dir = d;
  roots[nroots].kind = kind;
  nroots++;
}

static void setup_roots(const struct host_opts *opts) {
  for (int i = 0; opts && i < opts->nlua_dirs; i++)
    add_root(opts->lua_dirs[i], strlen(opts->lua_dirs[i]), "lua-dir");
  const char *bp = getenv("BOTTLE_PATH");
  while (bp && *bp) {
    const char *colon = strchr(bp, ':');
    size_t len = colon ? (size_t)(colon - bp) : strlen(bp);
    add_root(bp, len, "BOTTLE_PATH");
    if (!colon) break;
    bp = colon + 1;
  }
  char buf[4096];
  const char *xdg = getenv("XDG_CONFIG_HOME");
  const char *home = getenv("HOME");
  int n = -1;
  if (xdg && *xdg == '/') n = snprintf(buf, sizeof buf, "%s/bottle", xdg);
  else if (home && *home) n = snprintf(buf, sizeof buf, "%s/.config/bottle", home);
  if (n > 0 && (size_t)n < sizeof buf) add_root(buf, (size_t)n, "user");
  add_root(BOTTLE_SHAREDIR, strlen(BOTTLE_SHAREDIR), "share");
}

static void free_roots(void) {
  for (int i = 0; i < nroots; i++) free(roots[i].dir);
  nroots = 0;
}

/* Module name -> source-tree path candidates. Returns the number written. */
static int tree_paths(const char *mod, char out[2][512]) {
  size_t len = strlen(mod);
  if (len == 0 || len > 200) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = mod[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
             c == '-' || c == '.';
    if (!ok || (c == '.' && (i == 0 || i == len - 1 || mod[i + 1] == '.'))) return 0;
  }
  char rel[256];
  snprintf(rel, sizeof rel, "%s", mod);
  for (char *p = rel; *p; p++)
    if (*p == '.') *p = '/';
  if (strncmp(mod, "recipes.", 8) == 0) {
    snprintf(out[0], 512, "%s.lua", rel);
    return 1;
  }
  snprintf(out[0], 512, "lua/%s.lua", rel);
  snprintf(out[1], 512, "lua/%s/init.lua", rel);
  return 2;
}

static const struct embed_file *find_builtin(const char *tree_path) {
  for (size_t i = 0; i < embed_count; i++)
    if (strcmp(embed_files[i].path, tree_path) == 0) return &embed_files[i];
  return NULL;
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Finds a module. On success pushes nothing and fills either *file (a disk
 * path, in buf) or *builtin. Returns 0 when found. `tried` collects the
 * places looked at for the error message. */
static int locate(const char *mod, char *buf, size_t bufsz, const struct embed_file **builtin,
                  const char **kind, luaL_Buffer *tried) {
  char cands[2][512];
  int nc = tree_paths(mod, cands);
  *builtin = NULL;
  for (int r = 0; r < nroots; r++)
    for (int c = 0; c < nc && root_active(r); c++) {
      snprintf(buf, bufsz, "%s/%s", roots[r].dir, cands[c]);
      if (is_file(buf)) {
        *kind = roots[r].kind;
        return 0;
      }
      if (tried) {
        luaL_addstring(tried, "\n\tno file '");
        luaL_addstring(tried, buf);
        luaL_addstring(tried, "'");
      }
    }
  for (int c = 0; c < nc; c++) {
    const struct embed_file *e = find_builtin(cands[c]);
    if (e) {
      *builtin = e;
      *kind = "builtin";
      snprintf(buf, bufsz, "%s", e->path);
      return 0;
    }
  }
  if (tried) {
    luaL_addstring(tried, "\n\tno built-in module '");
    luaL_addstring(tried, mod);
    luaL_addstring(tried, "'");
  }
  return -1;
}

static int load_file_source(lua_State *L, const char *path, const char *chunkname) {
  FILE *f = fopen(path, "rb");
  if (!f) return luaL_error(L, "cannot open %s: %s", path, strerror(errno));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) luaL_addlstring(&b, chunk, n);
  int err = ferror(f);
  fclose(f);
  if (err) return luaL_error(L, "cannot read %s", path);
  luaL_pushresult(&b);
  size_t len;
  const char *src = lua_tolstring(L, -1, &len);
  int rc = luaL_loadbufferx(L, src, len, chunkname, "t");
  lua_remove(L, -2);
  return rc;
}

/* Loads module `mod` as a chunk; pushes the function and its origin string
 * ("@path" chunk name without the @). Returns 0, or -1 with a message pushed
 * when missing, or raises on a syntax error. */
static int load_module(lua_State *L, const char *mod) {
  char path[4096];
  const struct embed_file *builtin;
  const char *kind;
  luaL_Buffer tried;
  luaL_buffinit(L, &tried);
  if (locate(mod, path, sizeof path, &builtin, &kind, &tried) < 0) {
    luaL_pushresult(&tried);
    return -1;
  }
  luaL_pushresult(&tried);
  lua_pop(L, 1);
  char chunkname[4200];
  int rc;
  if (builtin) {
    snprintf(chunkname, sizeof chunkname, "@builtin/%s", builtin->path);
    rc = luaL_loadbufferx(L, builtin->data, builtin->len, chunkname, "t");
  } else {
    snprintf(chunkname, sizeof chunkname, "@%s", path);
    rc = load_file_source(L, path, chunkname);
  }
  if (rc != LUA_OK) return lua_error(L);
  lua_pushstring(L, chunkname + 1);
  return 0;
}

static int searcher(lua_State *L) {
  const char *mod = luaL_checkstring(L, 1);
  if (load_module(L, mod) < 0) return 1; /* the "tried" message */
  return 2;
}

/* ---- signals ---------------------------------------------------------- */

static volatile sig_atomic_t first_signal, pending_signal, mask_depth;
static lua_State *main_L;

const char *host_signal_name(int sig) {
  switch (sig) {
  case SIGINT: return "SIGINT";
  case SIGTERM: return "SIGTERM";
  case SIGHUP: return "SIGHUP";
  default: return "signal";
  }
}

int host_raise_interrupt(lua_State *L) {
  int sig = pending_signal ? pending_signal : first_signal;
  pending_signal = 0;
  return luaL_error(L, "interrupted by %s", host_signal_name(sig));
}

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (mask_depth > 0 || !pending_signal) return;
  host_raise_interrupt(L);
}

static void arm_hook(void) {
  if (main_L) lua_sethook(main_L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void on_signal(int sig) {
  if (!first_signal) first_signal = sig;
  pending_signal = sig;
  if (mask_depth == 0) arm_hook();
}

int host_pending_signal(void) { return mask_depth > 0 ? 0 : pending_signal; }
int host_first_signal(void) { return first_signal; }

void host_mask_interrupts(int delta) {
  mask_depth += delta;
  if (mask_depth < 0) mask_depth = 0;
  /* A signal that arrived during cleanup interrupts what runs next. */
  if (mask_depth == 0 && pending_signal) arm_hook();
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* ---- rt.host ------------------------------------------------------------ */

static int l_roots(lua_State *L) {
  lua_createtable(L, nroots, 0);
  for (int i = 0, n = 0; i < nroots; i++) {
    if (!root_active(i)) continue;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, roots[i].dir);
    lua_setfield(L, -2, "dir");
    lua_pushstring(L, roots[i].kind);
    lua_setfield(L, -2, "kind");
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* user_roots([on]) -> whether the user dir and BOTTLE_PATH were searched
 * before; with a boolean, turns them on or off. */
static int l_user_roots(lua_State *L) {
  int was = use_user_roots;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    use_user_roots = lua_toboolean(L, 1);
  }
  lua_pushboolean(L, was);
  return 1;
}

/* locate(mod) -> {path=, kind=, builtin=bool, tree=} | nil, tried */
static int l_locate(lua_State *L) {
  const char *mod = luaL_checkstring(L, 1);
  char path[4096];
  const struct embed_file *builtin;
  const char *kind;
  luaL_Buffer tried;
  luaL_buffinit(L, &tried);
  if (locate(mod, path, sizeof path, &builtin, &kind, &tried) < 0) {
    luaL_pushresult(&tried);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  luaL_pushresult(&tried);
  lua_pop(L, 1);
  char cands[2][512];
  tree_paths(mod, cands);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, path);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushboolean(L, builtin != NULL);
  lua_setfield(L, -2, "builtin");
  lua_pushstring(L, builtin ? builtin->path : cands[0]);
  lua_setfield(L, -2, "tree");
  return 1;
}

/* load(mod [, env]) -> chunk, origin | nil, message. With env, the chunk's
 * first upvalue (_ENV) is replaced so the module runs in its own
 * environment (recipes do). */
static int l_load(lua_State *L) {
  const char *mod = luaL_checkstring(L, 1);
  int has_env = !lua_isnoneornil(L, 2);
  if (load_module(L, mod) < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "module '%s' not found:%s", mod, lua_tostring(L, -2));
    return 2;
  }
  if (has_env) {
    lua_pushvalue(L, 2);
    if (!lua_setupvalue(L, -3, 1)) lua_pop(L, 1);
  }
  return 2;
}

static int l_tree_path(lua_State *L) {
  char cands[2][512];
  if (tree_paths(luaL_checkstring(L, 1), cands) == 0) return 0;
  lua_pushstring(L, cands[0]);
  return 1;
}

static int l_builtins(lua_State *L) {
  lua_createtable(L, (int)embed_count, 0);
  for (size_t i = 0; i < embed_count; i++) {
    lua_pushstring(L, embed_files[i].path);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_builtin_source(lua_State *L) {
  const struct embed_file *e = find_builtin(luaL_checkstring(L, 1));
  if (!e) return 0;
  lua_pushlstring(L, e->data, e->len);
  return 1;
}

/* signal() -> first signal number received (0 if none), its name */
static int l_signal(lua_State *L) {
  lua_pushinteger(L, first_signal);
  lua_pushstring(L, first_signal ? host_signal_name(first_signal) : "");
  return 2;
}

/* reset_signal(): forget received signals (the scenario runner starts each
 * scenario afresh). */
static int l_reset_signal(lua_State *L) {
  (void)L;
  first_signal = 0;
  pending_signal = 0;
  return 0;
}

/* raise(sig): delivers a signal to this process, as a user's kill(1) would. */
static int l_raise(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int sig = strcmp(name, "SIGINT") == 0 ? SIGINT
            : strcmp(name, "SIGTERM") == 0 ? SIGTERM
            : strcmp(name, "SIGHUP") == 0 ? SIGHUP
                                          : 0;
  if (!sig) return luaL_argerror(L, 1, "expected SIGINT, SIGTERM or SIGHUP");
  kill(getpid(), sig);
  return 0;
}

/* push_root(dir): searches dir first from now on (the scenario runner gives
 * each scenario its own user files); pop_root() undoes the last push. */
static int l_push_root(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  if (nroots >= MAX_ROOTS) return luaL_error(L, "too many module roots");
  memmove(&roots[1], &roots[0], sizeof roots[0] * (size_t)nroots);
  char *d = strdup(dir);
  if (!d) return luaL_error(L, "out of memory");
  roots[0].dir = d;
  roots[0].kind = "lua-dir";
  nroots++;
  return 0;
}

static int l_pop_root(lua_State *L) {
  (void)L;
  if (nroots == 0) return 0;
  free(roots[0].dir);
  memmove(&roots[0], &roots[1], sizeof roots[0] * (size_t)(nroots - 1));
  nroots--;
  return 0;
}

/* mask(delta): cleanup code runs with interrupts masked. */
static int l_mask(lua_State *L) {
  host_mask_interrupts((int)luaL_checkinteger(L, 1));
  return 0;
}

/* drop_pending(): forget a signal that arrived while interrupts were masked
 * (it still decides the exit code through signal()). */
static int l_drop_pending(lua_State *L) {
  (void)L;
  pending_signal = 0;
  return 0;
}

static int l_check_interrupt(lua_State *L) {
  if (host_pending_signal()) return host_raise_interrupt(L);
  return 0;
}

static const luaL_Reg host_funcs[] = {
    {"roots", l_roots},
    {"user_roots", l_user_roots},
    {"locate", l_locate},
    {"load", l_load},
    {"tree_path", l_tree_path},
    {"builtins", l_builtins},
    {"builtin_source", l_builtin_source},
    {"signal", l_signal},
    {"reset_signal", l_reset_signal},
    {"raise", l_raise},
    {"mask", l_mask},
    {"push_root", l_push_root},
    {"pop_root", l_pop_root},
    {"check_interrupt", l_check_interrupt},
    {"drop_pending", l_drop_pending},
    {NULL, NULL},
};

int luaopen_rt_host(lua_State *L) {
  luaL_newlib(L, host_funcs);
  lua_pushstring(L, BOTTLE_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, BOTTLE_SHAREDIR);
  lua_setfield(L, -2, "sharedir");
#ifdef __APPLE__
  lua_pushstring(L, "darwin");
#elif defined(__linux__)
  lua_pushstring(L, "linux");
#else
  lua_pushstring(L, "unix");
#endif
  lua_setfield(L, -2, "os");
  return 1;
}

/* ---- state ------------------------------------------------------------ */

static const luaL_Reg preloads[] = {
    {"rt.host", luaopen_rt_host},
    {"rt.proc", luaopen_rt_proc},
    {"rt.defer", luaopen_rt_defer},
    {"rt.fs", luaopen_rt_fs},
    {"rt.log", luaopen_rt_log},
    {"rt.time", luaopen_rt_time},
    {"rt.term", luaopen_rt_term},
    {"rt.ca", luaopen_rt_ca},
    {"rt.net", luaopen_rt_net},
    {"rt.yaml", luaopen_rt_yaml},
    {"rt.docker", luaopen_rt_docker},
    {"cjson", luaopen_cjson},
    {NULL, NULL},
};

static int on_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  log_printf(LOG_ERROR, "fatal: unprotected Lua error: %s", msg ? msg : "(not a string)");
  return 0; /* Lua then aborts */
}

lua_State *host_new(const struct host_opts *opts) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  lua_atpanic(L, on_panic);
  luaL_openlibs(L);
  setup_roots(opts);

  /* package: our searcher only; no C loading, no path-based loading. */
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pushnil(L);
  lua_setfield(L, -2, "loadlib");
  lua_getfield(L, -1, "preload");
  for (const luaL_Reg *p = preloads; p->name; p++) {
    lua_pushcfunction(L, p->func);
    lua_setfield(L, -2, p->name);
  }
  lua_pop(L, 1);
  lua_createtable(L, 2, 0);
  lua_getfield(L, -2, "searchers");
  lua_rawgeti(L, -1, 1); /* the preload searcher */
  lua_rawseti(L, -3, 1);
  lua_pop(L, 1);
  lua_pushcfunction(L, searcher);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, -2, "searchers");
  lua_pop(L, 1);

  main_L = L;
  install_signals();
  return L;
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int host_main(lua_State *L, int argc, char **argv) {
  lua_pushcfunction(L, traceback);
  int base = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "bottle.cli");
  int rc = lua_pcall(L, 1, 1, base);
  if (rc == LUA_OK) {
    lua_getfield(L, -1, "main");
    lua_remove(L, -2);
    lua_createtable(L, argc, 0);
    for (int i = 1; i < argc; i++) {
      lua_pushstring(L, argv[i]);
      lua_rawseti(L, -2, i);
    }
    rc = lua_pcall(L, 1, 1, base);
  }
  int code;
  if (rc != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    log_printf(LOG_ERROR, "%s", msg ? msg : "unknown error");
    code = first_signal ? 128 + first_signal : 1;
  } else {
    code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  }
  lua_settop(L, base - 1);
  return code;
}

void host_close(lua_State *L) {
  host_mask_interrupts(1); /* __gc finalizers run cleanups to the end */
  lua_close(L);
  main_L = NULL;
  free_roots();
  log_shutdown();
  secret_clear();
}
