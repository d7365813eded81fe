/* Tests for bottle-init's supervision loop (runtime/init/run.c), driven
 * through fake daemons (BOTTLE_INIT_<NAME>_CMD overrides). This binary
 * re-executes itself with `--as-init` and a chosen environment, so
 * bottle-init runs with a genuine original environment block and its own
 * pid, as in the container. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "tap.h"

extern char **environ;
static const char *self_path;
static const char token_value[] = "tok-9f3a-SECRET-VALUE-41c7";

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct run {
  pid_t pid;
  int fd[2];
  char *buf[2];
  size_t len[2];
  int status; /* decoded: exit code, 128+N for signal N, -1 timed out */
};

/* Starts `self --as-init` with exactly the given environment (plus PATH). */
static int run_start(struct run *r, const char *const *vars) {
  memset(r, 0, sizeof *r);
  const char *envp[32];
  int n = 0;
  envp[n++] = "PATH=/usr/local/bin:/usr/bin:/bin";
  for (; *vars && n < 31; vars++) envp[n++] = *vars;
  envp[n] = NULL;
  int out[2], err[2];
  if (pipe(out) < 0 || pipe(err) < 0) return -1;
  r->pid = fork();
  if (r->pid < 0) return -1;
  if (r->pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    execle(self_path, self_path, "--as-init", (char *)NULL, envp);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  r->fd[0] = out[0];
  r->fd[1] = err[0];
  for (int s = 0; s < 2; s++) {
    r->buf[s] = calloc(1, 1);
    fcntl(r->fd[s], F_SETFL, fcntl(r->fd[s], F_GETFL) | O_NONBLOCK);
  }
  return 0;
}

/* Reads what is there, waiting up to ms. Returns 0 once both streams hit EOF. */
static int run_pump(struct run *r, int ms) {
  struct pollfd p[2];
  int np = 0, map[2];
  for (int s = 0; s < 2; s++)
    if (r->fd[s] >= 0) {
      p[np].fd = r->fd[s];
      p[np].events = POLLIN;
      map[np++] = s;
    }
  if (np == 0) return 0;
  if (poll(p, (nfds_t)np, ms) <= 0) return 1;
  for (int k = 0; k < np; k++) {
    if (!p[k].revents) continue;
    int s = map[k];
    char tmp[4096];
    ssize_t n = read(r->fd[s], tmp, sizeof tmp);
    if (n > 0) {
      r->buf[s] = realloc(r->buf[s], r->len[s] + (size_t)n + 1);
      memcpy(r->buf[s] + r->len[s], tmp, (size_t)n);
      r->len[s] += (size_t)n;
      r->buf[s][r->len[s]] = '\0';
    } else if (n == 0 || errno != EAGAIN) {
      close(r->fd[s]);
      r->fd[s] = -1;
    }
  }
  return 1;
}

/* Waits until stream s (0 out, 1 err) contains needle. */
static int run_wait_for(struct run *r, int s, const char *needle, int ms) {
  long long end = now_ms() + ms;
  while (!strstr(r->buf[s], needle)) {
    long long left = end - now_ms();
    if (left <= 0) return 0;
    if (run_pump(r, (int)left) == 0 && !strstr(r->buf[s], needle)) return 0;
  }
  return 1;
}

/* Collects everything until bottle-init exits; kills it after ms. */
static void run_finish(struct run *r, int ms) {
  long long end = now_ms() + ms;
  while (r->fd[0] >= 0 || r->fd[1] >= 0) {
    long long left = end - now_ms();
    if (left <= 0) break;
    run_pump(r, (int)left);
  }
  int st = 0;
  pid_t w;
  while ((w = waitpid(r->pid, &st, WNOHANG)) == 0 && now_ms() < end) usleep(10000);
  if (w == 0) {
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &st, 0);
    r->status = -1;
  } else {
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  for (int s = 0; s < 2; s++)
    if (r->fd[s] >= 0) close(r->fd[s]);
}

static void run_free(struct run *r) {
  free(r->buf[0]);
  free(r->buf[1]);
}

static void dump(const struct run *r) {
  printf("#   stdout: %s\n#   stderr: %s\n", r->buf[0], r->buf[1]);
}

/* Position of needle in hay, or -1. */
static long pos(const char *hay, const char *needle) {
  const char *p = strstr(hay, needle);
  return p ? (long)(p - hay) : -1;
}

static void test_unknown_daemon_exits_2(void) {
  const char *vars[] = {"BOTTLE_SIDECAR_DAEMONS=egress, nope", "BOTTLE_INIT_EGRESS_CMD=echo started",
                        NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  run_finish(&r, 5000);
  CHECK_INT(r.status, 2);
  CHECK(strstr(r.buf[1], "unknown daemon 'nope'") != NULL, "stderr: %s", r.buf[1]);
  CHECK(strstr(r.buf[1], "known: egress, pipelock, git-gate, supervise") != NULL, "%s", r.buf[1]);
  CHECK(strstr(r.buf[0], "started") == NULL, "a daemon ran: %s", r.buf[0]);
  run_free(&r);
}

static void test_prefixes_and_canonical_order(void) {
  const char *vars[] = {
      "BOTTLE_SIDECAR_DAEMONS= supervise ,egress,,supervise",
      "BOTTLE_INIT_EGRESS_CMD=echo out-e; echo err-e >&2; printf partial-e",
      "BOTTLE_INIT_SUPERVISE_CMD=echo out-s; echo err-s >&2; printf 'two\\nlines\\n'",
      NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  run_finish(&r, 10000);
  CHECK_INT(r.status, 0);
  const char *out = r.buf[0], *err = r.buf[1];
  CHECK(strstr(out, "[egress] out-e\n") != NULL, "stdout: %s", out);
  CHECK(strstr(out, "[egress] partial-e\n") != NULL, "partial line not flushed: %s", out);
  CHECK(strstr(out, "[supervise] out-s\n") != NULL, "stdout: %s", out);
  CHECK(strstr(out, "[supervise] two\n[supervise] lines\n") != NULL, "stdout: %s", out);
  CHECK(strstr(err, "[egress] err-e\n") != NULL, "stderr: %s", err);
  CHECK(strstr(err, "[supervise] err-s\n") != NULL, "stderr: %s", err);
  CHECK(strstr(out, "err-") == NULL, "stderr leaked into stdout");
  long pe = pos(err, "started egress"), ps = pos(err, "started supervise");
  CHECK(pe >= 0 && ps > pe, "start order: %s", err);
  CHECK(pos(err, "started supervise") == pos(err, "started s"), "supervise started twice?");
  CHECK(strstr(strstr(err, "started supervise") + 1, "started supervise") == NULL, "duplicate start");
  CHECK(strstr(err, "[bottle-init] egress exited with status 0\n") != NULL, "%s", err);
  if (tap_cur_failed) dump(&r);
  run_free(&r);
}

static void test_dead_daemon_logged_others_keep_running(void) {
  const char *vars[] = {
      "BOTTLE_SIDECAR_DAEMONS=egress,pipelock,supervise",
      "BOTTLE_INIT_EGRESS_CMD=exit 3",
      "BOTTLE_INIT_PIPELOCK_CMD=kill -9 $$",
      "BOTTLE_INIT_SUPERVISE_CMD=sleep 0.5; echo still-here",
      NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  run_finish(&r, 10000);
  CHECK_INT(r.status, 1);
  const char *err = r.buf[1];
  CHECK(strstr(err, "[bottle-init] egress exited with status 3\n") != NULL, "%s", err);
  CHECK(strstr(err, "[bottle-init] pipelock killed by signal 9\n") != NULL, "%s", err);
  CHECK(strstr(err, "[bottle-init] supervise exited with status 0\n") != NULL, "%s", err);
  CHECK(strstr(r.buf[0], "[supervise] still-here\n") != NULL, "%s", r.buf[0]);
  CHECK(pos(err, "egress exited") < pos(err, "supervise exited"), "order: %s", err);
  if (tap_cur_failed) dump(&r);
  run_free(&r);
}

static void test_spawn_failure_is_logged(void) {
  /* No override and no pipelock on this PATH: it cannot start, egress runs. */
  const char *vars[] = {"BOTTLE_SIDECAR_DAEMONS=pipelock,egress", "BOTTLE_INIT_EGRESS_CMD=echo ran",
                        NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  if (access("/usr/local/bin/pipelock", X_OK) == 0 || access("/usr/bin/pipelock", X_OK) == 0) {
    run_finish(&r, 100);
    run_free(&r);
    SKIP("a real pipelock is installed here");
  }
  run_finish(&r, 10000);
  CHECK_INT(r.status, 1);
  CHECK(strstr(r.buf[1], "cannot start pipelock (pipelock)") != NULL, "%s", r.buf[1]);
  CHECK(strstr(r.buf[0], "[egress] ran\n") != NULL, "%s", r.buf[0]);
  run_free(&r);
}

static const char trap_daemon[] =
    "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done";

static void test_sigterm_forwarded(void) {
  char e[256], s[256];
  snprintf(e, sizeof e, "BOTTLE_INIT_EGRESS_CMD=%s", trap_daemon);
  snprintf(s, sizeof s, "BOTTLE_INIT_GIT_GATE_CMD=%s", trap_daemon);
  const char *vars[] = {"BOTTLE_SIDECAR_DAEMONS=git-gate,egress", e, s, NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  int ok = run_wait_for(&r, 0, "[egress] ready", 5000) && run_wait_for(&r, 0, "[git-gate] ready", 5000);
  CHECK(ok, "daemons did not start");
  long long t0 = now_ms();
  kill(r.pid, SIGTERM);
  run_finish(&r, 10000);
  long long took = now_ms() - t0;
  CHECK_INT(r.status, 128 + SIGTERM);
  CHECK(strstr(r.buf[0], "[egress] got-term\n") != NULL, "%s", r.buf[0]);
  CHECK(strstr(r.buf[0], "[git-gate] got-term\n") != NULL, "%s", r.buf[0]);
  CHECK(strstr(r.buf[1], "received SIGTERM") != NULL, "%s", r.buf[1]);
  CHECK(took < 5000, "took %lld ms to stop", took);
  if (tap_cur_failed) dump(&r);
  run_free(&r);
}

static void test_grace_then_sigkill(void) {
  const char *vars[] = {"BOTTLE_SIDECAR_DAEMONS=supervise,egress", "BOTTLE_INIT_GRACE_MS=400",
                        "BOTTLE_INIT_EGRESS_CMD=trap '' TERM INT; echo ready; sleep 30",
                        "BOTTLE_INIT_SUPERVISE_CMD=echo ready; exec sleep 30", NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  int ok = run_wait_for(&r, 0, "[egress] ready", 5000) && run_wait_for(&r, 0, "[supervise] ready", 5000);
  CHECK(ok, "daemons did not start");
  long long t0 = now_ms();
  kill(r.pid, SIGINT);
  run_finish(&r, 10000);
  long long took = now_ms() - t0;
  CHECK_INT(r.status, 128 + SIGINT);
  CHECK(strstr(r.buf[1], "[bottle-init] supervise killed by signal 2\n") != NULL, "%s", r.buf[1]);
  CHECK(strstr(r.buf[1], "egress still running after the grace period") != NULL, "%s", r.buf[1]);
  CHECK(strstr(r.buf[1], "[bottle-init] egress killed by signal 9\n") != NULL, "%s", r.buf[1]);
  CHECK(took >= 350 && took < 5000, "took %lld ms", took);
  if (tap_cur_failed) dump(&r);
  run_free(&r);
}

static void test_sighup_goes_to_egress_and_pipelock_only(void) {
  const char *vars[] = {
      "BOTTLE_SIDECAR_DAEMONS=egress,pipelock,git-gate,supervise",
      "BOTTLE_INIT_EGRESS_CMD=trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.05; done",
      "BOTTLE_INIT_PIPELOCK_CMD=trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.05; done",
      "BOTTLE_INIT_GIT_GATE_CMD=trap 'echo wrong-hup' HUP; echo ready; while :; do sleep 0.05; done",
      "BOTTLE_INIT_SUPERVISE_CMD=trap 'echo wrong-hup' HUP; echo ready; while :; do sleep 0.05; done",
      NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  int ok = run_wait_for(&r, 0, "[egress] ready", 5000) && run_wait_for(&r, 0, "[pipelock] ready", 5000) &&
           run_wait_for(&r, 0, "[git-gate] ready", 5000) && run_wait_for(&r, 0, "[supervise] ready", 5000);
  CHECK(ok, "daemons did not start");
  kill(r.pid, SIGHUP);
  CHECK(run_wait_for(&r, 0, "[egress] got-hup", 5000), "egress did not get SIGHUP");
  CHECK(run_wait_for(&r, 0, "[pipelock] got-hup", 5000), "pipelock did not get SIGHUP");
  run_pump(&r, 300);
  kill(r.pid, SIGTERM);
  run_finish(&r, 10000);
  CHECK(strstr(r.buf[0], "wrong-hup") == NULL, "git-gate or supervise got SIGHUP");
  CHECK(strstr(r.buf[1], "forwarding SIGHUP to pipelock") != NULL, "%s", r.buf[1]);
  CHECK_INT(r.status, 128 + SIGTERM);
  if (tap_cur_failed) dump(&r);
  run_free(&r);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = malloc(65536);
  *len = fread(buf, 1, 65535, f);
  fclose(f);
  return buf;
}

static int mem_has(const char *hay, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(hay + i, needle, m) == 0) return 1;
  return 0;
}

static void test_tokens_only_for_egress(void) {
  char tok[128];
  snprintf(tok, sizeof tok, "EGRESS_TOKEN_0=%s", token_value);
  const char *vars[] = {"BOTTLE_SIDECAR_DAEMONS=egress,git-gate,supervise",
                        tok,
                        "EGRESS_TOKEN_1=",
                        "EGRESS_PORT=9099",
                        "BOTTLE_INIT_EGRESS_CMD=env; echo done; sleep 5",
                        "BOTTLE_INIT_GIT_GATE_CMD=env; echo done; sleep 5",
                        "BOTTLE_INIT_SUPERVISE_CMD=env; echo done; sleep 5",
                        NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  int ok = run_wait_for(&r, 0, "[egress] done", 5000) && run_wait_for(&r, 0, "[git-gate] done", 5000) &&
           run_wait_for(&r, 0, "[supervise] done", 5000);
  CHECK(ok, "daemons did not print their env");
#ifdef __linux__
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/environ", (int)r.pid);
  size_t n = 0;
  char *environ_block = read_file(path, &n);
  CHECK(environ_block != NULL, "cannot read %s", path);
  if (environ_block) {
    CHECK(!mem_has(environ_block, n, token_value), "token value still in %s", path);
    CHECK(mem_has(environ_block, n, "EGRESS_PORT=9099"), "%s not the real environ block", path);
    free(environ_block);
  }
#endif
  kill(r.pid, SIGTERM);
  run_finish(&r, 10000);
  const char *out = r.buf[0];
  char line[160];
  snprintf(line, sizeof line, "[egress] EGRESS_TOKEN_0=%s\n", token_value);
  CHECK(strstr(out, line) != NULL, "egress did not get the token");
  CHECK(strstr(out, "[egress] EGRESS_TOKEN_1=\n") != NULL, "egress did not get the empty slot");
  CHECK(strstr(out, "[git-gate] EGRESS_PORT=9099\n") != NULL, "git-gate env missing");
  CHECK(strstr(out, "[supervise] EGRESS_PORT=9099\n") != NULL, "supervise env missing");
  /* Count the value: exactly once, in egress's line. */
  const char *first = strstr(out, token_value);
  CHECK(first && !strstr(first + 1, token_value), "token value appears more than once");
  CHECK(strstr(out, "[git-gate] EGRESS_TOKEN") == NULL, "git-gate got a slot");
  CHECK(strstr(out, "[supervise] EGRESS_TOKEN") == NULL, "supervise got a slot");
  CHECK(strstr(r.buf[1], token_value) == NULL, "token value on stderr");
  run_free(&r);
}

#ifdef __linux__
/* ppid and state from /proc/<pid>/stat; returns 0 when it no longer exists. */
static int proc_stat(int pid, int *ppid, char *state) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p || sscanf(p + 2, "%c %d", state, ppid) != 2) return 0;
  return 1;
}
#endif

static void test_reaps_orphans(void) {
#ifndef __linux__
  SKIP("needs /proc (Linux)");
#else
  const char *vars[] = {
      "BOTTLE_SIDECAR_DAEMONS=egress",
      "BOTTLE_INIT_EGRESS_CMD=(sh -c 'echo orphan $$; exec sleep 0.6' &); sleep 3; echo bye", NULL};
  struct run r;
  if (run_start(&r, vars) < 0) SKIP("cannot start: %s", strerror(errno));
  CHECK(run_wait_for(&r, 0, "\n", 5000), "no orphan pid printed");
  int orphan = 0;
  const char *p = strstr(r.buf[0], "[egress] orphan ");
  if (p) orphan = atoi(p + strlen("[egress] orphan "));
  CHECK(orphan > 0, "stdout: %s", r.buf[0]);
  if (orphan > 0) {
    usleep(200000);
    int ppid = 0;
    char state = '?';
    /* While it sleeps it is ours (its parent subshell is gone)... */
    CHECK(proc_stat(orphan, &ppid, &state) && ppid == r.pid, "orphan %d ppid %d, init %d", orphan,
          ppid, (int)r.pid);
    usleep(1200000);
    /* ...and once it exits it is reaped, not left a zombie. */
    int alive = proc_stat(orphan, &ppid, &state);
    CHECK(!alive || ppid != r.pid, "orphan %d left as state %c under bottle-init", orphan, state);
  }
  run_finish(&r, 10000);
  CHECK_INT(r.status, 0);
  CHECK(strstr(r.buf[0], "[egress] bye\n") != NULL, "%s", r.buf[0]);
  run_free(&r);
#endif
}


int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--as-init") == 0) {
    char *args[] = {argv[0], NULL};
    return init_main(1, args, environ);
  }
  self_path = argv[0];
  RUN(test_unknown_daemon_exits_2);
  RUN(test_prefixes_and_canonical_order);
  RUN(test_dead_daemon_logged_others_keep_running);
  RUN(test_spawn_failure_is_logged);
  RUN(test_sigterm_forwarded);
  RUN(test_grace_then_sigkill);
  RUN(test_sighup_goes_to_egress_and_pipelock_only);
  RUN(test_tokens_only_for_egress);
  RUN(test_reaps_orphans);
  return tap_done();
}
