/* Unit tests for the secret registry (secret.c). */
#include <stdlib.h>

#include "secret.h"
#include "tap.h"

static void test_redacts_every_occurrence(void) {
  secret_add("s3cr3t", 6);
  size_t n;
  char *r = secret_redact("a s3cr3t b s3cr3t", 17, &n);
  CHECK_STR(r, "a *** b ***");
  free(r);
  secret_clear();
}

static void test_longest_first(void) {
  secret_add("abc", 3);
  secret_add("abcdef", 6);
  char *r = secret_redact("xabcdefx", 8, NULL);
  CHECK_STR(r, "x***x");
  free(r);
  secret_clear();
}

static void test_contains_and_clear(void) {
  secret_add("tok-123", 7);
  CHECK(secret_contains("has tok-123 in", 14));
  CHECK(!secret_contains("nothing here", 12));
  secret_clear();
  CHECK(!secret_contains("has tok-123 in", 14));
  CHECK_INT(secret_count(), 0);
}

static void test_empty_ignored(void) {
  secret_add("", 0);
  CHECK_INT(secret_count(), 0);
  char *r = secret_redact("plain", 5, NULL);
  CHECK_STR(r, "plain");
  free(r);
}

int main(void) {
  RUN(test_redacts_every_occurrence);
  RUN(test_longest_first);
  RUN(test_contains_and_clear);
  RUN(test_empty_ignored);
  return tap_done();
}
