/* Unit tests for proc.c (spawn, capture, timeout, status decoding). */
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "tap.h"

/* Alive and not a zombie waiting for a reaper. */
static int alive(int pid) {
  if (kill(pid, 0) != 0) return 0;
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *close_paren = strrchr(buf, ')');
  return !(close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z');
}

static struct proc_result run_argv(const char *const *argv, const char *const *envp, const char *input,
                                   int timeout_ms) {
  struct proc_spec s = {0};
  s.argv = argv;
  s.envp = envp;
  s.input = input;
  s.input_len = input ? strlen(input) : 0;
  s.timeout_ms = timeout_ms;
  struct proc_result r;
  proc_run(&s, &r);
  return r;
}

static void test_capture_separately(void) {
  const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
  struct proc_result r = run_argv(argv, NULL, NULL, 0);
  CHECK_INT(r.status, PROC_EXITED);
  CHECK_INT(r.code, 3);
  CHECK_STR(r.out, "out\n");
  CHECK_STR(r.err, "err\n");
  proc_result_free(&r);
}

static void test_stdin_fed(void) {
  const char *argv[] = {"cat", NULL};
  struct proc_result r = run_argv(argv, NULL, "hello\nworld", 0);
  CHECK_INT(r.code, 0);
  CHECK_STR(r.out, "hello\nworld");
  proc_result_free(&r);
}

static void test_large_stdin_and_output(void) {
  size_t n = 3 << 20;
  char *big = malloc(n + 1);
  memset(big, 'x', n);
  big[n] = '\0';
  const char *argv[] = {"cat", NULL};
  struct proc_result r = run_argv(argv, NULL, big, 0);
  CHECK_INT(r.code, 0);
  CHECK_INT(r.out_len, n);
  proc_result_free(&r);
  free(big);
}

static void test_explicit_env_only(void) {
  const char *argv[] = {"/bin/sh", "-c", "echo \"$ONLY:$HOME\"", NULL};
  const char *envp[] = {"ONLY=yes", "PATH=/usr/bin:/bin", NULL};
  struct proc_result r = run_argv(argv, envp, NULL, 0);
  CHECK_STR(r.out, "yes:\n");
  proc_result_free(&r);
}

static void test_not_found(void) {
  const char *argv[] = {"no-such-program-bottle", NULL};
  struct proc_result r = run_argv(argv, NULL, NULL, 0);
  CHECK_INT(r.status, PROC_NOT_FOUND);
  CHECK_INT(r.code, -1);
  proc_result_free(&r);
}

static void test_sigkill_reads_137(void) {
  const char *argv[] = {"sh", "-c", "kill -9 $$", NULL};
  struct proc_result r = run_argv(argv, NULL, NULL, 0);
  CHECK_INT(r.status, PROC_EXITED);
  CHECK_INT(r.code, 137);
  proc_result_free(&r);
}

/* The grandchild writes its pid and sleeps; after the timeout it must be
 * gone too (the whole process group is killed). */
static void test_timeout_kills_group(void) {
  char dir[] = "/tmp/bottle-proc-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char script[512];
  snprintf(script, sizeof script, "sh -c 'echo $$ > %s/gc; sleep 30' & wait", dir);
  const char *argv[] = {"sh", "-c", script, NULL};
  struct proc_result r = run_argv(argv, NULL, NULL, 300);
  CHECK_INT(r.status, PROC_TIMEOUT);
  proc_result_free(&r);
  char path[600];
  snprintf(path, sizeof path, "%s/gc", dir);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL, "grandchild never started");
  if (f) {
    int pid = 0;
    CHECK(fscanf(f, "%d", &pid) == 1);
    fclose(f);
    usleep(100 * 1000);
    CHECK(pid > 0 && !alive(pid), "grandchild %d still alive", pid);
    unlink(path);
  }
  rmdir(dir);
}

/* A background daemon holding stdout open must not hang the caller. */
static void test_background_child_does_not_hang(void) {
  const char *argv[] = {"sh", "-c", "sleep 5 & echo started", NULL};
  struct proc_result r = run_argv(argv, NULL, NULL, 3000);
  CHECK_INT(r.status, PROC_EXITED);
  CHECK_STR(r.out, "started\n");
  if (r.pid > 0) kill(-r.pid, SIGKILL);
  proc_result_free(&r);
}

/* An interactive child shares our process group: the timeout must still
 * kill it, not wait for it to end by itself. */
static void test_interactive_timeout(void) {
  struct proc_spec s = {0};
  const char *argv[] = {"sleep", "5", NULL};
  s.argv = argv;
  s.interactive = 1;
  s.timeout_ms = 200;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  struct proc_result r;
  proc_run(&s, &r);
  clock_gettime(CLOCK_MONOTONIC, &b);
  long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
  CHECK_INT(r.status, PROC_TIMEOUT);
  CHECK(ms < 2000, "took %ld ms", ms);
  proc_result_free(&r);
}

static int always_sigterm(void) { return SIGTERM; }

static void test_pending_signal_stops_child(void) {
  struct proc_spec s = {0};
  const char *argv[] = {"sleep", "30", NULL};
  s.argv = argv;
  s.pending_signal = always_sigterm;
  struct proc_result r;
  proc_run(&s, &r);
  CHECK_INT(r.status, PROC_INTERRUPTED);
  CHECK_INT(r.signal, SIGTERM);
  proc_result_free(&r);
}

static void test_no_fd_leaks_into_child(void) {
  FILE *f = fopen("/dev/null", "r"); /* not close-on-exec */
  const char *argv[] = {"sh", "-c", "ls /proc/self/fd 2>/dev/null | wc -l || echo 4", NULL};
  struct proc_result r = run_argv(argv, NULL, NULL, 0);
  /* 0,1,2 plus the fd ls opens to read the directory */
  CHECK(atoi(r.out) <= 4, "child sees %d fds", atoi(r.out));
  proc_result_free(&r);
  fclose(f);
}

static void test_resolve(void) {
  char buf[4096];
  const char *envp[] = {"PATH=/nonexistent:/bin", NULL};
  CHECK_INT(proc_resolve("sh", envp, buf, sizeof buf), 0);
  CHECK_STR(buf, "/bin/sh");
  CHECK_INT(proc_resolve("/nonexistent/x", NULL, buf, sizeof buf), -1);
}

int main(void) {
  RUN(test_capture_separately);
  RUN(test_stdin_fed);
  RUN(test_large_stdin_and_output);
  RUN(test_explicit_env_only);
  RUN(test_not_found);
  RUN(test_sigkill_reads_137);
  RUN(test_timeout_kills_group);
  RUN(test_background_child_does_not_hang);
  RUN(test_pending_signal_stops_child);
  RUN(test_interactive_timeout);
  RUN(test_no_fd_leaks_into_child);
  RUN(test_resolve);
  return tap_done();
}
