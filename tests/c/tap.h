/* tap.h: the C unit tests' tiny harness.
 *
 * A test file defines `static void test_x(void)` functions and lists them in
 * main() with RUN(test_x). CHECK records a failure and keeps going; SKIP
 * ends the current test as skipped with a reason. The last line printed is
 * `N passed, N failed, N skipped`, which tests/run adds up across suites.
 * The exit status is 1 when anything failed. */
#ifndef BOTTLE_TAP_H
#define BOTTLE_TAP_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_passed, tap_failed, tap_skipped;
static int tap_cur_failed;
static jmp_buf tap_skip_jmp;
static char tap_skip_reason[256];

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      tap_cur_failed++;                                                         \
      fprintf(stdout, "#   %s:%d: CHECK(%s) failed:", __FILE__, __LINE__, #cond); \
      fprintf(stdout, " " __VA_ARGS__);                                         \
      fputc('\n', stdout);                                                      \
    }                                                                           \
  } while (0)

#define CHECK_STR(got, want)                                                    \
  do {                                                                          \
    const char *g_ = (got), *w_ = (want);                                       \
    CHECK(g_ && w_ && strcmp(g_, w_) == 0, "got \"%s\", want \"%s\"",          \
          g_ ? g_ : "(null)", w_ ? w_ : "(null)");                              \
  } while (0)

#define CHECK_INT(got, want)                                                    \
  do {                                                                          \
    long long g_ = (long long)(got), w_ = (long long)(want);                    \
    CHECK(g_ == w_, "got %lld, want %lld", g_, w_);                             \
  } while (0)

__attribute__((unused, format(printf, 1, 2), noreturn)) static void tap_skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tap_skip_reason, sizeof tap_skip_reason, fmt, ap);
  va_end(ap);
  longjmp(tap_skip_jmp, 1);
}
#define SKIP(...) tap_skip(__VA_ARGS__)

static void tap_run(void (*fn)(void), const char *name) {
  tap_cur_failed = 0;
  fflush(stdout);
  if (setjmp(tap_skip_jmp)) {
    tap_skipped++;
    printf("skip - %s: %s\n", name, tap_skip_reason);
    return;
  }
  fn();
  if (tap_cur_failed) {
    tap_failed++;
    printf("not ok - %s\n", name);
  } else {
    tap_passed++;
    printf("ok - %s\n", name);
  }
  fflush(stdout);
}
#define RUN(fn) tap_run(fn, #fn)

static int tap_done(void) {
  printf("%d passed, %d failed, %d skipped\n", tap_passed, tap_failed, tap_skipped);
  return tap_failed ? 1 : 0;
}

#endif
