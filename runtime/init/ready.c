/* ready.c: `bottle-init ready [--timeout-ms N] NAME[:PORT]...`, the bundle's
 * readiness check.
 *
 * bottle runs it with `docker exec` in a started bundle, so checking needs
 * nothing in the image beyond bottle-init itself (no python3, no nc). Each
 * named daemon is ready when 127.0.0.1:<its port> accepts a TCP connection;
 * the names are checked in the order given against one shared deadline, and
 * the first that never accepts is reported by name. A daemon bottle-init
 * already saw exit (its marker in the state dir, written by run.c) fails the
 * check at once instead of at the deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

/* egress, git-gate and supervise read their port from the env
 * bottle-init passes on, pipelock's is fixed on its command line. */
/* relay listens on no port: its sockets answering is its readiness. */
static const int default_ports[INIT_DAEMON_COUNT] = {9099, 8888, 9418, 9100, -1};
static const char *const port_vars[INIT_DAEMON_COUNT] = {"EGRESS_PORT", NULL, "GIT_GATE_PORT", "SUPERVISE_PORT",
                                                         NULL};

enum { READY_DEFAULT_TIMEOUT_MS = 30000, READY_RETRY_MS = 50, READY_CONNECT_MS = 1000 };

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static int parse_port(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > 65535) return -1;
  return (int)v;
}

static const char *env_value(char *const *envp, const char *name) {
  size_t n = strlen(name);
  for (char *const *e = envp; e && *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  return NULL;
}

const char *init_state_dir(char *const *envp) {
  const char *v = env_value(envp, "BOTTLE_INIT_STATE_DIR");
  return v && *v ? v : INIT_STATE_DIR;
}

static int marker_path(char *const *envp, const char *name, char *out, size_t outsz) {
  return snprintf(out, outsz, "%s/%s.exited", init_state_dir(envp), name) < (int)outsz ? 0 : -1;
}

void init_state_reset(char *const *envp) {
  const char *dir = init_state_dir(envp);
  if (mkdir(dir, 0755) < 0 && errno != EEXIST) return;
  char path[4096];
  for (int i = 0; i < INIT_DAEMON_COUNT; i++)
    if (marker_path(envp, init_daemon_names[i], path, sizeof path) == 0) unlink(path);
}

void init_mark_exited(char *const *envp, const char *name, const char *what) {
  char path[4096];
  if (marker_path(envp, name, path, sizeof path) < 0) return;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  write_all(fd, what, strlen(what));
  close(fd);
}

/* What bottle-init wrote when the daemon exited, or 0 when it has not. */
static int exited_marker(char *const *envp, const char *name, char *what, size_t whatsz) {
  char path[4096];
  if (marker_path(envp, name, path, sizeof path) < 0) return 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, what, whatsz - 1);
  close(fd);
  what[n > 0 ? n : 0] = '\0';
  what[strcspn(what, "\n")] = '\0';
  if (!*what) snprintf(what, whatsz, "exited");
  return 1;
}

int init_daemon_port(int idx, char *const *envp) {
  if (idx < 0 || idx >= INIT_DAEMON_COUNT) return -1;
  const char *v = port_vars[idx] ? env_value(envp, port_vars[idx]) : NULL;
  int p = v && *v ? parse_port(v) : -1;
  return p > 0 ? p : default_ports[idx];
}

/* One connection attempt, bounded by timeout_ms. 0 when accepted, else
 * -1 with errno describing why. */
static int try_connect(int port, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  if (rc < 0 && errno == EINPROGRESS) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;
    do n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0) {
      close(fd);
      errno = ETIMEDOUT;
      return -1;
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
    rc = soerr ? -1 : 0;
    errno = soerr;
  }
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

static void ready_usage(void) {
  static const char msg[] =
      "usage: bottle-init ready [--timeout-ms N] NAME[:PORT]...\n"
      "Waits until each named daemon (egress, pipelock, git-gate, supervise) accepts TCP\n"
      "connections on 127.0.0.1 at its port; exits 1 naming the first that does not.\n";
  write_all(2, msg, sizeof msg - 1);
}

__attribute__((format(printf, 2, 3))) static void out(int fd, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  write_all(fd, buf, (size_t)n);
}

int init_ready_main(int argc, char **argv, char **envp) {
  int timeout_ms = READY_DEFAULT_TIMEOUT_MS, first = 1;
  if (argc > 1 && strncmp(argv[1], "--timeout-ms", 12) == 0) {
    const char *v = argv[1][12] == '=' ? argv[1] + 13 : argv[1][12] == '\0' && argc > 2 ? argv[2] : NULL;
    char *end = NULL;
    long t = v ? strtol(v, &end, 10) : -1;
    if (!v || !*v || *end || t < 0 || t > 3600000) {
      out(2, "bottle-init ready: --timeout-ms needs a number of milliseconds (0 to 3600000)");
      return 2;
    }
    timeout_ms = (int)t;
    first = argv[1][12] == '=' ? 2 : 3;
  }
  if (first >= argc) {
    ready_usage();
    return 2;
  }
  int idx[64], ports[64], n = 0;
  for (int i = first; i < argc; i++) {
    if (n == 64) {
      out(2, "bottle-init ready: too many names");
      return 2;
    }
    char name[64];
    const char *colon = strchr(argv[i], ':');
    size_t len = colon ? (size_t)(colon - argv[i]) : strlen(argv[i]);
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, argv[i], len);
    name[len] = '\0';
    idx[n] = -1;
    for (int d = 0; d < INIT_DAEMON_COUNT; d++)
      if (strcmp(name, init_daemon_names[d]) == 0) idx[n] = d;
    if (idx[n] < 0) {
      out(2, "bottle-init ready: unknown daemon '%s' (known: egress, pipelock, git-gate, supervise, relay)", name);
      return 2;
    }
    ports[n] = colon ? parse_port(colon + 1) : init_daemon_port(idx[n], envp);
    if (ports[n] < 0) {
      if (colon) out(2, "bottle-init ready: bad port in '%s'", argv[i]);
      else out(2, "bottle-init ready: %s listens on no port; give NAME:PORT", name);
      return 2;
    }
    n++;
  }

  long long deadline = mono_ms() + timeout_ms;
  for (int i = 0; i < n; i++) {
    for (;;) {
      long long left = deadline - mono_ms();
      int wait = left < READY_CONNECT_MS ? (left > 0 ? (int)left : 1) : READY_CONNECT_MS;
      if (try_connect(ports[i], wait) == 0) break;
      int e = errno;
      char what[128];
      if (exited_marker(envp, init_daemon_names[idx[i]], what, sizeof what)) {
        out(1, "bottle-init ready: %s is not ready: it %s (nothing listens on 127.0.0.1:%d)",
            init_daemon_names[idx[i]], what, ports[i]);
        return 1;
      }
      if (mono_ms() >= deadline) {
        out(1, "bottle-init ready: %s is not ready: nothing accepted connections on 127.0.0.1:%d within %d ms (%s)",
            init_daemon_names[idx[i]], ports[i], timeout_ms, strerror(e));
        return 1;
      }
      left = deadline - mono_ms();
      sleep_ms(left < READY_RETRY_MS ? (int)(left > 0 ? left : 1) : READY_RETRY_MS);
    }
  }
  char line[400];
  size_t o = (size_t)snprintf(line, sizeof line, "bottle-init ready:");
  for (int i = 0; i < n && o < sizeof line; i++)
    o += (size_t)snprintf(line + o, sizeof line - o, " %s (127.0.0.1:%d)", init_daemon_names[idx[i]], ports[i]);
  out(1, "%s", line);
  return 0;
}
