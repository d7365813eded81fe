/* Unit tests for util.c: write_all, the growable buffer, errno names. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "util.h"

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

/* A pattern the reader can check byte by byte. */
static unsigned char pattern(size_t i) { return (unsigned char)(i * 131 + (i >> 11)); }

/* A slow reader and a timer firing every millisecond without SA_RESTART:
 * the writes into the full pipe come back short or with EINTR, and
 * write_all must still deliver every byte in order. */
static void test_write_all_short_writes(void) {
  enum { N = 1 << 20 };
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[1]);
    unsigned char chunk[3000];
    size_t at = 0;
    ssize_t r;
    while ((r = read(p[0], chunk, sizeof chunk)) != 0) {
      if (r < 0) {
        if (errno == EINTR) continue;
        _exit(3);
      }
      for (ssize_t i = 0; i < r; i++)
        if (chunk[i] != pattern(at + (size_t)i)) _exit(2);
      at += (size_t)r;
      struct timespec pause = {0, 200000};
      nanosleep(&pause, NULL);
    }
    _exit(at == N ? 0 : 1);
  }
  close(p[0]);
  unsigned char *data = malloc(N);
  for (size_t i = 0; i < N; i++) data[i] = pattern(i);
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART: write() is interrupted */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, &old);
  struct itimerval every = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
  alarms = 0;
  setitimer(ITIMER_REAL, &every, NULL);
  int rc = write_all(p[1], data, N);
  setitimer(ITIMER_REAL, &off, NULL);
  sigaction(SIGALRM, &old, NULL);
  close(p[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK_INT(rc, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader status %d", status);
  CHECK(alarms > 0, "the timer never fired");
  free(data);
}

static void test_write_all_reports_errors(void) {
  int p[2];
  CHECK(pipe(p) == 0);
  close(p[0]);
  void (*prev)(int) = signal(SIGPIPE, SIG_IGN);
  errno = 0;
  CHECK_INT(write_all(p[1], "x", 1), -1);
  CHECK_INT(errno, EPIPE);
  signal(SIGPIPE, prev);
  close(p[1]);
  CHECK_INT(write_all(p[1], "x", 1), -1);
  CHECK_INT(errno, EBADF);
  CHECK_INT(write_all(p[1], "", 0), 0);
}

static void test_buf_grows(void) {
  struct buf b = {0};
  char piece[37];
  for (size_t i = 0; i < sizeof piece; i++) piece[i] = (char)('a' + i % 26);
  for (int i = 0; i < 3000; i++) CHECK_INT(buf_addn(&b, piece, sizeof piece), 0);
  CHECK_INT(b.len, 3000 * sizeof piece);
  CHECK(b.cap > b.len && b.p[b.len] == '\0', "cap %zu len %zu", b.cap, b.len);
  CHECK(memcmp(b.p + 2999 * sizeof piece, piece, sizeof piece) == 0, "last piece");
  CHECK(!b.oom && !b.truncated);
  buf_free(&b);
  CHECK(b.p == NULL && b.len == 0 && b.cap == 0);

  /* printf longer than its stack scratch space. */
  char big[1000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  buf_adds(&b, "<");
  CHECK_INT(buf_printf(&b, "%s|%d", big, 42), 0);
  CHECK_INT(b.len, 1 + 999 + 3);
  CHECK_STR(b.p + 1000, "|42");
  size_t n = 0;
  char *s = buf_take(&b, &n);
  CHECK_INT(n, 1003);
  CHECK(s && s[0] == '<' && s[1003] == '\0');
  free(s);
  CHECK(b.p == NULL && b.len == 0, "take empties the buffer");

  s = buf_take(&b, &n);
  CHECK_STR(s, "");
  CHECK_INT(n, 0);
  free(s);
}

static void test_buf_max_truncates(void) {
  struct buf b = {.max = 10};
  buf_adds(&b, "0123456");
  CHECK(!b.truncated);
  buf_adds(&b, "789abc");
  CHECK(b.truncated);
  CHECK_STR(b.p, "0123456789");
  buf_printf(&b, "%d", 5);
  CHECK_INT(b.len, 10);
  char *s = buf_take(&b, NULL);
  CHECK_STR(s, "0123456789");
  free(s);
  CHECK_INT(b.max, 10);
  CHECK(!b.truncated, "take resets the flag, keeps the limit");
}

static void test_buf_escaped(void) {
  struct buf b = {0};
  buf_add_escaped(&b, "a b/c:d@e~f", NULL);
  CHECK_STR(b.p, "a%20b%2Fc%3Ad%40e~f");
  buf_free(&b);
  buf_add_escaped(&b, "reg:5000/x@sha256", "/:@");
  CHECK_STR(b.p, "reg:5000/x@sha256");
  buf_free(&b);
  buf_add_escaped(&b, "\xff\x01", NULL);
  CHECK_STR(b.p, "%FF%01");
  buf_free(&b);
}

static void test_errno_names(void) {
  CHECK_STR(errno_name(ENOENT), "ENOENT");
  CHECK_STR(errno_name(EACCES), "EACCES");
  CHECK_STR(errno_name(ECONNREFUSED), "ECONNREFUSED");
  CHECK_STR(errno_name(ENAMETOOLONG), "ENAMETOOLONG");
  CHECK_STR(errno_name(EADDRINUSE), "EADDRINUSE");
  CHECK_STR(errno_name(0), "EIO");
  CHECK_STR(errno_name(-7), "EIO");
  CHECK_STR(errno_name(EDOM), "EIO");
}

int main(void) {
  RUN(test_write_all_short_writes);
  RUN(test_write_all_reports_errors);
  RUN(test_buf_grows);
  RUN(test_buf_max_truncates);
  RUN(test_buf_escaped);
  RUN(test_errno_names);
  return tap_done();
}
