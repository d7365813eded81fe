/* Unit tests for demux.c, the attach/exec/logs stream demultiplexer. */
#include <stdlib.h>
#include <string.h>

#include "demux.h"
#include "tap.h"

static size_t frame(unsigned char *at, int stream, const char *payload, size_t n) {
  at[0] = (unsigned char)stream;
  at[1] = at[2] = at[3] = 0;
  at[4] = (unsigned char)(n >> 24);
  at[5] = (unsigned char)(n >> 16);
  at[6] = (unsigned char)(n >> 8);
  at[7] = (unsigned char)n;
  memcpy(at + 8, payload, n);
  return 8 + n;
}

/* stdout "hello ", stdin echo "in ", stderr "oops", an empty frame, the
 * engine's own error text, stdout "world" with a NUL inside. */
static size_t sample(unsigned char *s) {
  size_t n = 0;
  n += frame(s + n, 1, "hello ", 6);
  n += frame(s + n, 0, "in ", 3);
  n += frame(s + n, 2, "oops", 4);
  n += frame(s + n, 1, "", 0);
  n += frame(s + n, 3, "|engine", 7);
  n += frame(s + n, 1, "wor\0ld", 6);
  return n;
}

static void check_sample(struct demux *m, const char *how) {
  char *out, *err;
  size_t on, en;
  CHECK(!demux_partial(m), "%s: partial", how);
  CHECK_INT(demux_finish(m, &out, &on, &err, &en), 0);
  CHECK(on == 15 && memcmp(out, "hello in wor\0ld", 15) == 0 && out[15] == '\0', "%s: out (%zu)", how, on);
  CHECK(en == 11 && strcmp(err, "oops|engine") == 0, "%s: err %s", how, err);
  free(out);
  free(err);
}

static void test_whole_and_split_at_every_byte(void) {
  unsigned char s[128];
  size_t n = sample(s);
  struct demux m;
  demux_init(&m, 0);
  CHECK_INT(demux_feed(&m, s, n), 0);
  check_sample(&m, "whole");

  demux_init(&m, 0);
  for (size_t i = 0; i < n; i++) CHECK_INT(demux_feed(&m, s + i, 1), 0);
  check_sample(&m, "byte by byte");

  for (size_t cut = 1; cut < n; cut++) {
    demux_init(&m, 0);
    demux_feed(&m, s, cut);
    demux_feed(&m, s + cut, 0);
    demux_feed(&m, s + cut, n - cut);
    char how[32];
    snprintf(how, sizeof how, "cut at %zu", cut);
    check_sample(&m, how);
  }
}

static void test_raw_is_all_stdout(void) {
  struct demux m;
  demux_init(&m, 1);
  unsigned char s[128];
  size_t n = sample(s);
  demux_feed(&m, s, n);
  CHECK(!demux_partial(&m));
  char *out, *err;
  size_t on, en;
  CHECK_INT(demux_finish(&m, &out, &on, &err, &en), 0);
  CHECK(on == n && memcmp(out, s, n) == 0, "raw bytes kept as they came");
  CHECK_INT(en, 0);
  CHECK_STR(err, "");
  free(out);
  free(err);
}

static void test_truncated_streams(void) {
  unsigned char s[64];
  size_t n = frame(s, 1, "abcdef", 6);
  struct demux m;
  demux_init(&m, 0);
  demux_feed(&m, s, 5); /* inside the header */
  CHECK(demux_partial(&m));
  demux_feed(&m, s + 5, 6); /* header done, 3 payload bytes */
  CHECK(demux_partial(&m));
  char *out, *err;
  size_t on, en;
  CHECK_INT(demux_finish(&m, &out, &on, &err, &en), 0);
  CHECK_STR(out, "abc");
  CHECK_STR(err, "");
  free(out);
  free(err);
  CHECK(!demux_partial(&m), "finish resets");
  (void)n;

  /* A header announcing 4 GiB - 1 with a few bytes behind it. */
  unsigned char huge[12] = {2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 'x', 'y', 'z', '!'};
  demux_feed(&m, huge, sizeof huge);
  CHECK(demux_partial(&m));
  CHECK_INT(demux_finish(&m, &out, &on, &err, &en), 0);
  CHECK_STR(err, "xyz!");
  CHECK_STR(out, "");
  free(out);
  free(err);
}

static void test_free_drops_everything(void) {
  unsigned char s[128];
  size_t n = sample(s);
  struct demux m;
  demux_init(&m, 0);
  demux_feed(&m, s, n - 3);
  demux_free(&m);
  CHECK(!demux_partial(&m) && m.out.len == 0 && m.err.len == 0 && m.out.p == NULL);
  demux_feed(&m, s, n);
  check_sample(&m, "after free");
}

int main(void) {
  RUN(test_whole_and_split_at_every_byte);
  RUN(test_raw_is_all_stdout);
  RUN(test_truncated_streams);
  RUN(test_free_drops_everything);
  return tap_done();
}
