/* secret.c: see secret.h. A small array is plenty: a launch registers a
 * handful of tokens. */
#include "secret.h"

#include <stdlib.h>
#include <string.h>

struct secret {
  char *value;
  size_t len;
};

static struct secret *secrets;
static size_t nsecrets, capsecrets;

static int by_length_desc(const void *a, const void *b) {
  const struct secret *x = a, *y = b;
  return (x->len < y->len) - (x->len > y->len);
}

int secret_add(const char *value, size_t len) {
  if (!value || len == 0) return 0;
  for (size_t i = 0; i < nsecrets; i++)
    if (secrets[i].len == len && memcmp(secrets[i].value, value, len) == 0) return 0;
  if (nsecrets == capsecrets) {
    size_t cap = capsecrets ? capsecrets * 2 : 8;
    struct secret *n = realloc(secrets, cap * sizeof *n);
    if (!n) return -1;
    secrets = n;
    capsecrets = cap;
  }
  char *copy = malloc(len + 1);
  if (!copy) return -1;
  memcpy(copy, value, len);
  copy[len] = '\0';
  secrets[nsecrets].value = copy;
  secrets[nsecrets].len = len;
  nsecrets++;
  qsort(secrets, nsecrets, sizeof *secrets, by_length_desc);
  return 0;
}

size_t secret_count(void) { return nsecrets; }

/* Index of the registered secret that starts at s[0], or -1. */
static long match_at(const char *s, size_t left) {
  for (size_t i = 0; i < nsecrets; i++)
    if (secrets[i].len <= left && memcmp(s, secrets[i].value, secrets[i].len) == 0) return (long)i;
  return -1;
}

int secret_contains(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (match_at(s + i, len - i) >= 0) return 1;
  return 0;
}

char *secret_redact(const char *s, size_t len, size_t *out_len) {
  /* "***" is never longer than a value of 3+ bytes; size for the worst case
   * of one-byte secrets everywhere. */
  size_t cap = len * 3 + 1;
  char *out = malloc(cap);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    long m = nsecrets ? match_at(s + i, len - i) : -1;
    if (m >= 0) {
      memcpy(out + o, "***", 3);
      o += 3;
      i += secrets[m].len;
    } else {
      out[o++] = s[i++];
    }
  }
  out[o] = '\0';
  if (out_len) *out_len = o;
  return out;
}

void secret_clear(void) {
  for (size_t i = 0; i < nsecrets; i++) {
    volatile char *p = secrets[i].value;
    for (size_t j = 0; j < secrets[i].len; j++) p[j] = 0;
    free(secrets[i].value);
  }
  free(secrets);
  secrets = NULL;
  nsecrets = capsecrets = 0;
}
