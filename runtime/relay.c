/* relay.c: unix socket -> TCP relays (relay.h).
 *
 * One poll loop serves every route: listening sockets and, per accepted
 * connection, a pair of descriptors with one buffer per direction. A
 * direction is read only while its buffer is empty and written only while
 * it holds data, so memory per connection is bounded; an EOF is passed on
 * as a half close (shutdown SHUT_WR), and the pair is closed when both
 * directions are done or either side fails. */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { RELAY_BUF = 64 * 1024 };

struct half {
  int from, to;
  char buf[RELAY_BUF];
  size_t len, off;
  int eof;  /* `from` reached EOF and the buffer was drained into `to` */
};

struct pair {
  struct half up, down; /* client -> server, server -> client */
  int client, server;
};

static void set_cloexec_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFD);
  if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
  fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int relay_parse(char *spec, struct relay_route *r, char *err, size_t errsz) {
  memset(r, 0, sizeof *r);
  r->fd = -1;
  char *eq = strchr(spec, '=');
  char *colon = strrchr(spec, ':');
  if (!eq || eq == spec || !colon || colon < eq) {
    snprintf(err, errsz, "bad route '%s': expected PATH=HOST:PORT", spec);
    return -1;
  }
  *eq = '\0';
  *colon = '\0';
  char *host = eq + 1;
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    host[hl - 1] = '\0';
    host++;
  }
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (!*host || !end || *end || port < 1 || port > 65535) {
    snprintf(err, errsz, "bad route for %s: expected HOST:PORT with a port from 1 to 65535", spec);
    return -1;
  }
  struct sockaddr_un sun;
  if (strlen(spec) >= sizeof sun.sun_path) {
    snprintf(err, errsz, "socket path too long (%zu bytes, at most %zu): %s", strlen(spec),
             sizeof sun.sun_path - 1, spec);
    return -1;
  }
  r->path = spec;
  r->host = host;
  r->port = (int)port;
  return 0;
}

int relay_listen(struct relay_route *r, int uid, int gid, char *err, size_t errsz) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", r->path);
  struct stat st;
  if (lstat(r->path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      snprintf(err, errsz, "%s exists and is not a socket; not replacing it", r->path);
      return -1;
    }
    unlink(r->path);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) {
    snprintf(err, errsz, "socket for %s: %s", r->path, strerror(errno));
    return -1;
  }
  /* 0600 from the start: no moment in which another user could connect. */
  mode_t old = umask(0177);
  int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
  umask(old);
  if (rc < 0) {
    snprintf(err, errsz, "bind %s: %s", r->path, strerror(errno));
    close(fd);
    return -1;
  }
  if ((uid >= 0 && chown(r->path, (uid_t)uid, (gid_t)gid) < 0) || listen(fd, 64) < 0) {
    snprintf(err, errsz, "%s %s: %s", uid >= 0 ? "chown/listen" : "listen", r->path,
             strerror(errno));
    close(fd);
    unlink(r->path);
    return -1;
  }
  set_cloexec_nonblock(fd);
  r->fd = fd;
  return 0;
}

/* A blocking connect (the target is on loopback: it answers or refuses at
 * once), then non-blocking for the relay. */
