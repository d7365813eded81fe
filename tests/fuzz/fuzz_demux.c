/* fuzz_demux.c: the demultiplexer of Docker's attach/exec/logs streams
 * (runtime/demux.c), fed the engine's bytes in pieces of every size.
 *
 * The first input byte picks the mode (bit 0: a TTY stream, no frames) and
 * the piece size (the rest, 1..128); the others are the stream. Checked:
 * nothing more comes out than went in, a TTY stream comes out whole and
 * unchanged, and feeding the same bytes all at once gives the same result
 * (the answer never depends on how the engine's writes were cut). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "demux.h"

static int run(const uint8_t *data, size_t size, int raw, size_t piece, char **out, size_t *out_len, char **err,
               size_t *err_len, int *partial) {
  struct demux m;
  demux_init(&m, raw);
  for (size_t off = 0; off < size; off += piece) {
    size_t n = size - off < piece ? size - off : piece;
    if (demux_feed(&m, data + off, n) < 0) {
      demux_free(&m);
      return -1;
    }
  }
  *partial = demux_partial(&m);
  return demux_finish(&m, out, out_len, err, err_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int raw = data[0] & 1;
  size_t piece = (size_t)(data[0] >> 1) + 1;
  data++;
  size--;
  char *out, *err, *out1, *err1;
  size_t out_len, err_len, out1_len, err1_len;
  int partial, partial1;
  if (run(data, size, raw, piece, &out, &out_len, &err, &err_len, &partial) < 0) return 0;
  if (run(data, size, raw, size ? size : 1, &out1, &out1_len, &err1, &err1_len, &partial1) < 0) abort();
  if (out_len + err_len > size) abort();
  if (raw && (out_len != size || err_len != 0 || memcmp(out, data, size) != 0 || partial)) abort();
  if (out_len != out1_len || err_len != err1_len || partial != partial1 || memcmp(out, out1, out_len) != 0 ||
      memcmp(err, err1, err_len) != 0)
    abort();
  if (out[out_len] != '\0' || err[err_len] != '\0') abort();
  free(out);
  free(err);
  free(out1);
  free(err1);
  return 0;
}
