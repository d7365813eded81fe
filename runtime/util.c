/* util.c: see util.h. */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int write_all(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

const char *errno_name(int e) {
  switch (e) {
  case ENOENT: return "ENOENT";
  case EEXIST: return "EEXIST";
  case EACCES: return "EACCES";
  case EPERM: return "EPERM";
  case ENOTDIR: return "ENOTDIR";
  case EISDIR: return "EISDIR";
  case ENOTEMPTY: return "ENOTEMPTY";
  case ENOSPC: return "ENOSPC";
  case ELOOP: return "ELOOP";
  case ENAMETOOLONG: return "ENAMETOOLONG";
  case EROFS: return "EROFS";
  case EBUSY: return "EBUSY";
  case ENXIO: return "ENXIO";
  case EINVAL: return "EINVAL";
  case ENOMEM: return "ENOMEM";
  case EMFILE: return "EMFILE";
  case EPIPE: return "EPIPE";
  case EPROTO: return "EPROTO";
  case ECONNREFUSED: return "ECONNREFUSED";
  case ECONNRESET: return "ECONNRESET";
  case ETIMEDOUT: return "ETIMEDOUT";
  case EADDRINUSE: return "EADDRINUSE";
  case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
  case EAFNOSUPPORT: return "EAFNOSUPPORT";
  default: return "EIO";
  }
}

int buf_reserve(struct buf *b, size_t extra) {
  if (b->oom) return -1;
  if (extra > SIZE_MAX / 2 - b->len) {
    b->oom = 1;
    return -1;
  }
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

int buf_addn(struct buf *b, const void *s, size_t n) {
  if (b->max && b->len + n > b->max) {
    b->truncated = 1;
    n = b->max > b->len ? b->max - b->len : 0;
  }
  if (buf_reserve(b, n) < 0) return -1;
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

int buf_adds(struct buf *b, const char *s) { return buf_addn(b, s, strlen(s)); }

int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return -1;
  char small[256];
  char *tmp = (size_t)n < sizeof small ? small : malloc((size_t)n + 1);
  if (!tmp) {
    b->oom = 1;
    return -1;
  }
  va_start(ap, fmt);
  vsnprintf(tmp, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int rc = buf_addn(b, tmp, (size_t)n);
  if (tmp != small) free(tmp);
  return rc;
}

int buf_add_escaped(struct buf *b, const char *s, const char *keep) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~", *p) || (keep && strchr(keep, *p))) {
      buf_addn(b, p, 1);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      buf_addn(b, e, 3);
    }
  }
  return b->oom ? -1 : 0;
}

void buf_free(struct buf *b) {
  free(b->p);
  size_t max = b->max;
  memset(b, 0, sizeof *b);
  b->max = max;
}

char *buf_take(struct buf *b, size_t *len) {
  if (buf_reserve(b, 0) < 0) {
    buf_free(b);
    return NULL;
  }
  char *p = b->p;
  p[b->len] = '\0';
  if (len) *len = b->len;
  size_t max = b->max;
  memset(b, 0, sizeof *b);
  b->max = max;
  return p;
}
