/* main.c: argv -> one protected Lua entry (bottle.cli.main) -> exit code.
 *
 * The only option read here is --lua-dir, because it decides where
 * bottle.cli itself is loaded from; bottle.cli parses everything else.
 * `bottle __relay ...` (the host side of a guest's sockets, started and
 * stopped by a launch) is plain C and never starts Lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "host.h"
#include "log.h"
#include "relay.h"

/* --lua-dir may come anywhere before `--` (bottle.cli accepts it there too);
 * words after `--` belong to the agent's command. */
static int collect_lua_dirs(int argc, char **argv, struct host_opts *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) break;
    const char *dir = NULL;
    if (strcmp(a, "--lua-dir") == 0) {
      if (i + 1 >= argc) break; /* bottle.cli reports the missing value */
      dir = argv[++i];
    } else if (strncmp(a, "--lua-dir=", 10) == 0) {
      dir = a + 10;
    }
    if (dir) {
      if (o->nlua_dirs >= HOST_MAX_LUA_DIRS) {
        fprintf(stderr, "bottle: too many --lua-dir options (at most %d)\n", HOST_MAX_LUA_DIRS);
        return -1;
      }
      o->lua_dirs[o->nlua_dirs++] = dir;
    }
  }
  return 0;
}

/* Peak RSS of this address space in KiB, or -1. Linux's ru_maxrss is kept
 * across execve, so it reports the process that exec'd bottle when that
 * one was bigger (a forked Python, say); VmHWM starts afresh with the new
 * image. */
static long own_peak_rss_kb(void) {
#ifdef __linux__
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
#else
  return -1;
#endif
}

/* BOTTLE_STATS=1: bottle's own cost on stderr at exit (children excluded),
 * for bench/launch. */
static void print_stats(void) {
  const char *want = getenv("BOTTLE_STATS");
  if (!want || !*want || strcmp(want, "0") == 0) return;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return;
  long cpu_us = (long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + (long)ru.ru_utime.tv_usec +
                (long)ru.ru_stime.tv_usec;
#ifdef __APPLE__
  long rss_kb = (long)(ru.ru_maxrss / 1024); /* bytes there, KiB on Linux */
#else
  long rss_kb = own_peak_rss_kb();
  if (rss_kb < 0) rss_kb = (long)ru.ru_maxrss;
#endif
  fprintf(stderr, "bottle-stats: cpu_us=%ld maxrss_kb=%ld\n", cpu_us, rss_kb);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "__relay") == 0) return relay_main("bottle __relay", argc - 2, argv + 2);
  struct host_opts opts;
  memset(&opts, 0, sizeof opts);
  if (collect_lua_dirs(argc, argv, &opts) < 0) return 2;
  lua_State *L = host_new(&opts);
  if (!L) {
    fprintf(stderr, "bottle: cannot create the Lua state (out of memory)\n");
    return 1;
  }
  int code = host_main(L, argc, argv);
  host_close(L);
  print_stats();
  return code;
}
