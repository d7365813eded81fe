/* Unit tests for curl_dl.c: libcurl loaded on demand, and the one-line
 * error when it cannot be. */
#include <stdlib.h>
#include <string.h>

#include "curl_dl.h"
#include "tap.h"

static void test_missing_library_is_one_line(void) {
  CHECK_INT(curl_dl_load_from("/nonexistent-dir", "libcurl-absent.so.0"), -1);
  const char *e = curl_dl_error();
  CHECK(strncmp(e, "cannot load libcurl (libcurl-absent.so.0): ", 43) == 0, "got \"%s\"", e);
  CHECK(strchr(e, '\n') == NULL, "got \"%s\"", e);
  /* Not remembered as loaded: the same call fails the same way. */
  CHECK_INT(curl_dl_load_from(NULL, "libcurl-absent.so.0"), -1);
  CHECK(strstr(curl_dl_error(), "libcurl-absent.so.0") != NULL, "got \"%s\"", curl_dl_error());
}

/* A library that loads but is not libcurl names the first missing function. */
static void test_wrong_library_names_the_symbol(void) {
#if defined(__linux__) && defined(__GLIBC__)
  CHECK_INT(curl_dl_load_from(NULL, "libm.so.6"), -1);
  CHECK_STR(curl_dl_error(), "cannot load libcurl (libm.so.6): it has no curl_global_init");
#else
  SKIP("needs glibc's libm.so.6 as a library that is not libcurl");
#endif
}

/* GNUTLS_NO_IMPLICIT_INIT is set only while a library loads: a failed
 * load leaves the environment as it was, with or without a user's value. */
static void test_gnutls_switch_is_not_left_behind(void) {
  unsetenv("GNUTLS_NO_IMPLICIT_INIT");
  CHECK_INT(curl_dl_load_from(NULL, "libcurl-absent.so.0"), -1);
  CHECK(getenv("GNUTLS_NO_IMPLICIT_INIT") == NULL, "left set to \"%s\"", getenv("GNUTLS_NO_IMPLICIT_INIT"));
  setenv("GNUTLS_NO_IMPLICIT_INIT", "0", 1);
  CHECK_INT(curl_dl_load_from(NULL, "libcurl-absent.so.0"), -1);
  CHECK(getenv("GNUTLS_NO_IMPLICIT_INIT") && strcmp(getenv("GNUTLS_NO_IMPLICIT_INIT"), "0") == 0,
        "the user's value changed");
  unsetenv("GNUTLS_NO_IMPLICIT_INIT");
}

static void test_loads_the_build_library(void) {
  CHECK_INT(curl_dl_load(), 0);
  CHECK(getenv("GNUTLS_NO_IMPLICIT_INIT") == NULL, "left set after loading libcurl");
  CHECK_STR(curl_dl_error(), "");
  CHECK(bottle_curl.easy_init && bottle_curl.slist_free_all && bottle_curl.multi_poll);
  CHECK_STR(curl_easy_strerror(CURLE_OK), "No error");
  CURL *h = curl_easy_init();
  CHECK(h != NULL);
  CHECK_INT(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L), CURLE_OK);
  struct curl_slist *l = curl_slist_append(NULL, "X-A: b");
  CHECK(l != NULL && strcmp(l->data, "X-A: b") == 0);
  curl_slist_free_all(l);
  curl_easy_cleanup(h);
  /* Once loaded, any later call succeeds without loading again. */
  CHECK_INT(curl_dl_load_from(NULL, "libcurl-absent.so.0"), 0);
}

int main(void) {
  RUN(test_missing_library_is_one_line);
  RUN(test_wrong_library_names_the_symbol);
  RUN(test_gnutls_switch_is_not_left_behind);
  RUN(test_loads_the_build_library);
  return tap_done();
}
