/* Tests for `bottle-init ready` (runtime/init/ready.c): real listeners on
 * 127.0.0.1, one that comes up late, ports that never open, the ports read
 * from the daemons' env, and bad arguments. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "tap.h"

/* A listening socket on 127.0.0.1 with a kernel-chosen port. */
static int listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

/* A port nothing listens on: bound, then closed again. */
static int closed_port(void) {
  int port = 0, fd = listen_any(&port);
  if (fd >= 0) close(fd);
  return port;
}

struct captured {
  int rc;
  char out[1024];
  long long ms;
};

/* Runs init_ready_main with argv, stdout and stderr captured into one buffer. */
static struct captured run_ready(char **argv, char **envp) {
  struct captured c;
  memset(&c, 0, sizeof c);
  char path[] = "/tmp/bottle-test-ready.XXXXXX";
  int tmp = mkstemp(path);
  unlink(path);
  fflush(stdout);
  int saved1 = dup(1), saved2 = dup(2);
  dup2(tmp, 1);
  dup2(tmp, 2);
  int argc = 0;
  while (argv[argc]) argc++;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  c.rc = init_ready_main(argc, argv, envp);
  clock_gettime(CLOCK_MONOTONIC, &b);
  c.ms = (long long)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
  dup2(saved1, 1);
  dup2(saved2, 2);
  close(saved1);
  close(saved2);
  lseek(tmp, 0, SEEK_SET);
  ssize_t n = read(tmp, c.out, sizeof c.out - 1);
  c.out[n > 0 ? n : 0] = '\0';
  close(tmp);
  return c;
}

static char *empty_env[] = {NULL};

static void test_ready_when_all_listen(void) {
  int p1, p2;
  int a = listen_any(&p1), b = listen_any(&p2);
  CHECK(a >= 0 && b >= 0);
  char n1[64], n2[64];
  snprintf(n1, sizeof n1, "egress:%d", p1);
  snprintf(n2, sizeof n2, "pipelock:%d", p2);
  char *argv[] = {"ready", "--timeout-ms", "2000", n1, n2, NULL};
  struct captured c = run_ready(argv, empty_env);
  CHECK_INT(c.rc, 0);
  CHECK(strstr(c.out, "egress (127.0.0.1:") && strstr(c.out, "pipelock (127.0.0.1:"), "%s", c.out);
  close(a);
  close(b);
}

static void test_names_the_first_that_never_listens(void) {
  int p1, dead = closed_port();
  int a = listen_any(&p1);
  char n1[64], n2[64];
  snprintf(n1, sizeof n1, "egress:%d", p1);
  snprintf(n2, sizeof n2, "pipelock:%d", dead);
  char *argv[] = {"ready", "--timeout-ms=400", n1, n2, NULL};
  struct captured c = run_ready(argv, empty_env);
  CHECK_INT(c.rc, 1);
  CHECK(strstr(c.out, "pipelock is not ready"), "%s", c.out);
  CHECK(!strstr(c.out, "egress is not ready"), "%s", c.out);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", dead);
  CHECK(strstr(c.out, want) && strstr(c.out, "400 ms"), "%s", c.out);
  CHECK(c.ms >= 350 && c.ms < 3000, "took %lld ms for a 400 ms deadline", c.ms);
  close(a);
}

/* A daemon that starts listening only after a while is waited for. */
static void test_waits_for_a_late_listener(void) {
  int port = closed_port();
  pid_t pid = fork();
  if (pid == 0) {
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0) _exit(1);
    sleep(5);
    _exit(0);
  }
  char n[64];
  snprintf(n, sizeof n, "supervise:%d", port);
  char *argv[] = {"ready", "--timeout-ms", "4000", n, NULL};
  struct captured c = run_ready(argv, empty_env);
  CHECK_INT(c.rc, 0);
  CHECK(c.ms >= 250, "ready after %lld ms, before the listener existed", c.ms);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void test_ports_from_env(void) {
  char *env[] = {"EGRESS_PORT=19099", "GIT_GATE_PORT=19418", "SUPERVISE_PORT=bogus", NULL};
  CHECK_INT(init_daemon_port(0, env), 19099);
  CHECK_INT(init_daemon_port(1, env), 8888); /* pipelock's is on its command line */
  CHECK_INT(init_daemon_port(2, env), 19418);
  CHECK_INT(init_daemon_port(3, env), 9100);
  CHECK_INT(init_daemon_port(0, empty_env), 9099);
  CHECK_INT(init_daemon_port(4, empty_env), -1);

  /* The env port is the one checked. */
  int port, fd = listen_any(&port);
  char var[64];
  snprintf(var, sizeof var, "EGRESS_PORT=%d", port);
  char *env2[] = {var, NULL};
  char *argv[] = {"ready", "--timeout-ms", "1000", "egress", NULL};
  struct captured c = run_ready(argv, env2);
  CHECK_INT(c.rc, 0);
  close(fd);
}

