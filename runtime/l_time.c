/* l_time.c: rt.time.
 *
 *   rt.time.now_ms()    monotonic milliseconds (float), for durations
 *   rt.time.wall()      seconds since the epoch (integer)
 *   rt.time.sleep_ms(n) sleeps; a pending signal interrupts it (raises) */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include <lauxlib.h>

#include "bindings.h"
#include "host.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int l_now_ms(lua_State *L) {
  lua_pushnumber(L, now_ms());
  return 1;
}

static int l_wall(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)time(NULL));
  return 1;
}

static int l_sleep_ms(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  double until = now_ms() + ms;
  for (;;) {
    if (host_pending_signal()) return host_raise_interrupt(L);
    double left = until - now_ms();
    if (left <= 0) break;
    poll(NULL, 0, left > 100 ? 100 : (int)left + 1);
  }
  return 0;
}

static const luaL_Reg time_funcs[] = {
    {"now_ms", l_now_ms},
    {"wall", l_wall},
    {"sleep_ms", l_sleep_ms},
    {NULL, NULL},
};

int luaopen_rt_time(lua_State *L) {
  luaL_newlib(L, time_funcs);
  return 1;
}
