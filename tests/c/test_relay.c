/* test_relay.c: the unix socket -> TCP relay (runtime/relay.c), run in a
 * child process against a TCP echo server on loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "relay.h"
#include "tap.h"

static char dir[256];

/* An echo server on 127.0.0.1:<port>, in a child, serving `conns`
 * connections one after the other. */
static pid_t echo_server(int *port, int conns) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 8) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0)
    return -1;
  *port = ntohs(a.sin_port);
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < conns; i++) {
      int c = accept(fd, NULL, NULL);
      if (c < 0) _exit(1);
      char buf[4096];
      ssize_t n;
      while ((n = read(c, buf, sizeof buf)) > 0)
        if (write(c, buf, (size_t)n) != n) break;
      close(c);
    }
    _exit(0);
  }
  close(fd);
  return pid;
}

/* A closed loopback port: bound, never listened on, then closed. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

static pid_t start_relay(char **args, int n) {
  pid_t pid = fork();
  if (pid == 0) _exit(relay_main("test", n, args));
  return pid;
}

static int wait_for_socket(const char *path) {
  struct stat st;
  for (int i = 0; i < 200; i++) {
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) return 0;
    usleep(10000);
  }
  return -1;
}

static int dial_unix(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un u = {.sun_family = AF_UNIX};
  snprintf(u.sun_path, sizeof u.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&u, sizeof u) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int stop(pid_t pid) {
  int st = 0;
  kill(pid, SIGTERM);
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_relays_both_ways_and_passes_eof(void) {
  int port = 0;
  pid_t echo = echo_server(&port, 2);
  CHECK(echo > 0, "echo server");
  char path[300], spec[400];
  snprintf(path, sizeof path, "%s/proxy.sock", dir);
  snprintf(spec, sizeof spec, "%s=127.0.0.1:%d", path, port);
  char *args[] = {spec};
  pid_t relay = start_relay(args, 1);
  CHECK_INT(wait_for_socket(path), 0);
  struct stat st;
  CHECK_INT(lstat(path, &st), 0);
  CHECK_INT(st.st_mode & 0777, 0600);
  for (int round = 0; round < 2; round++) {
    int c = dial_unix(path);
    CHECK(c >= 0, "connect to the relay's socket");
    /* More than one relay buffer, so the back pressure path runs too. */
    size_t total = 200 * 1024;
    char *out = malloc(total), *in = malloc(total);
    for (size_t i = 0; i < total; i++) out[i] = (char)('a' + (i * 7 + (size_t)round) % 26);
    size_t sent = 0, got = 0;
    fcntl(c, F_SETFL, O_NONBLOCK);
    while (got < total) {
      struct pollfd p = {.fd = c, .events = POLLIN | (sent < total ? POLLOUT : 0)};
      if (poll(&p, 1, 5000) <= 0) break;
      if ((p.revents & POLLOUT) && sent < total) {
        ssize_t n = write(c, out + sent, total - sent);
        if (n > 0) sent += (size_t)n;
        if (sent == total) shutdown(c, SHUT_WR);
      }
      if (p.revents & (POLLIN | POLLHUP)) {
        ssize_t n = read(c, in + got, total - got);
        if (n <= 0) break;
        got += (size_t)n;
      }
    }
    CHECK_INT(got, total);
    CHECK(memcmp(in, out, total) == 0, "the bytes come back unchanged");
    /* The echo server closes after our EOF: we see EOF in turn. */
    char b;
    fcntl(c, F_SETFL, 0);
    CHECK_INT(read(c, &b, 1), 0);
    close(c);
    free(out);
    free(in);
  }
  CHECK_INT(stop(relay), 0);
  CHECK(lstat(path, &st) < 0 && errno == ENOENT, "the socket is removed on SIGTERM");
  waitpid(echo, NULL, 0);
}

static void test_unreachable_target_closes_the_connection(void) {
  char path[300], spec[400];
  snprintf(path, sizeof path, "%s/dead.sock", dir);
  snprintf(spec, sizeof spec, "%s=127.0.0.1:%d", path, closed_port());
  char *args[] = {spec};
  pid_t relay = start_relay(args, 1);
  CHECK_INT(wait_for_socket(path), 0);
  int c = dial_unix(path);
  CHECK(c >= 0, "the socket accepts");
  struct timeval tv = {.tv_sec = 5};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char b;
  CHECK_INT(read(c, &b, 1), 0);
  close(c);
  CHECK_INT(stop(relay), 0);
}

static void test_refuses_what_it_must_not_replace(void) {
  char path[300], err[256];
  snprintf(path, sizeof path, "%s/regular-file", dir);
  FILE *f = fopen(path, "w");
  fputs("keep me\n", f);
  fclose(f);
  char spec[400];
  snprintf(spec, sizeof spec, "%s=127.0.0.1:9", path);
  struct relay_route r;
  CHECK_INT(relay_parse(spec, &r, err, sizeof err), 0);
  CHECK_INT(relay_listen(&r, -1, -1, err, sizeof err), -1);
  CHECK(strstr(err, "is not a socket") != NULL, "%s", err);
  struct stat st;
  CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode), "the file is still there");
}

static void test_parse_rejects_bad_routes(void) {
  struct relay_route r;
  char err[256];
  char a[] = "no-equals-sign", b[] = "/x.sock=127.0.0.1", c[] = "/x.sock=127.0.0.1:0",
       d[] = "/x.sock=127.0.0.1:70000", e[] = "=127.0.0.1:80", f[] = "/x.sock=[::1]:8080";
  CHECK_INT(relay_parse(a, &r, err, sizeof err), -1);
  CHECK_INT(relay_parse(b, &r, err, sizeof err), -1);
  CHECK_INT(relay_parse(c, &r, err, sizeof err), -1);
  CHECK_INT(relay_parse(d, &r, err, sizeof err), -1);
  CHECK_INT(relay_parse(e, &r, err, sizeof err), -1);
  CHECK_INT(relay_parse(f, &r, err, sizeof err), 0);
  CHECK_STR(r.host, "::1");
  CHECK_INT(r.port, 8080);
  CHECK_STR(r.path, "/x.sock");
}

static void test_bad_usage_exits_2(void) {
  char owner[] = "--owner", bad[] = "nobody";
  char *args[] = {owner, bad};
  CHECK_INT(relay_main("test", 2, args), 2);
  CHECK_INT(relay_main("test", 0, args), 2);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const char *base = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/bottle-test-relay.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_relays_both_ways_and_passes_eof);
  RUN(test_unreachable_target_closes_the_connection);
  RUN(test_refuses_what_it_must_not_replace);
  RUN(test_parse_rejects_bad_routes);
  RUN(test_bad_usage_exits_2);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return tap_done();
}
