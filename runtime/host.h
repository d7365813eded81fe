/* host.h: the Lua state bottle runs in.
 *
 * The host owns: the module search path (roots, then the embedded copy; never
 * ./?.lua, LUA_PATH or C modules from disk), the rt.* preloads, the signal
 * flag that turns SIGINT/SIGTERM/SIGHUP into a Lua error at the next
 * instruction, and the one protected call from main into bottle.cli. */
#ifndef BOTTLE_HOST_H
#define BOTTLE_HOST_H

#include <lua.h>

#define HOST_MAX_LUA_DIRS 32

struct host_opts {
  const char *lua_dirs[HOST_MAX_LUA_DIRS]; /* from --lua-dir, in order */
  int nlua_dirs;
};

lua_State *host_new(const struct host_opts *opts);
/* Calls require("bottle.cli").main(args) under a traceback handler and
 * returns the exit code it decides. */
int host_main(lua_State *L, int argc, char **argv);
/* lua_close (so __close/__gc run), then the runtime's own shutdown. */
void host_close(lua_State *L);

/* Signals. A primitive blocked in a system call polls host_pending_signal()
 * and gives up when it returns non-zero; the binding then raises with
 * host_raise_interrupt(). While interrupts are masked (cleanup running)
 * host_pending_signal() reports 0 so cleanup is never cut short. */
int host_pending_signal(void);
int host_first_signal(void);
void host_mask_interrupts(int delta);
int host_raise_interrupt(lua_State *L);
const char *host_signal_name(int sig);

#endif