static int dial(const struct relay_route *r) {
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, r->host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((unsigned short)r->port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, r->host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((unsigned short)r->port);
    len = sizeof *v6;
  } else {
    errno = EINVAL;
    return -1;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  set_cloexec_nonblock(fd);
  return fd;
}

/* Moves bytes for one direction; returns -1 when the pair must close. */
static int pump(struct half *h, short rev_from, short rev_to) {
  if (h->len == 0 && !h->eof && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
    ssize_t n = read(h->from, h->buf, sizeof h->buf);
    if (n > 0) {
      h->len = (size_t)n;
      h->off = 0;
    } else if (n == 0) {
      h->eof = 1;
      shutdown(h->to, SHUT_WR);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return -1;
    }
  }
  if (h->len > 0 && (rev_to & (POLLOUT | POLLERR | POLLHUP))) {
    ssize_t n = write(h->to, h->buf + h->off, h->len);
    if (n > 0) {
      h->off += (size_t)n;
      h->len -= (size_t)n;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return -1;
    }
  }
  return 0;
}

static void pair_close(struct pair *p) {
  close(p->client);
  close(p->server);
  free(p);
}

static int grow(struct pair ***pairs, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t ncap = *cap ? *cap * 2 : 16;
  struct pair **np = realloc(*pairs, ncap * sizeof *np);
  if (!np) return -1;
  *pairs = np;
  *cap = ncap;
  return 0;
}

static void accept_one(struct relay_route *r, struct pair ***pairs, size_t *np, size_t *cap) {
  int c = accept(r->fd, NULL, NULL);
  if (c < 0) return;
  set_cloexec_nonblock(c);
  int s = dial(r);
  struct pair *p = s >= 0 && grow(pairs, cap, *np + 1) == 0 ? calloc(1, sizeof *p) : NULL;
  if (!p) {
    /* The daemon is not there (yet): the guest sees its connection close. */
    fprintf(stderr, "relay: %s -> %s:%d: %s\n", r->path, r->host, r->port,
            s < 0 ? strerror(errno) : "out of memory");
    close(c);
    if (s >= 0) close(s);
    return;
  }
  p->client = c;
  p->server = s;
  p->up.from = c, p->up.to = s;
  p->down.from = s, p->down.to = c;
  (*pairs)[(*np)++] = p;
}

int relay_serve(struct relay_route *routes, size_t n, volatile sig_atomic_t *stop, char *err,
                size_t errsz) {
  struct pair **pairs = NULL;
  size_t np = 0, cap = 0;
  int rc = 0;
  while (!*stop) {
    size_t nfds = n + 2 * np;
    struct pollfd *fds = calloc(nfds ? nfds : 1, sizeof *fds);
    if (!fds) {
      snprintf(err, errsz, "out of memory");
      rc = -1;
      break;
    }
    for (size_t i = 0; i < n; i++) fds[i] = (struct pollfd){.fd = routes[i].fd, .events = POLLIN};
    for (size_t i = 0; i < np; i++) {
      struct pair *p = pairs[i];
      short ce = 0, se = 0;
      if (p->up.len == 0 && !p->up.eof) ce |= POLLIN;
      if (p->down.len > 0) ce |= POLLOUT;
      if (p->down.len == 0 && !p->down.eof) se |= POLLIN;
      if (p->up.len > 0) se |= POLLOUT;
      fds[n + 2 * i] = (struct pollfd){.fd = p->client, .events = ce};
      fds[n + 2 * i + 1] = (struct pollfd){.fd = p->server, .events = se};
    }
    int ready = poll(fds, (nfds_t)nfds, 500);
    if (ready < 0 && errno != EINTR) {
      snprintf(err, errsz, "poll: %s", strerror(errno));
      free(fds);
      rc = -1;
      break;
    }
    size_t before = np;
    for (size_t i = 0; ready > 0 && i < before; i++) {
      struct pair *p = pairs[i];
      short cr = fds[n + 2 * i].revents, sr = fds[n + 2 * i + 1].revents;
      if (pump(&p->up, cr, sr) < 0 || pump(&p->down, sr, cr) < 0 ||
          (p->up.eof && p->down.eof && p->up.len == 0 && p->down.len == 0)) {
        pair_close(p);
        pairs[i] = NULL;
      }
    }
    size_t kept = 0;
    for (size_t i = 0; i < np; i++)
      if (pairs[i]) pairs[kept++] = pairs[i];
    np = kept;
    for (size_t i = 0; ready > 0 && i < n; i++)
      if (fds[i].revents & POLLIN) accept_one(&routes[i], &pairs, &np, &cap);
    free(fds);
  }
  for (size_t i = 0; i < np; i++) pair_close(pairs[i]);
  free(pairs);
  for (size_t i = 0; i < n; i++) {
    if (routes[i].fd >= 0) close(routes[i].fd);
    routes[i].fd = -1;
    unlink(routes[i].path);
  }
  return rc;
}

static volatile sig_atomic_t relay_stop;
static void on_stop(int sig) {
  (void)sig;
  relay_stop = 1;
}

static int parse_owner(const char *s, int *uid, int *gid) {
  char *end = NULL;
  long u = strtol(s, &end, 10);
  if (end == s || *end != ':') return -1;
  const char *g = end + 1;
  long gg = strtol(g, &end, 10);
  if (end == g || *end || u < 0 || gg < 0) return -1;
  *uid = (int)u;
  *gid = (int)gg;
  return 0;
}

int relay_main(const char *who, int argc, char **argv) {
  int uid = -1, gid = -1, i = 0;
  char err[512];
  if (i + 1 < argc && strcmp(argv[i], "--owner") == 0) {
    if (parse_owner(argv[i + 1], &uid, &gid) < 0) {
      fprintf(stderr, "%s: bad --owner '%s': expected UID:GID\n", who, argv[i + 1]);
      return 2;
    }
    i += 2;
  }
  size_t n = (size_t)(argc - i);
  if (n == 0) {
    fprintf(stderr, "usage: %s [--owner UID:GID] PATH=HOST:PORT...\n", who);
    return 2;
  }
  struct relay_route *routes = calloc(n, sizeof *routes);
  if (!routes) return 1;
  int status = 0;
  size_t made = 0;
  for (; made < n; made++) {
    if (relay_parse(argv[i + (int)made], &routes[made], err, sizeof err) < 0) {
      fprintf(stderr, "%s: %s\n", who, err);
      status = 2;
      break;
    }
    if (relay_listen(&routes[made], uid, gid, err, sizeof err) < 0) {
      fprintf(stderr, "%s: %s\n", who, err);
      status = 1;
      break;
    }
  }
  if (status == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (relay_serve(routes, n, &relay_stop, err, sizeof err) < 0) {
      fprintf(stderr, "%s: %s\n", who, err);
      status = 1;
    }
  } else {
    for (size_t k = 0; k < made; k++) {
      if (routes[k].fd >= 0) close(routes[k].fd);
      unlink(routes[k].path);
    }
  }
  free(routes);
  return status;
}
