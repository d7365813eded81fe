/* net.c: wait until a TCP port accepts connections; find a free port.
 *
 * Each attempt resolves the host again (a name may appear late), tries
 * every address it resolves to with a non-blocking connect bounded by
 * ATTEMPT_MS, and sleeps 10 ms, 20 ms, ... up to 200 ms between attempts.
 * Every wait is cut into short slices so a pending signal is noticed even
 * when it arrived just before poll() started. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define FIRST_PAUSE_MS 10
#define MAX_PAUSE_MS 200
#define ATTEMPT_MS 1000
#define MIN_ATTEMPT_MS 50
#define SLICE_MS 50

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pending(const struct net_wait_spec *spec) {
  return spec->pending_signal ? spec->pending_signal() : 0;
}

/* Waits for `events` on fd until the deadline. Returns the revents (0 on
 * timeout), or -1 with *sig set when a signal is pending. */
static int wait_fd(int fd, short events, long deadline, const struct net_wait_spec *spec, int *sig) {
  for (;;) {
    if ((*sig = pending(spec)) != 0) return -1;
    long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, (int)(left < SLICE_MS ? left : SLICE_MS));
    if (r > 0) return p.revents ? p.revents : events;
    if (r < 0 && errno != EINTR) return POLLERR;
  }
}

/* Sleeps until the deadline; returns a pending signal, else 0. */
static int nap(long deadline, const struct net_wait_spec *spec) {
  int sig = 0;
  for (;;) {
    if ((sig = pending(spec)) != 0) return sig;
    long left = deadline - now_ms();
    if (left <= 0) return 0;
    poll(NULL, 0, (int)(left < SLICE_MS ? left : SLICE_MS));
  }
}

enum attempt { ATTEMPT_READY, ATTEMPT_FAILED, ATTEMPT_INTERRUPTED };

/* After the handshake: a peer that closes or resets within hold_ms is a
 * forwarder with nothing behind it. Data from the peer (a server that
 * greets first) means ready at once. */
static enum attempt hold(int fd, const struct net_wait_spec *spec, struct net_wait_result *res) {
  int sig;
  int ev = wait_fd(fd, POLLIN, now_ms() + spec->hold_ms, spec, &sig);
  if (ev < 0) {
    res->signal = sig;
    return ATTEMPT_INTERRUPTED;
  }
  if (ev == 0) return ATTEMPT_READY;
  char c;
  ssize_t r;
  do r = recv(fd, &c, 1, MSG_PEEK);
  while (r < 0 && errno == EINTR);
  if (r > 0) return ATTEMPT_READY;
  if (r == 0) snprintf(res->error, sizeof res->error, "connection closed by the peer right after it was accepted");
  else snprintf(res->error, sizeof res->error, "connection reset right after it was accepted: %s", strerror(errno));
  return ATTEMPT_FAILED;
}

static enum attempt try_address(const struct addrinfo *ai, long deadline, const struct net_wait_spec *spec,
                                struct net_wait_result *res) {
  int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  if (fd < 0) {
    snprintf(res->error, sizeof res->error, "socket: %s", strerror(errno));
    return ATTEMPT_FAILED;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    snprintf(res->error, sizeof res->error, "fcntl: %s", strerror(errno));
    close(fd);
    return ATTEMPT_FAILED;
  }
  enum attempt out = ATTEMPT_FAILED;
  int e = 0;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    e = errno;
    if (e == EINPROGRESS || e == EINTR) {
      /* Bounded by the overall deadline, but even an exhausted budget
       * gives the handshake MIN_ATTEMPT_MS: a last attempt must be real. */
      long now = now_ms();
      long attempt_deadline = now + ATTEMPT_MS;
      if (attempt_deadline > deadline) attempt_deadline = deadline;
      if (attempt_deadline < now + MIN_ATTEMPT_MS) attempt_deadline = now + MIN_ATTEMPT_MS;
      int sig;
      int ev = wait_fd(fd, POLLOUT, attempt_deadline, spec, &sig);
      if (ev < 0) {
        res->signal = sig;
        close(fd);
        return ATTEMPT_INTERRUPTED;
      }
      if (ev == 0) {
        e = ETIMEDOUT;
      } else {
        socklen_t len = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0) e = errno;
      }
    }
  }
  if (e) snprintf(res->error, sizeof res->error, "%s", strerror(e));
  else out = spec->hold_ms > 0 ? hold(fd, spec, res) : ATTEMPT_READY;
  close(fd);
  return out;
}

