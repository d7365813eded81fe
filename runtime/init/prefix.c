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

/* Room for `extra` more pending bytes. A failure is not sticky: the next
 * line may fit again. */
static int reserve(struct linebuf *lb, size_t extra) {
  if (buf_reserve(&lb->b, extra) == 0) return 0;
  lb->b.oom = 0;
  return -1;
}

void linebuf_feed(struct linebuf *lb, int fd, const char *prefix, const char *data, size_t n) {
  while (n > 0) {
    const char *nl = memchr(data, '\n', n);
    size_t take = nl ? (size_t)(nl - data) : n;
    size_t room = PREFIX_LINE_MAX - lb->b.len;
    if (take > room) take = room;
    if (nl && take == (size_t)(nl - data)) {
      /* A complete line: emit straight from data when nothing is pending. */
      if (lb->b.len == 0) {
        emit(fd, prefix, data, take);
      } else if (reserve(lb, take) == 0) {
        memcpy(lb->b.p + lb->b.len, data, take);
        emit(fd, prefix, lb->b.p, lb->b.len + take);
        lb->b.len = 0;
      } else {
        emit(fd, prefix, lb->b.p, lb->b.len);
        emit(fd, prefix, data, take);
        lb->b.len = 0;
      }
      data += take + 1;
      n -= take + 1;
      continue;
    }
    if (reserve(lb, take) != 0) {
      linebuf_flush(lb, fd, prefix);
      emit(fd, prefix, data, take);
    } else {
      memcpy(lb->b.p + lb->b.len, data, take);
      lb->b.len += take;
    }
    data += take;
    n -= take;
    if (lb->b.len >= PREFIX_LINE_MAX) linebuf_flush(lb, fd, prefix);
  }
}

void linebuf_flush(struct linebuf *lb, int fd, const char *prefix) {
  if (lb->b.len == 0) return;
  emit(fd, prefix, lb->b.p, lb->b.len);
  lb->b.len = 0;
}

void linebuf_free(struct linebuf *lb) { buf_free(&lb->b); }
