/* l_term.c: rt.term, the terminal questions bottle asks.
 *
 *   rt.term.ask_secret(prompt) -> answer | nil (EOF) | nil, message
 *     Asks on /dev/tty with echo off (the `?` env values of a bottle), so
 *     the answer never shows on screen or in a scrollback. The terminal's
 *     settings are restored before returning, also when a signal arrives. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <lauxlib.h>

#include "bindings.h"
#include "host.h"
#include "l_util.h"
#include "util.h"

static int l_ask_secret(lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    lua_pushfstring(L, "cannot ask for a value: no terminal (%s)", strerror(e));
    return lutil_fail(L, lua_tostring(L, -1), errno_name(e));
  }
  struct termios saved, quiet;
  int have_tty = tcgetattr(fd, &saved) == 0;
  if (have_tty) {
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!write(fd, prompt, strlen(prompt));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int got_any = 0, eof = 0, interrupted = 0;
  for (;;) {
    char c;
    ssize_t r = read(fd, &c, 1);
    if (r < 0 && errno == EINTR) {
      if (host_pending_signal()) {
        interrupted = 1;
        break;
      }
      continue;
    }
    if (r <= 0) {
      eof = !got_any;
      break;
    }
    got_any = 1;
    if (c == '\n') break;
    if (c != '\r') luaL_addchar(&b, c);
  }
  if (have_tty) tcsetattr(fd, TCSAFLUSH, &saved);
  if (!have_tty || interrupted || eof) (void)!write(fd, "\n", 1);
  close(fd);
  luaL_pushresult(&b);
  if (interrupted) return host_raise_interrupt(L);
  if (eof) {
    lua_pushnil(L);
    return 1;
  }
  return 1;
}

static const luaL_Reg term_funcs[] = {
    {"ask_secret", l_ask_secret},
    {NULL, NULL},
};

int luaopen_rt_term(lua_State *L) {
  luaL_newlib(L, term_funcs);
  return 1;
}
