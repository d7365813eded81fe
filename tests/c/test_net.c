/* Unit tests for net.c: waiting for TCP readiness and free ports, against
 * real loopback sockets (listeners in threads that appear, greet, or accept
 * and hang up like a port forwarder with nothing behind it). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "tap.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* A listening socket on addr (IPv4 or IPv6 literal) and port (0: any);
 * the port chosen goes to *port. -1 when the address is unusable here. */
static int listen_on(const char *addr, int want_port, int *port) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  int family;
  if (strchr(addr, ':')) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((unsigned short)want_port);
    if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) return -1;
    len = sizeof *s6;
    family = AF_INET6;
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((unsigned short)want_port);
    if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1) return -1;
    len = sizeof *s4;
    family = AF_INET;
  }
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0) {
    close(fd);
    return -1;
  }
  len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  *port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

static struct net_wait_result wait_for(const char *host, int port, int timeout_ms, int hold_ms) {
  struct net_wait_spec spec = {.host = host, .port = port, .timeout_ms = timeout_ms, .hold_ms = hold_ms};
  struct net_wait_result res;
  net_wait_tcp(&spec, &res);
  return res;
}

/* ---- listeners in threads ------------------------------------------------ */

enum behaviour { LATE_LISTENER, HANG_UP, RESET, GREET };

struct server {
  enum behaviour how;
  int port;
  int delay_ms;      /* LATE_LISTENER: bind after this long */
  int listen_fd;
  atomic_int stop;
  atomic_int bound;  /* LATE_LISTENER: 1 once listening, -1 if bind failed */
  pthread_t thread;
};

static void *serve(void *arg) {
  struct server *s = arg;
  if (s->how == LATE_LISTENER) {
    sleep_ms(s->delay_ms);
    int port;
    s->listen_fd = listen_on("127.0.0.1", s->port, &port);
    s->bound = s->listen_fd >= 0 ? 1 : -1;
  }
  int held = -1;
  while (!s->stop && s->listen_fd >= 0) {
    struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
    if (poll(&p, 1, 20) <= 0) continue;
    int c = accept(s->listen_fd, NULL, NULL);
    if (c < 0) continue;
    if (s->how == HANG_UP) {
      close(c);
    } else if (s->how == RESET) {
      struct linger lg = {1, 0};
      setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      close(c);
    } else if (s->how == GREET) {
      (void)!write(c, "SSH-2.0-test\r\n", 14);
      if (held >= 0) close(held);
      held = c;
    } else {
      if (held >= 0) close(held);
      held = c;
    }
  }
  if (held >= 0) close(held);
  return NULL;
}

static int server_start(struct server *s, enum behaviour how) {
  memset(s, 0, sizeof *s);
  s->how = how;
  s->listen_fd = -1;
  if (how != LATE_LISTENER && (s->listen_fd = listen_on("127.0.0.1", 0, &s->port)) < 0) return -1;
  return pthread_create(&s->thread, NULL, serve, s) == 0 ? 0 : -1;
}

static void server_stop(struct server *s) {
  s->stop = 1;
  pthread_join(s->thread, NULL);
  if (s->listen_fd >= 0) close(s->listen_fd);
}

/* ---- tests ------------------------------------------------------------- */

static void test_ready_against_listener(void) {
  int port, fd = listen_on("127.0.0.1", 0, &port);
  CHECK(fd >= 0, "listen: %s", strerror(errno));
  struct net_wait_result r = wait_for("127.0.0.1", port, 2000, 100);
  CHECK_INT(r.status, NET_READY);
  CHECK_INT(r.attempts, 1);
  /* The connection was held for hold_ms before being trusted. */
  CHECK(r.elapsed_ms >= 95 && r.elapsed_ms < 1000, "elapsed %ld ms", r.elapsed_ms);
  r = wait_for("127.0.0.1", port, 2000, 0);
  CHECK_INT(r.status, NET_READY);
  CHECK(r.elapsed_ms < 100, "without hold: elapsed %ld ms", r.elapsed_ms);
  close(fd);
}

static void test_ready_by_name(void) {
  int port, fd = listen_on("127.0.0.1", 0, &port);
  CHECK(fd >= 0);
  struct net_wait_result r = wait_for("localhost", port, 3000, 50);
  CHECK_INT(r.status, NET_READY);
  CHECK(r.elapsed_ms < 2000, "elapsed %ld ms (%s)", r.elapsed_ms, r.error);
  close(fd);
}

static void test_ready_ipv6(void) {
  int port, fd = listen_on("::1", 0, &port);
  if (fd < 0) SKIP("no IPv6 loopback here");
  struct net_wait_result r = wait_for("::1", port, 2000, 50);
  CHECK_INT(r.status, NET_READY);
  CHECK(r.elapsed_ms < 1000, "elapsed %ld ms", r.elapsed_ms);
  close(fd);
}

static void test_timeout_on_closed_port(void) {
  const char *code = NULL;
  char err[256];
  int port = net_free_port(NULL, err, sizeof err, &code);
  CHECK(port > 0, "%s", err);
  struct net_wait_result r = wait_for("127.0.0.1", port, 400, 100);
  CHECK_INT(r.status, NET_TIMEOUT);
  CHECK(r.elapsed_ms >= 400 && r.elapsed_ms < 1400, "elapsed %ld ms", r.elapsed_ms);
  /* 10, 20, 40, 80, 160 ms pauses fit in 400 ms: several attempts, not a
   * busy loop and not one long sleep. */
  CHECK(r.attempts >= 4 && r.attempts <= 12, "attempts %d", r.attempts);
  CHECK(strstr(r.error, "refused") != NULL, "error '%s'", r.error);
}

