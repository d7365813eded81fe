/* Unit tests for pidinfo.c: which program a pid runs, and a pid the system
 * has handed to another program after its owner died. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pidinfo.h"
#include "tap.h"

extern char **environ;

static char tmpdir[256];

static void nap_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Starts `path` with argv (argv[0] as given, so it may lie about the
 * program) and waits until the kernel shows the new image, not our fork. */
static pid_t start(const char *path, char *const argv[], const char *want) {
  pid_t pid;
  if (posix_spawn(&pid, path, NULL, NULL, argv, environ) != 0) return -1;
  char got[256];
  for (int i = 0; i < 200; i++) {
    if (pid_program(pid, got, sizeof got) == 0 && strcmp(got, want) == 0) break;
    nap_ms(10);
  }
  return pid;
}

static void stop(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static const char *sleep_path(void) {
  static const char *const cands[] = {"/bin/sleep", "/usr/bin/sleep", NULL};
  for (int i = 0; cands[i]; i++)
    if (access(cands[i], X_OK) == 0) return cands[i];
  return NULL;
}

/* A copy of sleep under the file name `name` in tmpdir. */
static int copy_as(const char *src, const char *name, char *out, size_t outsz) {
  snprintf(out, outsz, "%s/%s", tmpdir, name);
  int in = open(src, O_RDONLY);
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0755);
  if (in < 0 || fd < 0) {
    if (in >= 0) close(in);
    if (fd >= 0) close(fd);
    return -1;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while ((n = read(in, buf, sizeof buf)) > 0)
    if (write(fd, buf, (size_t)n) != n) rc = -1;
  close(in);
  if (close(fd) != 0) rc = -1;
  return rc;
}

static void test_own_program(void) {
  char got[256];
  CHECK_INT(pid_program(getpid(), got, sizeof got), 0);
  CHECK_STR(got, "test_pidinfo");
  CHECK_INT(pid_runs(getpid(), "test_pidinfo"), PID_RUNS);
  CHECK_INT(pid_runs(getpid(), "bottle"), PID_OTHER);
  CHECK_INT(pid_runs_bottle(getpid()), PID_RUNS); /* our own name counts */
}

static void test_no_such_pid(void) {
  char got[256];
  CHECK_INT(pid_runs(0, "sleep"), PID_GONE);
  CHECK_INT(pid_runs(-1, "sleep"), PID_GONE);
  errno = 0;
  CHECK_INT(pid_program(0, got, sizeof got), -1);
  CHECK_INT(errno, ESRCH);
  /* a pid that just ended and was reaped */
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, NULL, 0);
  CHECK_INT(pid_runs(pid, "test_pidinfo"), PID_GONE);
  CHECK_INT(pid_runs_bottle(pid), PID_GONE);
}

static void test_another_program(void) {
  const char *sl = sleep_path();
  if (!sl) SKIP("no sleep binary");
  char *const argv[] = {"sleep", "30", NULL};
  pid_t pid = start(sl, argv, "sleep");
  CHECK(pid > 0, "spawn sleep");
  if (pid <= 0) return;
  char got[256];
  CHECK_INT(pid_program(pid, got, sizeof got), 0);
  CHECK_STR(got, "sleep");
  CHECK_INT(pid_runs(pid, "sleep"), PID_RUNS);
  CHECK_INT(pid_runs(pid, "bottle"), PID_OTHER);
  CHECK_INT(pid_runs_bottle(pid), PID_OTHER);
  stop(pid);
}

/* The reused pid: a process whose command line says "bottle" (argv[0] and
 * an argument) while its executable is another program. */
static void test_command_line_is_not_the_program(void) {
  const char *sl = sleep_path();
  if (!sl) SKIP("no sleep binary");
  char *const argv[] = {"/usr/local/bin/bottle", "30", NULL};
  pid_t pid = start(sl, argv, "sleep");
  CHECK(pid > 0, "spawn sleep as bottle");
  if (pid <= 0) return;
  CHECK_INT(pid_runs_bottle(pid), PID_OTHER);
  stop(pid);
}

static void test_a_bottle_executable(void) {
  const char *sl = sleep_path();
  if (!sl) SKIP("no sleep binary");
  char path[512];
  CHECK_INT(copy_as(sl, "bottle", path, sizeof path), 0);
  char *const argv[] = {"something-else", "30", NULL};
  pid_t pid = start(path, argv, "bottle");
  CHECK(pid > 0, "spawn the copy");
  if (pid <= 0) return;
  CHECK_INT(pid_runs_bottle(pid), PID_RUNS);
  CHECK_INT(pid_runs(pid, "bottle"), PID_RUNS);
  /* removed while it runs (a rebuild): still the same program */
  unlink(path);
  CHECK_INT(pid_runs_bottle(pid), PID_RUNS);
  stop(pid);
}

static void test_exited_but_not_reaped(void) {
  const char *sl = sleep_path();
  if (!sl) SKIP("no sleep binary");
  char *const argv[] = {"sleep", "30", NULL};
  pid_t pid = start(sl, argv, "sleep");
  CHECK(pid > 0, "spawn sleep");
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  /* a zombie until waited for: kill(pid, 0) still succeeds */
  int gone = 0;
  for (int i = 0; i < 200 && !gone; i++) {
    gone = pid_runs(pid, "sleep") == PID_GONE;
    if (!gone) nap_ms(10);
  }
  CHECK(gone, "a zombie has exited");
  CHECK_INT(kill(pid, 0), 0);
  waitpid(pid, NULL, 0);
}

static void test_name_too_long_for_the_buffer(void) {
  char got[4];
  errno = 0;
  CHECK_INT(pid_program(getpid(), got, sizeof got), -1);
  CHECK_INT(errno, ENAMETOOLONG);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/pidinfo-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_own_program);
  RUN(test_no_such_pid);
  RUN(test_another_program);
  RUN(test_command_line_is_not_the_program);
  RUN(test_a_bottle_executable);
  RUN(test_exited_but_not_reaped);
  RUN(test_name_too_long_for_the_buffer);
  rmdir(tmpdir);
  return tap_done();
}
