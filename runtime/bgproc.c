/* bgproc.c: see bgproc.h. */
#include "bgproc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __APPLE__
#include <mach-o/dyld.h>
#endif

#include "proc.h"

extern char **environ;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int proc_bg_start(const struct proc_bg_spec *spec, pid_t *pid) {
  const char *const *envp = spec->envp ? spec->envp : (const char *const *)environ;
  char path[PATH_MAX];
  if (proc_resolve(spec->argv[0], envp, path, sizeof path) < 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  const char *log = spec->log_path ? spec->log_path : "/dev/null";
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  proc_spawn_setup(&fa, &attr, 1);
  int rc = posix_spawn(pid, path, &fa, &attr, (char *const *)spec->argv, (char *const *)envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return 0;
}

int proc_bg_wait(pid_t pid, int timeout_ms, int *code) {
  long long until = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  int delay = 1;
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      *code = proc_decode_status(st);
      return 1;
    }
    if (r < 0 && errno != EINTR) {
      *code = -1; /* reaped elsewhere */
      return 1;
    }
    if (timeout_ms >= 0 && now_ms() >= until) return 0;
    poll(NULL, 0, delay);
    if (delay < 50) delay *= 2;
  }
}

int proc_bg_stop(pid_t pid, int grace_ms) {
  int code = -1;
  if (proc_bg_wait(pid, 0, &code)) return code;
  kill(-pid, SIGTERM);
  if (!proc_bg_wait(pid, grace_ms, &code)) {
    kill(-pid, SIGKILL);
    proc_bg_wait(pid, -1, &code);
  }
  /* Anything it left in its group goes too. */
  kill(-pid, SIGKILL);
  return code;
}

int proc_self_exe(char *out, size_t outsz) {
#if defined(__linux__)
  ssize_t n = readlink("/proc/self/exe", out, outsz - 1);
  if (n <= 0 || (size_t)n >= outsz - 1) return -1;
  out[n] = '\0';
  return 0;
#elif defined(__APPLE__)
  char raw[PATH_MAX];
  uint32_t rsize = sizeof raw;
  if (outsz < PATH_MAX || _NSGetExecutablePath(raw, &rsize) != 0 || !realpath(raw, out)) return -1;
  return 0;
#else
  (void)out;
  (void)outsz;
  errno = ENOSYS;
  return -1;
#endif
}
