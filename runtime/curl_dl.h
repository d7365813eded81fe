/* curl_dl.h: libcurl loaded on first use, private to docker_http.c.
 *
 * bottle is not linked against libcurl: mapping it and its dependencies
 * (HTTP/2, SSH, LDAP, Kerberos, IDN, ...) at exec time cost more CPU than
 * `version`, `help` or `recipe list` spend doing their work, and only the
 * engine transport needs it. curl_dl_load() dlopens the library the build
 * found through pkg-config and fills `bottle_curl` with the functions
 * docker_http.c calls; the headers (types, constants) are still libcurl's.
 *
 * Included after <curl/curl.h>, this header redirects those function names
 * to the loaded pointers, so include it only in the transport's .c file:
 * the C tests call libcurl directly and link it. */
#ifndef BOTTLE_CURL_DL_H
#define BOTTLE_CURL_DL_H

#include <curl/curl.h>

struct curl_dl {
  CURLcode (*global_init)(long flags);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
  CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
  void (*easy_reset)(CURL *h);
  void (*easy_cleanup)(CURL *h);
  const char *(*easy_strerror)(CURLcode rc);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
  CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
  CURLMcode (*multi_perform)(CURLM *m, int *running);
  CURLMcode (*multi_poll)(CURLM *m, struct curl_waitfd *extra, unsigned int n, int timeout_ms, int *ret);
  CURLMsg *(*multi_info_read)(CURLM *m, int *left);
  CURLMcode (*multi_cleanup)(CURLM *m);
  const char *(*multi_strerror)(CURLMcode rc);
  struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
  void (*slist_free_all)(struct curl_slist *list);
};

extern struct curl_dl bottle_curl;

/* Loads libcurl and runs curl_global_init, once per process. 0, or -1
 * with a one-line reason in curl_dl_error(); a failed load is tried again
 * on the next call. */
int curl_dl_load(void);
/* The same with the directory (tried first; NULL or "" for none) and file
 * name given: the build's are BOTTLE_LIBCURL_DIR and BOTTLE_LIBCURL_NAME. */
int curl_dl_load_from(const char *dir, const char *name);
const char *curl_dl_error(void);

#ifndef CURL_DL_NO_REDIRECT
/* curl.h may define the first two as type-checking macros; the loaded
 * pointers take their place. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init (*bottle_curl.global_init)
#define curl_easy_init (*bottle_curl.easy_init)
#define curl_easy_setopt (*bottle_curl.easy_setopt)
#define curl_easy_getinfo (*bottle_curl.easy_getinfo)
#define curl_easy_reset (*bottle_curl.easy_reset)
#define curl_easy_cleanup (*bottle_curl.easy_cleanup)
#define curl_easy_strerror (*bottle_curl.easy_strerror)
#define curl_multi_init (*bottle_curl.multi_init)
#define curl_multi_add_handle (*bottle_curl.multi_add_handle)
#define curl_multi_remove_handle (*bottle_curl.multi_remove_handle)
#define curl_multi_perform (*bottle_curl.multi_perform)
#define curl_multi_poll (*bottle_curl.multi_poll)
#define curl_multi_info_read (*bottle_curl.multi_info_read)
#define curl_multi_cleanup (*bottle_curl.multi_cleanup)
#define curl_multi_strerror (*bottle_curl.multi_strerror)
#define curl_slist_append (*bottle_curl.slist_append)
#define curl_slist_free_all (*bottle_curl.slist_free_all)
#endif

#endif