int net_wait_tcp(const struct net_wait_spec *spec, struct net_wait_result *res) {
  memset(res, 0, sizeof *res);
  long start = now_ms();
  long deadline = start + (spec->timeout_ms > 0 ? spec->timeout_ms : 0);
  char service[16];
  snprintf(service, sizeof service, "%d", spec->port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int pause = FIRST_PAUSE_MS;

  for (;;) {
    if ((res->signal = pending(spec)) != 0) {
      res->status = NET_INTERRUPTED;
      break;
    }
    res->attempts++;
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(spec->host, service, &hints, &list);
    if (rc == EAI_NONAME || rc == EAI_SERVICE || rc == EAI_FAMILY) {
      snprintf(res->error, sizeof res->error, "cannot resolve '%s': %s", spec->host, gai_strerror(rc));
      res->status = NET_RESOLVE_FAILED;
      break;
    }
    if (rc != 0) {
      snprintf(res->error, sizeof res->error, "resolving '%s': %s", spec->host,
               rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    }
    enum attempt a = ATTEMPT_FAILED;
    for (struct addrinfo *ai = list; ai && a == ATTEMPT_FAILED; ai = ai->ai_next) a = try_address(ai, deadline, spec, res);
    if (list) freeaddrinfo(list);
    if (a == ATTEMPT_READY) {
      res->status = NET_READY;
      res->error[0] = '\0';
      break;
    }
    if (a == ATTEMPT_INTERRUPTED) {
      res->status = NET_INTERRUPTED;
      break;
    }
    long now = now_ms();
    if (now >= deadline) {
      res->status = NET_TIMEOUT;
      break;
    }
    long wake = now + pause;
    if ((res->signal = nap(wake < deadline ? wake : deadline, spec)) != 0) {
      res->status = NET_INTERRUPTED;
      break;
    }
    pause = pause * 2 > MAX_PAUSE_MS ? MAX_PAUSE_MS : pause * 2;
  }
  res->elapsed_ms = now_ms() - start;
  return res->status == NET_READY ? 0 : -1;
}

int net_free_port(const char *host, char *err, size_t errsz, const char **code) {
  if (!host) host = "127.0.0.1";
  struct addrinfo hints, *list = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(host, "0", &hints, &list);
  if (rc != 0) {
    snprintf(err, errsz, "free_port: cannot resolve '%s': %s", host,
             rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    *code = "ERESOLVE";
    return -1;
  }
  int port = -1, e = 0;
  for (struct addrinfo *ai = list; ai && port < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
      e = errno;
      continue;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
      if (ss.ss_family == AF_INET) port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
      else if (ss.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
      else e = EAFNOSUPPORT;
    } else {
      e = errno;
    }
    close(fd);
  }
  freeaddrinfo(list);
  if (port < 0) {
    snprintf(err, errsz, "free_port: cannot bind on '%s': %s", host, strerror(e ? e : EAFNOSUPPORT));
    *code = errno_name(e);
  }
  return port;
}

int net_wait_unix(const char *path, int timeout_ms, int (*pending_signal)(void),
                  struct net_wait_result *res) {
  memset(res, 0, sizeof *res);
  struct net_wait_spec spec = {.timeout_ms = timeout_ms, .pending_signal = pending_signal};
  long start = now_ms(), deadline = start + (timeout_ms > 0 ? timeout_ms : 0);
  int pause = FIRST_PAUSE_MS;
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sun.sun_path) {
    snprintf(res->error, sizeof res->error, "socket path too long: %s", path);
    res->status = NET_RESOLVE_FAILED;
    return -1;
  }
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
  for (;;) {
    if ((res->signal = pending(&spec)) != 0) {
      res->status = NET_INTERRUPTED;
      break;
    }
    res->attempts++;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
      close(fd);
      res->status = NET_READY;
      res->error[0] = '\0';
      break;
    }
    snprintf(res->error, sizeof res->error, "%s", strerror(errno));
    if (fd >= 0) close(fd);
    long now = now_ms();
    if (now >= deadline) {
      res->status = NET_TIMEOUT;
      break;
    }
    long wake = now + pause;
    if ((res->signal = nap(wake < deadline ? wake : deadline, &spec)) != 0) {
      res->status = NET_INTERRUPTED;
      break;
    }
    pause = pause * 2 > MAX_PAUSE_MS ? MAX_PAUSE_MS : pause * 2;
  }
  res->elapsed_ms = now_ms() - start;
  return res->status == NET_READY ? 0 : -1;
}
