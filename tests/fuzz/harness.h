/* harness.h: the shared body of the libFuzzer harnesses.
 *
 * Each harness defines FUZZ_LUA, a Lua chunk returning one function that
 * takes the input bytes. The chunk runs in a bottle Lua state (embedded
 * modules only: no user dir, no BOTTLE_PATH), so the parsers are driven
 * through the same entry points bottle itself calls. The function must
 * swallow every failure bottle expects (a bottle error, nil + message);
 * anything it lets through is a bug and aborts, so libFuzzer records the
 * input. Sanitizers catch the rest. */
#ifndef BOTTLE_FUZZ_HARNESS_H
#define BOTTLE_FUZZ_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "host.h"

static lua_State *fuzz_L;
static int fuzz_fn = LUA_NOREF;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setenv("XDG_CONFIG_HOME", "/nonexistent/bottle-fuzz", 1);
  unsetenv("BOTTLE_PATH");
  fuzz_L = host_new(NULL);
  if (!fuzz_L) abort();
  if (luaL_loadbuffer(fuzz_L, FUZZ_LUA, sizeof FUZZ_LUA - 1, "=fuzz") != LUA_OK ||
      lua_pcall(fuzz_L, 0, 1, 0) != LUA_OK || !lua_isfunction(fuzz_L, -1)) {
    fprintf(stderr, "fuzz: setup failed: %s\n", lua_tostring(fuzz_L, -1));
    abort();
  }
  fuzz_fn = luaL_ref(fuzz_L, LUA_REGISTRYINDEX);
  return 0;
}

static int fuzz_traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_L;
  lua_pushcfunction(L, fuzz_traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_fn);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
    fprintf(stderr, "fuzz: unexpected Lua error: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  /* Collect every time: libFuzzer's leak check compares mallocs and frees
   * per input, and garbage left for a later cycle would look like a leak
   * (and trigger a slow LeakSanitizer pass on most inputs). */
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

#endif
