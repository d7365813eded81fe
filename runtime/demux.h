/* demux.h: the demultiplexer of Docker's attach, exec and logs streams.
 * Pure C, no I/O: bytes go in as they arrive, in pieces of any size; stdout
 * and stderr come out.
 *
 * Without a TTY the engine frames the stream: an 8-byte header (byte 0 the
 * stream: 0 stdin echo, 1 stdout, 2 stderr, 3 the engine's own error
 * text; bytes 1-3 unused; bytes 4-7 the payload length, big-endian) and
 * then that many payload bytes. Streams 0 and 1 go to stdout, 2 and 3 to
 * stderr. A TTY stream (`raw`) has no frames: all of it is stdout.
 *
 * The caller owns the struct: demux_init, any number of demux_feed, then
 * either demux_finish (hands the two streams over) or demux_free (drops
 * them). A stream that ends inside a header or a payload keeps what was
 * complete; demux_partial tells whether it did. */
#ifndef BOTTLE_DEMUX_H
#define BOTTLE_DEMUX_H

#include <stddef.h>

#include "util.h"

#define DEMUX_HEADER_SIZE 8

struct demux {
  unsigned char hdr[DEMUX_HEADER_SIZE];
  size_t hdr_have; /* header bytes read so far */
  size_t left;     /* payload bytes left in the current frame */
  int stream;
  int raw;
  struct buf out, err;
};

void demux_init(struct demux *m, int raw);
/* 0, or -1 when out of memory (the state is then only good for demux_free). */
int demux_feed(struct demux *m, const void *data, size_t n);
/* 1 when the bytes fed so far end inside a frame header or payload. */
int demux_partial(const struct demux *m);
/* Hands stdout and stderr over as malloc'd NUL-terminated strings (never
 * NULL on success) and resets m. -1 when out of memory (nothing handed
 * over, m freed). */
int demux_finish(struct demux *m, char **out, size_t *out_len, char **err, size_t *err_len);
void demux_free(struct demux *m);

#endif
