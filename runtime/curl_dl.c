/* curl_dl.c: see curl_dl.h. */
#define CURL_DL_NO_REDIRECT
#include "curl_dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shared object's install name: the ABI has been .4 since 2006. The
 * build passes the directory pkg-config reported, tried first so the
 * library the headers came from is the one loaded; the bare name then
 * goes through the loader's own search path. */
#ifndef BOTTLE_LIBCURL_NAME
#ifdef __APPLE__
#define BOTTLE_LIBCURL_NAME "libcurl.4.dylib"
#else
#define BOTTLE_LIBCURL_NAME "libcurl.so.4"
#endif
#endif
#ifndef BOTTLE_LIBCURL_DIR
#define BOTTLE_LIBCURL_DIR ""
#endif

struct curl_dl bottle_curl;

static int loaded;
static char error[512];

const char *curl_dl_error(void) { return error; }

/* RTLD_LAZY: of libcurl's and its ~30 dependencies' functions only the
 * few called get bound, which is measurably cheaper than binding all. */
static void *open_lib(const char *dir, const char *name) {
  char path[1024];
  void *h = NULL;
  if (dir && dir[0]) {
    snprintf(path, sizeof path, "%s/%s", dir, name);
    h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
  }
  if (!h) h = dlopen(name, RTLD_LAZY | RTLD_LOCAL);
  return h;
}

/* GnuTLS arrives only as a dependency of libcurl's own dependencies
 * (librtmp, for one, on Debian); bottle never uses it, yet its load-time
 * constructor initialises it, about 1 MiB of resident memory per launch.
 * GnuTLS's documented switch GNUTLS_NO_IMPLICIT_INIT=1 skips that implicit
 * gnutls_global_init (gnutls_global_init(3)). It is read only while the
 * library loads, so it is set around the dlopen alone: no child inherits
 * it, and a value the user set is left as it is. */
static void *open_lib_without_gnutls_init(const char *dir, const char *name) {
  static const char var[] = "GNUTLS_NO_IMPLICIT_INIT";
  int set = getenv(var) == NULL && setenv(var, "1", 0) == 0;
  void *h = open_lib(dir, name);
  if (set) unsetenv(var);
  return h;
}

int curl_dl_load(void) { return curl_dl_load_from(BOTTLE_LIBCURL_DIR, BOTTLE_LIBCURL_NAME); }

int curl_dl_load_from(const char *dir, const char *name) {
  if (loaded) return 0;
  error[0] = '\0';
  void *h = open_lib_without_gnutls_init(dir, name);
  if (!h) {
    const char *why = dlerror();
    snprintf(error, sizeof error, "cannot load libcurl (%s): %s", name, why ? why : "not found");
    /* dlerror's text may span lines; the message is one line. */
    error[strcspn(error, "\n")] = '\0';
    return -1;
  }
  /* ISO C has no cast from dlsym's void * to a function pointer; POSIX
   * guarantees both have the same representation, so copy the bytes. */
#define LOAD(field, sym)                                                                   \
  do {                                                                                     \
    void *p = dlsym(h, sym);                                                               \
    if (!p) {                                                                              \
      snprintf(error, sizeof error, "cannot load libcurl (%s): it has no %s", name, sym); \
      dlclose(h);                                                                          \
      return -1;                                                                           \
    }                                                                                      \
    memcpy(&bottle_curl.field, &p, sizeof p);                                              \
  } while (0)
  LOAD(global_init, "curl_global_init");
  LOAD(easy_init, "curl_easy_init");
  LOAD(easy_setopt, "curl_easy_setopt");
  LOAD(easy_getinfo, "curl_easy_getinfo");
  LOAD(easy_reset, "curl_easy_reset");
  LOAD(easy_cleanup, "curl_easy_cleanup");
  LOAD(easy_strerror, "curl_easy_strerror");
  LOAD(multi_init, "curl_multi_init");
  LOAD(multi_add_handle, "curl_multi_add_handle");
  LOAD(multi_remove_handle, "curl_multi_remove_handle");
  LOAD(multi_perform, "curl_multi_perform");
  LOAD(multi_poll, "curl_multi_poll");
  LOAD(multi_info_read, "curl_multi_info_read");
  LOAD(multi_cleanup, "curl_multi_cleanup");
  LOAD(multi_strerror, "curl_multi_strerror");
  LOAD(slist_append, "curl_slist_append");
  LOAD(slist_free_all, "curl_slist_free_all");
#undef LOAD
  CURLcode rc = bottle_curl.global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    snprintf(error, sizeof error, "cannot initialise libcurl (%s): curl_global_init failed (%d)", name, (int)rc);
    return -1;
  }
  /* The handle stays open for the life of the process: the pointers
   * above point into it. */
  loaded = 1;
  return 0;
}