static void test_bad_arguments(void) {
  char *none[] = {"ready", NULL};
  CHECK_INT(run_ready(none, empty_env).rc, 2);
  char *unknown[] = {"ready", "gitgate", NULL};
  struct captured c = run_ready(unknown, empty_env);
  CHECK_INT(c.rc, 2);
  CHECK(strstr(c.out, "'gitgate'"), "%s", c.out);
  char *bad_port[] = {"ready", "egress:99999", NULL};
  CHECK_INT(run_ready(bad_port, empty_env).rc, 2);
  char *bad_timeout[] = {"ready", "--timeout-ms", "soon", "egress", NULL};
  CHECK_INT(run_ready(bad_timeout, empty_env).rc, 2);
  char *no_names[] = {"ready", "--timeout-ms", "10", NULL};
  CHECK_INT(run_ready(no_names, empty_env).rc, 2);
}

/* init_main dispatches `ready` before it looks at BOTTLE_SIDECAR_DAEMONS. */
static void test_init_main_dispatches_ready(void) {
  int dead = closed_port();
  char n[64];
  snprintf(n, sizeof n, "git-gate:%d", dead);
  char *argv[] = {"bottle-init", "ready", "--timeout-ms", "100", n, NULL};
  struct captured c;
  memset(&c, 0, sizeof c);
  char path[] = "/tmp/bottle-test-ready.XXXXXX";
  int tmp = mkstemp(path);
  unlink(path);
  fflush(stdout);
  int saved = dup(1);
  dup2(tmp, 1);
  int rc = init_main(5, argv, empty_env);
  dup2(saved, 1);
  close(saved);
  lseek(tmp, 0, SEEK_SET);
  ssize_t r = read(tmp, c.out, sizeof c.out - 1);
  c.out[r > 0 ? r : 0] = '\0';
  close(tmp);
  CHECK_INT(rc, 1);
  CHECK(strstr(c.out, "git-gate is not ready"), "%s", c.out);
}

static char state_dir[] = "/tmp/bottle-test-init-state.XXXXXX";

/* bottle-init leaves a marker for a daemon that exited; `ready` then fails
 * at once, naming how it ended, instead of waiting for the deadline. */
static void test_exited_daemon_fails_fast(void) {
  char var[200];
  snprintf(var, sizeof var, "BOTTLE_INIT_STATE_DIR=%s", state_dir);
  char *daemon_env[] = {strdup("BOTTLE_SIDECAR_DAEMONS=pipelock"), strdup("BOTTLE_INIT_PIPELOCK_CMD=exit 3"),
                        strdup("BOTTLE_INIT_GRACE_MS=100"), strdup(var), NULL};
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    char *argv[] = {"bottle-init", NULL};
    _exit(init_main(1, argv, daemon_env));
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "bottle-init status %d", st);
  for (int i = 0; daemon_env[i]; i++) free(daemon_env[i]);

  char marker[300], buf[128] = "";
  snprintf(marker, sizeof marker, "%s/pipelock.exited", state_dir);
  int fd = open(marker, O_RDONLY);
  CHECK(fd >= 0, "no marker at %s", marker);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
  }
  CHECK_STR(buf, "exited with status 3");

  char n[64];
  snprintf(n, sizeof n, "pipelock:%d", closed_port());
  char *env[] = {var, NULL};
  char *argv[] = {"ready", "--timeout-ms", "10000", n, NULL};
  struct captured c = run_ready(argv, env);
  CHECK_INT(c.rc, 1);
  CHECK(strstr(c.out, "pipelock is not ready: it exited with status 3"), "%s", c.out);
  CHECK(c.ms < 2000, "took %lld ms although pipelock was known to be gone", c.ms);

  /* A new bottle-init clears what an earlier run left. */
  init_state_reset(env);
  CHECK(access(marker, F_OK) != 0, "stale marker kept");
  rmdir(state_dir);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_ready_when_all_listen);
  RUN(test_names_the_first_that_never_listens);
  RUN(test_waits_for_a_late_listener);
  RUN(test_ports_from_env);
  RUN(test_bad_arguments);
  RUN(test_init_main_dispatches_ready);
  if (!mkdtemp(state_dir)) return 1;
  RUN(test_exited_daemon_fails_fast);
  return tap_done();
}
