/* prefix.c: the `[name] ` prefix on every line a daemon prints.
 *
 * Each daemon stream is buffered until a newline so lines of different
 * daemons never interleave mid-line; a complete line goes out as one
 * write(). A line that never ends is cut at PREFIX_LINE_MAX rather than
 * buffered without bound. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "init.h"

void write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return; /* nowhere left to report it */
    }
    buf += w;
    n -= (size_t)w;
  }
}

static void emit(int fd, const char *prefix, const char *line, size_t n) {
  size_t plen = strlen(prefix);
  char stackbuf[4096];
  char *out = plen + n + 1 <= sizeof stackbuf ? stackbuf : malloc(plen + n + 1);
  if (!out) {
    write_all(fd, prefix, plen);
    write_all(fd, line, n);
    write_all(fd, "\n", 1);
    return;
  }
  memcpy(out, prefix, plen);
  memcpy(out + plen, line, n);
  out[plen + n] = '\n';
  write_all(fd, out, plen + n + 1);
  if (out != stackbuf) free(out);
}

static int reserve(struct linebuf *lb, size_t need) {
  if (need <= lb->cap) return 0;
  size_t cap = lb->cap ? lb->cap : 256;
  while (cap < need) cap *= 2;
  char *nb = realloc(lb->buf, cap);
  if (!nb) return -1;
  lb->buf = nb;
  lb->cap = cap;
  return 0;
}

void linebuf_feed(struct linebuf *lb, int fd, const char *prefix, const char *data, size_t n) {
  while (n > 0) {
    const char *nl = memchr(data, '\n', n);
    size_t take = nl ? (size_t)(nl - data) : n;
    size_t room = PREFIX_LINE_MAX - lb->len;
    if (take > room) take = room;
    if (nl && take == (size_t)(nl - data)) {
      /* A complete line: emit straight from data when nothing is pending. */
      if (lb->len == 0) {
        emit(fd, prefix, data, take);
      } else if (reserve(lb, lb->len + take) == 0) {
        memcpy(lb->buf + lb->len, data, take);
        emit(fd, prefix, lb->buf, lb->len + take);
        lb->len = 0;
      } else {
        emit(fd, prefix, lb->buf, lb->len);
        emit(fd, prefix, data, take);
        lb->len = 0;
      }
      data += take + 1;
      n -= take + 1;
      continue;
    }
    if (reserve(lb, lb->len + take) != 0) {
      linebuf_flush(lb, fd, prefix);
      emit(fd, prefix, data, take);
    } else {
      memcpy(lb->buf + lb->len, data, take);
      lb->len += take;
    }
    data += take;
    n -= take;
    if (lb->len >= PREFIX_LINE_MAX) linebuf_flush(lb, fd, prefix);
  }
}

void linebuf_flush(struct linebuf *lb, int fd, const char *prefix) {
  if (lb->len == 0) return;
  emit(fd, prefix, lb->buf, lb->len);
  lb->len = 0;
}

void linebuf_free(struct linebuf *lb) {
  free(lb->buf);
  lb->buf = NULL;
  lb->len = lb->cap = 0;
}
