/* util.h: small pure-C helpers every part of the runtime shares (the bottle
 * binary, its C unit tests and bottle-init). No Lua, no libraries beyond
 * libc, so bottle-init can link it too.
 *
 * struct buf is a growable byte buffer in the manner of git's strbuf: the
 * caller owns the struct (zero-initialise it: `struct buf b = {0};`), the
 * buffer owns `p`. Bytes are always followed by a NUL once anything was
 * added. An allocation failure sets `oom` and turns every later add into a
 * no-op, so a sequence of adds needs one check at the end. `max` (0: no
 * limit) caps `len`: what does not fit is dropped and `truncated` is set. */
#ifndef BOTTLE_UTIL_H
#define BOTTLE_UTIL_H

#include <stddef.h>

/* Writes all n bytes, retrying short writes and EINTR. 0, or -1 with errno
 * set by the failed write(). */
int write_all(int fd, const void *data, size_t n);

/* The symbolic name of an errno value ("ENOENT"); "EIO" for any value
 * outside the set listed in docs/api.md (the message still carries
 * strerror's text). */
const char *errno_name(int e);

struct buf {
  char *p;
  size_t len, cap;
  size_t max; /* 0: unbounded */
  int oom, truncated;
};

/* Makes room for `extra` more bytes (and the NUL). 0, or -1 on oom. */
int buf_reserve(struct buf *b, size_t extra);
/* Each returns 0, or -1 when the buffer is (now) out of memory. */
int buf_addn(struct buf *b, const void *s, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Percent-encodes all but RFC 3986 unreserved characters and those in
 * `keep` (may be NULL). */
int buf_add_escaped(struct buf *b, const char *s, const char *keep);
void buf_free(struct buf *b);
/* Hands the bytes over as a NUL-terminated malloc'd string ("" when
 * nothing was added) and empties b; NULL (b freed) when out of memory. */
char *buf_take(struct buf *b, size_t *len);

#endif
