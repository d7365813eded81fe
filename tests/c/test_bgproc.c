/* test_bgproc.c: programs beside bottle (runtime/bgproc.c): start, wait,
 * stop, the log file, a missing program, our own executable. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgproc.h"
#include "tap.h"

static char dir[256];

static void test_stop_ends_a_running_program(void) {
  const char *argv[] = {"sleep", "30", NULL};
  struct proc_bg_spec spec = {.argv = argv};
  pid_t pid;
  CHECK_INT(proc_bg_start(&spec, &pid), 0);
  int code = -2;
  CHECK_INT(proc_bg_wait(pid, 0, &code), 0);
  CHECK_INT(proc_bg_wait(pid, 50, &code), 0);
  CHECK_INT(proc_bg_stop(pid, 2000), 128 + SIGTERM);
  CHECK(kill(pid, 0) < 0 && errno == ESRCH, "reaped");
}

static void test_a_program_that_ignores_sigterm_is_killed(void) {
  const char *argv[] = {"sh", "-c", "trap '' TERM; sleep 30", NULL};
  struct proc_bg_spec spec = {.argv = argv};
  pid_t pid;
  CHECK_INT(proc_bg_start(&spec, &pid), 0);
  usleep(100000);
  CHECK_INT(proc_bg_stop(pid, 100), 128 + SIGKILL);
}

static void test_output_goes_to_the_log_and_the_code_comes_back(void) {
  char log[300];
  snprintf(log, sizeof log, "%s/out.log", dir);
  const char *argv[] = {"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3", NULL};
  struct proc_bg_spec spec = {.argv = argv, .log_path = log};
  pid_t pid;
  CHECK_INT(proc_bg_start(&spec, &pid), 0);
  int code = -2;
  CHECK_INT(proc_bg_wait(pid, -1, &code), 1);
  CHECK_INT(code, 3);
  FILE *f = fopen(log, "r");
  char buf[256] = "";
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = '\0';
  if (f) fclose(f);
  CHECK(strstr(buf, "to-stdout") && strstr(buf, "to-stderr"), "log: %s", buf);
  struct stat st;
  CHECK(stat(log, &st) == 0 && (st.st_mode & 0777) == 0600, "the log is 0600");
}

static void test_a_missing_program_is_enoent(void) {
  const char *argv[] = {"bottle-no-such-program-xyz", NULL};
  struct proc_bg_spec spec = {.argv = argv};
  pid_t pid;
  errno = 0;
  CHECK_INT(proc_bg_start(&spec, &pid), -1);
  CHECK_INT(errno, ENOENT);
}

static void test_self_exe_names_this_program(void) {
  char path[4096];
  CHECK_INT(proc_self_exe(path, sizeof path), 0);
  CHECK(strstr(path, "test_bgproc") != NULL, "%s", path);
}

int main(void) {
  const char *base = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/bottle-test-bgproc.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(dir)) return 1;
  RUN(test_stop_ends_a_running_program);
  RUN(test_a_program_that_ignores_sigterm_is_killed);
  RUN(test_output_goes_to_the_log_and_the_code_comes_back);
  RUN(test_a_missing_program_is_enoent);
  RUN(test_self_exe_names_this_program);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return tap_done();
}