static void test_zero_timeout_is_one_attempt(void) {
  const char *code;
  char err[256];
  int port = net_free_port("127.0.0.1", err, sizeof err, &code);
  struct net_wait_result r = wait_for("127.0.0.1", port, 0, 100);
  CHECK_INT(r.status, NET_TIMEOUT);
  CHECK_INT(r.attempts, 1);
  CHECK(r.elapsed_ms < 300, "elapsed %ld ms", r.elapsed_ms);
}

static void test_listener_appears_mid_wait(void) {
  const char *code;
  char err[256];
  struct server s;
  memset(&s, 0, sizeof s);
  s.how = LATE_LISTENER;
  s.listen_fd = -1;
  s.port = net_free_port(NULL, err, sizeof err, &code);
  s.delay_ms = 200;
  CHECK(s.port > 0, "%s", err);
  CHECK_INT(pthread_create(&s.thread, NULL, serve, &s), 0);
  struct net_wait_result r = wait_for("127.0.0.1", s.port, 5000, 100);
  CHECK_INT(r.status, NET_READY);
  CHECK(r.elapsed_ms >= 190 && r.elapsed_ms < 2000, "elapsed %ld ms", r.elapsed_ms);
  CHECK(r.attempts >= 2, "attempts %d", r.attempts);
  server_stop(&s);
  CHECK_INT(s.bound, 1);
}

/* docker-proxy accepts on the host port at once and hangs up when nothing
 * listens in the container: that is not ready. */
static void test_forwarder_hanging_up_is_not_ready(void) {
  struct server s;
  CHECK_INT(server_start(&s, HANG_UP), 0);
  struct net_wait_result r = wait_for("127.0.0.1", s.port, 500, 100);
  CHECK_INT(r.status, NET_TIMEOUT);
  CHECK(strstr(r.error, "closed by the peer") != NULL, "error '%s'", r.error);
  r = wait_for("127.0.0.1", s.port, 500, 0);
  CHECK_INT(r.status, NET_READY);
  server_stop(&s);
}

static void test_forwarder_resetting_is_not_ready(void) {
  struct server s;
  CHECK_INT(server_start(&s, RESET), 0);
  struct net_wait_result r = wait_for("127.0.0.1", s.port, 500, 100);
  CHECK_INT(r.status, NET_TIMEOUT);
  CHECK(strstr(r.error, "reset") != NULL || strstr(r.error, "closed") != NULL, "error '%s'", r.error);
  server_stop(&s);
}

static void test_greeting_server_is_ready_at_once(void) {
  struct server s;
  CHECK_INT(server_start(&s, GREET), 0);
  struct net_wait_result r = wait_for("127.0.0.1", s.port, 5000, 3000);
  CHECK_INT(r.status, NET_READY);
  CHECK(r.elapsed_ms < 1500, "elapsed %ld ms: data should end the hold early", r.elapsed_ms);
  server_stop(&s);
}

static atomic_int polls;
static int sigint_on_third_poll(void) { return ++polls >= 3 ? SIGINT : 0; }

static void test_pending_signal_stops_the_wait(void) {
  const char *code;
  char err[256];
  int port = net_free_port(NULL, err, sizeof err, &code);
  polls = 0;
  struct net_wait_spec spec = {.host = "127.0.0.1", .port = port, .timeout_ms = 10000, .hold_ms = 100,
                               .pending_signal = sigint_on_third_poll};
  struct net_wait_result r;
  CHECK_INT(net_wait_tcp(&spec, &r), -1);
  CHECK_INT(r.status, NET_INTERRUPTED);
  CHECK_INT(r.signal, SIGINT);
  CHECK(r.elapsed_ms < 1000, "elapsed %ld ms", r.elapsed_ms);
}

static void test_unknown_host_fails_fast(void) {
  struct net_wait_result r = wait_for("no-such-host.invalid", 80, 3000, 100);
  if (r.status == NET_TIMEOUT && strstr(r.error, "resolving")) SKIP("no resolver here: %s", r.error);
  CHECK_INT(r.status, NET_RESOLVE_FAILED);
  CHECK(strstr(r.error, "no-such-host.invalid") != NULL, "error '%s'", r.error);
  CHECK(r.elapsed_ms < 2500, "elapsed %ld ms", r.elapsed_ms);
}

static void test_free_port_is_bindable(void) {
  const char *code = NULL;
  char err[256];
  int port = net_free_port(NULL, err, sizeof err, &code);
  CHECK(port > 0 && port < 65536, "port %d: %s", port, err);
  int got, fd = listen_on("127.0.0.1", port, &got);
  CHECK(fd >= 0, "bind to the free port %d: %s", port, strerror(errno));
  CHECK_INT(got, port);
  /* Now taken: the next free port is another one. */
  int other = net_free_port("127.0.0.1", err, sizeof err, &code);
  CHECK(other > 0 && other != port, "other %d, port %d", other, port);
  if (fd >= 0) close(fd);

  int p6 = net_free_port("::1", err, sizeof err, &code);
  if (p6 > 0) {
    int fd6 = listen_on("::1", p6, &got);
    CHECK(fd6 >= 0, "bind [::1]:%d: %s", p6, strerror(errno));
    if (fd6 >= 0) close(fd6);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_ready_against_listener);
  RUN(test_ready_by_name);
  RUN(test_ready_ipv6);
  RUN(test_timeout_on_closed_port);
  RUN(test_zero_timeout_is_one_attempt);
  RUN(test_listener_appears_mid_wait);
  RUN(test_forwarder_hanging_up_is_not_ready);
  RUN(test_forwarder_resetting_is_not_ready);
  RUN(test_greeting_server_is_ready_at_once);
  RUN(test_pending_signal_stops_the_wait);
  RUN(test_unknown_host_fails_fast);
  RUN(test_free_port_is_bindable);
  return tap_done();
}
