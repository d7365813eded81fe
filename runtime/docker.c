/* docker.c: see docker.h.
 *
 * Requests go through one CURL easy handle driven by a private multi handle,
 * so the connection to the engine is kept alive between calls and the wait
 * loop can look at the caller's pending-signal callback every 100 ms.
 *
 * `exec` with a stream is the one place that cannot use libcurl: the engine
 * answers POST /exec/{id}/start by hijacking the connection (HTTP upgrade to
 * a raw duplex stream), and the process's stdin must be written and then
 * half-closed on that same socket. That request is written by hand on a
 * plain AF_UNIX socket; its stream is demultiplexed here (8-byte frame
 * headers: stream, 3 zero bytes, big-endian length). */
#include "docker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "log.h"

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0
#endif

#define POLL_SLICE_MS 100

struct docker {
  int (*pending_signal)(void);
  CURLM *multi;
  CURL *curl;
  char *sock;       /* resolved socket path */
  int api_minor;    /* 0 until negotiated */
  char server_api[16], engine_version[64], os[32], arch[32];
  char *err;
  int status;
  int interrupted;
  int timed_out; /* the last failure was a request timeout */
  char curl_err[CURL_ERROR_SIZE];
};

/* ---- growable byte buffer ---- */

struct buf {
  char *p;
  size_t len, cap;
  int oom;
};

static int buf_reserve(struct buf *b, size_t extra) {
  if (b->oom) return -1;
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

static void buf_addn(struct buf *b, const void *s, size_t n) {
  if (buf_reserve(b, n) < 0) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s) { buf_addn(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || buf_reserve(b, (size_t)n) < 0) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Percent-encodes everything but RFC 3986 unreserved characters and `keep`. */
static void buf_add_escaped(struct buf *b, const char *s, const char *keep) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~", *p) || (keep && strchr(keep, *p))) {
      buf_addn(b, p, 1);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      buf_addn(b, e, 3);
    }
  }
}

static void buf_free(struct buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* Hands the bytes over as a NUL-terminated string (never NULL unless oom). */
static char *buf_take(struct buf *b, size_t *len) {
  if (buf_reserve(b, 0) < 0) {
    buf_free(b);
    return NULL;
  }
  char *p = b->p;
  p[b->len] = '\0';
  if (len) *len = b->len;
  memset(b, 0, sizeof *b);
  return p;
}

/* ---- errors ---- */

__attribute__((format(printf, 3, 4))) static int fail(struct docker *d, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  free(d->err);
  d->err = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (d->err) {
    va_start(ap, fmt);
    vsnprintf(d->err, (size_t)n + 1, fmt, ap);
    va_end(ap);
    /* Messages are one line. */
    for (char *c = d->err; *c; c++)
      if (*c == '\n' || *c == '\r') *c = ' ';
  }
  d->status = status;
  return -1;
}

static void begin(struct docker *d) {
  free(d->err);
  d->err = NULL;
  d->status = 0;
  d->interrupted = 0;
  d->timed_out = 0;
}

/* The engine answers errors as {"message": "..."}; anything else is quoted
 * as it came (trimmed), so the engine's own words always reach the user. */
static int engine_fail(struct docker *d, const char *op, long status, const struct buf *body) {
  cJSON *j = body->len ? cJSON_ParseWithLength(body->p, body->len) : NULL;
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
  if (cJSON_IsString(m) && m->valuestring[0]) {
    fail(d, (int)status, "%s: %s", op, m->valuestring);
  } else if (body->len) {
    size_t n = body->len;
    while (n && (body->p[n - 1] == '\n' || body->p[n - 1] == '\r' || body->p[n - 1] == ' ')) n--;
    if (n > 1000) n = 1000;
    fail(d, (int)status, "%s: %.*s", op, (int)n, body->p);
  } else {
    fail(d, (int)status, "%s: the Docker engine answered HTTP %ld", op, status);
  }
  cJSON_Delete(j);
  return -1;
}

static int oom(struct docker *d, const char *op) { return fail(d, 0, "%s: out of memory", op); }

/* ---- time and signals ---- */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int signalled(struct docker *d) {
  if (d->pending_signal && d->pending_signal()) d->interrupted = 1;
  return d->interrupted;
}

/* Sleeps ms in slices, giving up when a signal is pending. */
static int nap(struct docker *d, int ms) {
  while (ms > 0) {
    if (signalled(d)) return -1;
    int slice = ms < 20 ? ms : 20;
    struct timespec ts = {0, (long)slice * 1000000L};
    nanosleep(&ts, NULL);
    ms -= slice;
  }
  return signalled(d) ? -1 : 0;
}

/* ---- connection ---- */

struct docker *docker_new(int (*pending_signal)(void)) {
  static int curl_ready;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    curl_ready = 1;
  }
  struct docker *d = calloc(1, sizeof *d);
  if (d) d->pending_signal = pending_signal;
  return d;
}

void docker_reset(struct docker *d) {
  if (!d) return;
  if (d->curl) curl_easy_cleanup(d->curl);
  if (d->multi) curl_multi_cleanup(d->multi);
  d->curl = NULL;
  d->multi = NULL;
  free(d->sock);
  d->sock = NULL;
  d->api_minor = 0;
}

void docker_free(struct docker *d) {
  if (!d) return;
  docker_reset(d);
  free(d->err);
  free(d);
}

const char *docker_errmsg(const struct docker *d) { return d->err ? d->err : ""; }
int docker_status(const struct docker *d) { return d->status; }
int docker_interrupted(const struct docker *d) { return d->interrupted; }

static int resolve_socket(struct docker *d, const char *op) {
  const char *host = getenv("DOCKER_HOST");
  char path[4096];
  if (host && *host) {
    if (strncmp(host, "unix://", 7) != 0) {
      const char *sep = strstr(host, "://");
      int scheme = sep ? (int)(sep - host) : 0;
      if (scheme > 16) scheme = 16;
      return fail(d, 0, "%s: DOCKER_HOST %s%.*s%s: only unix:// sockets are supported", op,
                  sep ? "uses " : "is not a unix:// address", scheme, host, sep ? "://" : "");
    }
    if (!host[7]) return fail(d, 0, "%s: DOCKER_HOST=unix:// names no socket path", op);
    snprintf(path, sizeof path, "%s", host + 7);
  } else {
    struct stat st;
    const char *home = getenv("HOME");
    char desktop[4096];
    snprintf(desktop, sizeof desktop, "%s/.docker/run/docker.sock", home ? home : "");
    if (stat("/var/run/docker.sock", &st) != 0 && home && stat(desktop, &st) == 0)
      snprintf(path, sizeof path, "%s", desktop);
    else
      snprintf(path, sizeof path, "/var/run/docker.sock");
  }
  d->sock = strdup(path);
  return d->sock ? 0 : oom(d, op);
}

const char *docker_socket(struct docker *d) {
  if (!d->sock) {
    begin(d);
    if (resolve_socket(d, "docker") < 0) return NULL;
  }
  return d->sock;
}

/* ---- requests through libcurl ---- */

struct request {
  const char *op;     /* names the operation in messages */
  const char *method; /* GET, POST, DELETE */
  const char *path;   /* after the version prefix, query included */
  const cJSON *json;  /* body, or NULL */
  FILE *upload;       /* streamed body instead of json */
  FILE *download;     /* the answer's body goes here instead of resp */
  long long upload_len;
  long timeout_ms; /* 0: default; < 0: none */
  int unversioned;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct buf *b = ud;
  buf_addn(b, p, size * n);
  return b->oom ? 0 : size * n;
}

static size_t on_upload(char *p, size_t size, size_t n, void *ud) {
  size_t got = fread(p, 1, size * n, (FILE *)ud);
  if (got == 0 && ferror((FILE *)ud)) return CURL_READFUNC_ABORT;
  return got;
}

static size_t on_download(char *p, size_t size, size_t n, void *ud) {
  return fwrite(p, size, n, (FILE *)ud) * size;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t e) {
  (void)a, (void)b, (void)c, (void)e;
  return signalled(ud);
}

static int negotiate(struct docker *d, const char *op);

static int open_handle(struct docker *d, const char *op) {
  if (!d->sock && resolve_socket(d, op) < 0) return -1;
  if (!d->multi) d->multi = curl_multi_init();
  if (!d->curl) d->curl = curl_easy_init();
  if (!d->multi || !d->curl) return fail(d, 0, "%s: cannot initialise libcurl", op);
  return 0;
}

static int transport_fail(struct docker *d, const struct request *rq, CURLcode rc, long timeout_ms) {
  if (d->interrupted) return fail(d, 0, "%s: interrupted", rq->op);
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    d->timed_out = 1;
    return fail(d, 0, "%s: the Docker engine at %s did not answer within %ld ms", rq->op, d->sock, timeout_ms);
  }
  const char *why = d->curl_err[0] ? d->curl_err : curl_easy_strerror(rc);
  long os_errno = 0;
  if (rc == CURLE_COULDNT_CONNECT && curl_easy_getinfo(d->curl, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
      os_errno)
    why = strerror((int)os_errno);
  return fail(d, 0, "%s: cannot reach the Docker engine at %s: %s", rq->op, d->sock, why);
}

/* Sends one request; returns the HTTP status with the body in `resp`, or -1
 * (error set) when no answer came. */
static long send_req(struct docker *d, const struct request *rq, struct buf *resp) {
  if (open_handle(d, rq->op) < 0) return -1;
  if (!rq->unversioned && !d->api_minor && negotiate(d, rq->op) < 0) return -1;

  struct buf url = {0};
  buf_adds(&url, "http://docker");
  size_t path_at = url.len;
  if (!rq->unversioned) buf_printf(&url, "/v1.%d", d->api_minor);
  buf_adds(&url, rq->path);
  char *body = rq->json ? cJSON_PrintUnformatted(rq->json) : NULL;
  if (url.oom || (rq->json && !body)) {
    buf_free(&url);
    free(body);
    return oom(d, rq->op);
  }
  log_printf(LOG_TRACE, "docker %s %s", rq->method, url.p + path_at);

  long timeout_ms = rq->timeout_ms ? rq->timeout_ms : DOCKER_DEFAULT_TIMEOUT_MS;
  CURL *h = d->curl;
  curl_easy_reset(h);
  d->curl_err[0] = '\0';
  curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->sock);
  curl_easy_setopt(h, CURLOPT_URL, url.p);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, d->curl_err);
  if (rq->download) {
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_download);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rq->download);
  } else {
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
  }
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, d);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  if (timeout_ms > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);

  struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
  if (strcmp(rq->method, "POST") == 0) {
    if (rq->upload) {
      hdr = curl_slist_append(hdr, "Content-Type: application/x-tar");
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
      curl_easy_setopt(h, CURLOPT_READDATA, rq->upload);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->upload_len);
    } else {
      if (body) hdr = curl_slist_append(hdr, "Content-Type: application/json");
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, body ? (long)strlen(body) : 0L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    }
  } else if (strcmp(rq->method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);

  /* The multi loop wakes every POLL_SLICE_MS so a signal is noticed
   * promptly even while the engine is silent (a long stop or wait). */
  CURLcode rc = CURLE_OK;
  CURLMcode mc = curl_multi_add_handle(d->multi, h);
  int running = 1;
  while (mc == CURLM_OK) {
    mc = curl_multi_perform(d->multi, &running);
    if (mc != CURLM_OK || !running) break;
    if (signalled(d)) break;
    mc = curl_multi_poll(d->multi, NULL, 0, POLL_SLICE_MS, NULL);
  }
  if (mc != CURLM_OK) {
    rc = CURLE_FAILED_INIT;
    snprintf(d->curl_err, sizeof d->curl_err, "%s", curl_multi_strerror(mc));
  } else if (d->interrupted && running) {
    rc = CURLE_ABORTED_BY_CALLBACK;
  } else {
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(d->multi, &left)))
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) rc = msg->data.result;
  }
  curl_multi_remove_handle(d->multi, h);
  curl_slist_free_all(hdr);
  free(body);
  buf_free(&url);

  if (rc != CURLE_OK) {
    if (rc == CURLE_WRITE_ERROR && resp && resp->oom) return oom(d, rq->op);
    return transport_fail(d, rq, rc, timeout_ms);
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

static void copy_field(char *dst, size_t size, const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  snprintf(dst, size, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

/* GET /version once per connection: the API version in use is the lower of
 * the engine's and ours. */
static int negotiate(struct docker *d, const char *op) {
  struct request rq = {.op = op, .method = "GET", .path = "/version", .unversioned = 1};
  struct buf resp = {0};
  long st = send_req(d, &rq, &resp);
  if (st < 0) return -1;
  if (st != 200) {
    engine_fail(d, op, st, &resp);
    buf_free(&resp);
    return -1;
  }
  cJSON *j = cJSON_ParseWithLength(resp.p, resp.len);
  buf_free(&resp);
  const cJSON *api = cJSON_GetObjectItemCaseSensitive(j, "ApiVersion");
  int major = 0, minor = 0;
  if (!cJSON_IsString(api) || sscanf(api->valuestring, "%d.%d", &major, &minor) != 2) {
    cJSON_Delete(j);
    return fail(d, 0, "%s: the Docker engine at %s did not report its API version", op, d->sock);
  }
  if (major < 1 || (major == 1 && minor < DOCKER_API_MIN_MINOR)) {
    fail(d, 0, "%s: the Docker engine at %s speaks API %s; 1.%d or newer is needed", op, d->sock,
         api->valuestring, DOCKER_API_MIN_MINOR);
    cJSON_Delete(j);
    return -1;
  }
  snprintf(d->server_api, sizeof d->server_api, "%s", api->valuestring);
  copy_field(d->engine_version, sizeof d->engine_version, j, "Version");
  copy_field(d->os, sizeof d->os, j, "Os");
  copy_field(d->arch, sizeof d->arch, j, "Arch");
  cJSON_Delete(j);
  d->api_minor = major > 1 || minor > DOCKER_API_MAX_MINOR ? DOCKER_API_MAX_MINOR : minor;
  return 0;
}

/* ---- request helpers ---- */

/* prefix + escaped segment + suffix, e.g. "/containers/" id "/start". */
static char *make_path(const char *prefix, const char *seg, const char *keep, const char *suffix) {
  struct buf b = {0};
  buf_adds(&b, prefix);
  buf_add_escaped(&b, seg, keep);
  buf_adds(&b, suffix ? suffix : "");
  return buf_take(&b, NULL);
}

/* Sends a request and decodes a JSON answer. Returns the status (the body
 * parsed into *out when it is one of the ok statuses and out is not NULL),
 * or -1. A status not in `ok` (0-terminated) becomes the engine's error. */
static long call(struct docker *d, struct request *rq, const long *ok, cJSON **out) {
  if (out) *out = NULL;
  struct buf resp = {0};
  long st = send_req(d, rq, &resp);
  if (st < 0) {
    buf_free(&resp);
    return -1;
  }
  int good = 0;
  for (const long *o = ok; *o; o++)
    if (*o == st) good = 1;
  if (!good) {
    engine_fail(d, rq->op, st, &resp);
    buf_free(&resp);
    return -1;
  }
  if (out && st >= 200 && st < 300) {
    *out = cJSON_ParseWithLength(resp.p ? resp.p : "", resp.len);
    if (!*out) {
      buf_free(&resp);
      return fail(d, (int)st, "%s: the Docker engine sent a reply that is not JSON", rq->op);
    }
  }
  buf_free(&resp);
  return st;
}

static const char *json_str(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int add_string(cJSON *obj, const char *key, const char *value) {
  return !value || cJSON_AddStringToObject(obj, key, value) ? 0 : -1;
}

static int add_list(cJSON *obj, const char *key, const char *const *list) {
  if (!list) return 0;
  cJSON *a = cJSON_AddArrayToObject(obj, key);
  if (!a) return -1;
  for (; *list; list++)
    if (!cJSON_AddItemToArray(a, cJSON_CreateString(*list))) return -1;
  return 0;
}

static int add_labels(cJSON *obj, const char *key, const struct docker_kv *kv) {
  cJSON *o = cJSON_AddObjectToObject(obj, key);
  if (!o) return -1;
  for (; kv && kv->key; kv++)
    if (!cJSON_AddStringToObject(o, kv->key, kv->value ? kv->value : "")) return -1;
  return 0;
}

static int add_env(cJSON *obj, const char *key, const struct docker_kv *kv) {
  if (!kv) return 0;
  cJSON *a = cJSON_AddArrayToObject(obj, key);
  if (!a) return -1;
  for (; kv->key; kv++) {
    struct buf e = {0};
    /* An empty value matches any value: the label is present. */
    if (kv->value && *kv->value) buf_printf(&e, "%s=%s", kv->key, kv->value);
    else buf_adds(&e, kv->key);
    char *s = buf_take(&e, NULL);
    cJSON *item = s ? cJSON_CreateString(s) : NULL;
    if (s) {
      /* The value may be a secret: wipe our copy before letting it go. */
      memset(s, 0, strlen(s));
      free(s);
    }
    if (!cJSON_AddItemToArray(a, item)) return -1;
  }
  return 0;
}

/* filters={"label":["k=v",...]} as a query parameter ("" when no labels). */
static char *label_filter(const struct docker_kv *labels) {
  struct buf q = {0};
  if (!labels || !labels->key) {
    buf_adds(&q, "");
    return buf_take(&q, NULL);
  }
  cJSON *f = cJSON_CreateObject();
  cJSON *a = cJSON_AddArrayToObject(f, "label");
  for (const struct docker_kv *kv = labels; a && kv->key; kv++) {
    struct buf e = {0};
    /* An empty value matches any value: the label is present. */
    if (kv->value && *kv->value) buf_printf(&e, "%s=%s", kv->key, kv->value);
    else buf_adds(&e, kv->key);
    char *s = buf_take(&e, NULL);
    cJSON_AddItemToArray(a, cJSON_CreateString(s ? s : ""));
    free(s);
  }
  char *js = cJSON_PrintUnformatted(f);
  cJSON_Delete(f);
  if (!js) {
    buf_free(&q);
    return NULL;
  }
  buf_adds(&q, "filters=");
  buf_add_escaped(&q, js, NULL);
  free(js);
  return buf_take(&q, NULL);
}

/* Frees a request body that held env values, wiping them first. */
static void delete_wiping_env(cJSON *b) {
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(b, "Env"), *e;
  cJSON_ArrayForEach(e, env)
    if (cJSON_IsString(e)) memset(e->valuestring, 0, strlen(e->valuestring));
  cJSON_Delete(b);
}

static const long OK200[] = {200, 0};

/* GET path (taken: freed here) and decode the JSON answer; NULL on error
 * (set). */
static cJSON *get_json(struct docker *d, const char *op, char *path) {
  if (!path) return oom(d, op), NULL;
  struct request rq = {.op = op, .method = "GET", .path = path};
  cJSON *j;
  long st = call(d, &rq, OK200, &j);
  free(path);
  return st < 0 ? NULL : j;
}

/* GET base (which may already carry a query) with the label filter added;
 * returns the engine's JSON list or NULL (error set). */
static cJSON *get_list(struct docker *d, const char *op, const char *base, const struct docker_kv *labels) {
  char *filter = label_filter(labels);
  struct buf p = {0};
  buf_adds(&p, base);
  if (filter && *filter) buf_printf(&p, "%c%s", strchr(base, '?') ? '&' : '?', filter);
  free(filter);
  return get_json(d, op, buf_take(&p, NULL));
}

/* ---- demultiplexing of attach/exec/log streams ---- */

struct demux {
  unsigned char hdr[8];
  size_t hdr_have;
  size_t left; /* payload bytes left in the current frame */
  int stream;
  int raw; /* a TTY stream: no frames, all of it is stdout */
  struct buf out, err;
};

static void demux_feed(struct demux *m, const char *p, size_t n) {
  if (m->raw) {
    buf_addn(&m->out, p, n);
    return;
  }
  while (n > 0) {
    if (m->left == 0) {
      size_t take = 8 - m->hdr_have < n ? 8 - m->hdr_have : n;
      memcpy(m->hdr + m->hdr_have, p, take);
      m->hdr_have += take;
      p += take;
      n -= take;
      if (m->hdr_have < 8) return;
      m->hdr_have = 0;
      m->stream = m->hdr[0];
      m->left = (size_t)m->hdr[4] << 24 | (size_t)m->hdr[5] << 16 | (size_t)m->hdr[6] << 8 | m->hdr[7];
      continue;
    }
    size_t take = m->left < n ? m->left : n;
    /* 0 (stdin echo) and 1 are stdout; 2 stderr; 3 the engine's own errors. */
    buf_addn(m->stream >= 2 ? &m->err : &m->out, p, take);
    m->left -= take;
    p += take;
    n -= take;
  }
}

static int demux_finish(struct demux *m, struct docker_output *o) {
  int bad = m->out.oom || m->err.oom;
  o->out = buf_take(&m->out, &o->out_len);
  o->err = buf_take(&m->err, &o->err_len);
  if (bad || !o->out || !o->err) {
    docker_output_free(o);
    return -1;
  }
  return 0;
}

void docker_output_free(struct docker_output *o) {
  if (!o) return;
  free(o->out);
  free(o->err);
  o->out = o->err = NULL;
  o->out_len = o->err_len = 0;
}

/* ---- operations ---- */

static const long OK201[] = {201, 0};

int docker_ping(struct docker *d) {
  begin(d);
  struct request rq = {.op = "ping", .method = "GET", .path = "/_ping"};
  return call(d, &rq, OK200, NULL) < 0 ? -1 : 0;
}

cJSON *docker_version(struct docker *d) {
  begin(d);
  if (open_handle(d, "version") < 0) return NULL;
  if (!d->api_minor && negotiate(d, "version") < 0) return NULL;
  cJSON *v = cJSON_CreateObject();
  char api[16];
  snprintf(api, sizeof api, "1.%d", d->api_minor);
  if (add_string(v, "api", api) < 0 || add_string(v, "server_api", d->server_api) < 0 ||
      add_string(v, "version", d->engine_version) < 0 || add_string(v, "os", d->os) < 0 ||
      add_string(v, "arch", d->arch) < 0) {
    cJSON_Delete(v);
    oom(d, "version");
    return NULL;
  }
  return v;
}

/* ---- networks ---- */

static cJSON *network_inspect(struct docker *d, const char *op, const char *name) {
  return get_json(d, op, make_path("/networks/", name, NULL, NULL));
}

static int labels_include(const cJSON *have, const struct docker_kv *want) {
  for (; want && want->key; want++) {
    const char *v = json_str(have, want->key);
    if (!v || strcmp(v, want->value ? want->value : "") != 0) return 0;
  }
  return 1;
}

char *docker_network_create(struct docker *d, const struct docker_network_spec *spec) {
  static const char op[] = "network create";
  begin(d);
  if (!spec->name || !*spec->name) return fail(d, 0, "%s: a network name is required", op), NULL;
  cJSON *b = cJSON_CreateObject();
  int bad = !b || add_string(b, "Name", spec->name) < 0 || !cJSON_AddTrueToObject(b, "CheckDuplicate") ||
            add_string(b, "Driver", spec->driver ? spec->driver : "bridge") < 0 ||
            !cJSON_AddBoolToObject(b, "Internal", spec->internal) || add_labels(b, "Labels", spec->labels) < 0;
  if (!bad && spec->subnet) {
    cJSON *ipam = cJSON_AddObjectToObject(b, "IPAM");
    cJSON *cfgs = ipam ? cJSON_AddArrayToObject(ipam, "Config") : NULL;
    cJSON *cfg = cJSON_CreateObject();
    bad = !cfgs || add_string(ipam, "Driver", "default") < 0 || !cJSON_AddItemToArray(cfgs, cfg) ||
          add_string(cfg, "Subnet", spec->subnet) < 0 || add_string(cfg, "Gateway", spec->gateway) < 0;
  }
  if (bad) {
    cJSON_Delete(b);
    return oom(d, op), NULL;
  }
  struct request rq = {.op = op, .method = "POST", .path = "/networks/create", .json = b};
  struct buf resp = {0};
  long st = send_req(d, &rq, &resp);
  cJSON_Delete(b);
  if (st < 0) {
    buf_free(&resp);
    return NULL;
  }
  if (st == 409) {
    /* Already there: ours (all our labels) means an earlier attempt made it. */
    int saved_status = (int)st;
    cJSON *have = network_inspect(d, op, spec->name);
    const char *id = json_str(have, "Id");
    if (have && id && labels_include(cJSON_GetObjectItemCaseSensitive(have, "Labels"), spec->labels)) {
      char *r = strdup(id);
      cJSON_Delete(have);
      buf_free(&resp);
      if (!r) oom(d, op);
      return r;
    }
    cJSON_Delete(have);
    begin(d);
    engine_fail(d, op, saved_status, &resp);
    buf_free(&resp);
    return NULL;
  }
  if (st != 201) {
    engine_fail(d, op, st, &resp);
    buf_free(&resp);
    return NULL;
  }
  cJSON *j = cJSON_ParseWithLength(resp.p ? resp.p : "", resp.len);
  buf_free(&resp);
  const char *id = json_str(j, "Id");
  char *r = id ? strdup(id) : NULL;
  if (!r) fail(d, (int)st, "%s: the Docker engine's reply has no network id", op);
  cJSON_Delete(j);
  return r;
}

int docker_network_remove(struct docker *d, const char *name) {
  begin(d);
  char *path = make_path("/networks/", name, NULL, NULL);
  if (!path) return oom(d, "network remove");
  struct request rq = {.op = "network remove", .method = "DELETE", .path = path};
  static const long ok[] = {200, 204, 404, 0};
  long st = call(d, &rq, ok, NULL);
  free(path);
  return st < 0 ? -1 : 0;
}

cJSON *docker_network_inspect(struct docker *d, const char *name) {
  begin(d);
  return network_inspect(d, "network inspect", name);
}

static cJSON *string_object(const cJSON *src) {
  cJSON *o = cJSON_CreateObject();
  const cJSON *it;
  cJSON_ArrayForEach(it, src)
    if (cJSON_IsString(it) && it->string) cJSON_AddStringToObject(o, it->string, it->valuestring);
  return o;
}

cJSON *docker_network_list(struct docker *d, const struct docker_kv *labels) {
  static const char op[] = "network list";
  begin(d);
  cJSON *j = get_list(d, op, "/networks", labels);
  if (!j) return NULL;
  cJSON *list = cJSON_CreateArray();
  const cJSON *n;
  cJSON_ArrayForEach(n, j) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToArray(list, e);
    add_string(e, "id", json_str(n, "Id"));
    add_string(e, "name", json_str(n, "Name"));
    cJSON_AddItemToObject(e, "labels", string_object(cJSON_GetObjectItemCaseSensitive(n, "Labels")));
    cJSON *subnets = cJSON_AddArrayToObject(e, "subnets");
    const cJSON *cfg;
    cJSON_ArrayForEach(cfg, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(n, "IPAM"), "Config")) {
      const char *s = json_str(cfg, "Subnet");
      if (s) cJSON_AddItemToArray(subnets, cJSON_CreateString(s));
    }
  }
  cJSON_Delete(j);
  return list;
}

static int network_connect(struct docker *d, const char *op, const char *network, const char *container,
                           const char *ip, const char *const *aliases) {
  cJSON *b = cJSON_CreateObject();
  cJSON *ep = cJSON_AddObjectToObject(b, "EndpointConfig");
  int bad = !ep || add_string(b, "Container", container) < 0 || add_list(ep, "Aliases", aliases) < 0;
  if (!bad && ip) {
    cJSON *ipam = cJSON_AddObjectToObject(ep, "IPAMConfig");
    bad = !ipam || add_string(ipam, "IPv4Address", ip) < 0;
  }
  char *path = make_path("/networks/", network, NULL, "/connect");
  if (bad || !path) {
    cJSON_Delete(b);
    free(path);
    return oom(d, op);
  }
  struct request rq = {.op = op, .method = "POST", .path = path, .json = b};
  long st = call(d, &rq, OK200, NULL);
  cJSON_Delete(b);
  free(path);
  return st < 0 ? -1 : 0;
}

int docker_network_connect(struct docker *d, const char *network, const char *container, const char *ip,
                           const char *const *aliases) {
  begin(d);
  return network_connect(d, "network connect", network, container, ip, aliases);
}

/* ---- containers ---- */

static int container_remove(struct docker *d, const char *op, const char *id, int force, int volumes) {
  struct buf p = {0};
  buf_adds(&p, "/containers/");
  buf_add_escaped(&p, id, NULL);
  buf_printf(&p, "?force=%d&v=%d", force ? 1 : 0, volumes ? 1 : 0);
  char *path = buf_take(&p, NULL);
  if (!path) return oom(d, op);
  struct request rq = {.op = op, .method = "DELETE", .path = path};
  static const long ok[] = {204, 200, 404, 0};
  long st = call(d, &rq, ok, NULL);
  free(path);
  return st < 0 ? -1 : 0;
}

static cJSON *create_body(const struct docker_container_spec *s) {
  cJSON *b = cJSON_CreateObject();
  cJSON *hc = cJSON_AddObjectToObject(b, "HostConfig");
  if (!hc || add_string(b, "Image", s->image) < 0 || add_list(b, "Cmd", s->cmd) < 0 ||
      add_list(b, "Entrypoint", s->entrypoint) < 0 || add_env(b, "Env", s->env) < 0 ||
      add_labels(b, "Labels", s->labels) < 0 || add_string(b, "User", s->user) < 0 ||
      add_string(b, "WorkingDir", s->workdir) < 0 || !cJSON_AddBoolToObject(b, "Tty", s->tty) ||
      !cJSON_AddBoolToObject(b, "OpenStdin", s->open_stdin) ||
      add_list(hc, "ExtraHosts", s->extra_hosts) < 0 || add_list(hc, "CapAdd", s->cap_add) < 0 ||
      add_string(hc, "NetworkMode", s->network_mode ? s->network_mode : s->network) < 0)
    goto bad;
  if (s->init && !cJSON_AddTrueToObject(hc, "Init")) goto bad;

  if (s->binds && s->binds->host) {
    /* Mounts rather than Binds: a missing host path is an error instead of
     * a directory silently created by the engine, and ':' in paths is fine. */
    cJSON *mounts = cJSON_AddArrayToObject(hc, "Mounts");
    if (!mounts) goto bad;
    for (const struct docker_bind *m = s->binds; m->host; m++) {
      cJSON *e = cJSON_CreateObject();
      if (!cJSON_AddItemToArray(mounts, e) || add_string(e, "Type", "bind") < 0 ||
          add_string(e, "Source", m->host) < 0 || add_string(e, "Target", m->container) < 0 ||
          !cJSON_AddBoolToObject(e, "ReadOnly", m->ro))
        goto bad;
    }
  }
  if (s->publish && s->publish->port) {
    cJSON *exposed = cJSON_AddObjectToObject(b, "ExposedPorts");
    cJSON *bindings = cJSON_AddObjectToObject(hc, "PortBindings");
    if (!exposed || !bindings) goto bad;
    for (const struct docker_publish *p = s->publish; p->port; p++) {
      char key[32], hp[16] = "";
      snprintf(key, sizeof key, "%d/tcp", p->port);
      if (p->host_port > 0) snprintf(hp, sizeof hp, "%d", p->host_port);
      cJSON *list = cJSON_GetObjectItemCaseSensitive(bindings, key);
      if (!list) {
        if (!cJSON_AddObjectToObject(exposed, key) || !(list = cJSON_AddArrayToObject(bindings, key))) goto bad;
      }
      cJSON *e = cJSON_CreateObject();
      if (!cJSON_AddItemToArray(list, e) || add_string(e, "HostIp", p->host_ip ? p->host_ip : "127.0.0.1") < 0 ||
          add_string(e, "HostPort", hp) < 0)
        goto bad;
    }
  }
  if (s->network && (s->ip || s->aliases)) {
    cJSON *nc = cJSON_AddObjectToObject(b, "NetworkingConfig");
    cJSON *eps = nc ? cJSON_AddObjectToObject(nc, "EndpointsConfig") : NULL;
    cJSON *ep = eps ? cJSON_AddObjectToObject(eps, s->network) : NULL;
    if (!ep || add_list(ep, "Aliases", s->aliases) < 0) goto bad;
    if (s->ip) {
      cJSON *ipam = cJSON_AddObjectToObject(ep, "IPAMConfig");
      if (!ipam || add_string(ipam, "IPv4Address", s->ip) < 0) goto bad;
    }
  }
  return b;
bad:
  cJSON_Delete(b);
  return NULL;
}

char *docker_container_create(struct docker *d, const struct docker_container_spec *spec) {
  static const char op[] = "container create";
  begin(d);
  if (!spec->image || !*spec->image) return fail(d, 0, "%s: an image is required", op), NULL;
  cJSON *b = create_body(spec);
  struct buf p = {0};
  buf_adds(&p, "/containers/create");
  if (spec->name) {
    buf_adds(&p, "?name=");
    buf_add_escaped(&p, spec->name, NULL);
  }
  char *path = buf_take(&p, NULL);
  if (!b || !path) {
    cJSON_Delete(b);
    free(path);
    return oom(d, op), NULL;
  }
  /* A stopped container can be "connected" to a network that does not
   * exist (the engine only notices at start): check them all first. */
  for (const struct docker_endpoint *n = spec->networks; n && n->name; n++) {
    cJSON *net = network_inspect(d, op, n->name);
    if (!net) {
      cJSON_Delete(b);
      free(path);
      return NULL;
    }
    cJSON_Delete(net);
  }
  struct request rq = {.op = op, .method = "POST", .path = path, .json = b};
  cJSON *j;
  long st = call(d, &rq, OK201, &j);
  delete_wiping_env(b);
  free(path);
  if (st < 0) return NULL;
  const char *id = json_str(j, "Id");
  char *r = id ? strdup(id) : NULL;
  cJSON_Delete(j);
  if (!r) return fail(d, (int)st, "%s: the Docker engine's reply has no container id", op), NULL;

  /* API < 1.44 accepts one network at create; join the others now, and
   * leave nothing behind when one of them fails. */
  for (const struct docker_endpoint *n = spec->networks; n && n->name; n++) {
    if (network_connect(d, op, n->name, r, n->ip, n->aliases) < 0) {
      char *msg = d->err;
      int status = d->status;
      d->err = NULL;
      container_remove(d, op, r, 1, 1);
      free(d->err);
      d->err = msg;
      d->status = status;
      free(r);
      return NULL;
    }
  }
  return r;
}

static int container_post(struct docker *d, const char *op, const char *id, const char *suffix, const long *ok,
                          long timeout_ms) {
  char *path = make_path("/containers/", id, NULL, suffix);
  if (!path) return oom(d, op);
  struct request rq = {.op = op, .method = "POST", .path = path, .timeout_ms = timeout_ms};
  long st = call(d, &rq, ok, NULL);
  free(path);
  return st < 0 ? -1 : 0;
}

int docker_container_start(struct docker *d, const char *id) {
  begin(d);
  static const long ok[] = {204, 304, 0};
  return container_post(d, "container start", id, "/start", ok, 0);
}

int docker_container_stop(struct docker *d, const char *id, int timeout_s) {
  begin(d);
  if (timeout_s < 0) timeout_s = 0;
  char suffix[32];
  snprintf(suffix, sizeof suffix, "/stop?t=%d", timeout_s);
  static const long ok[] = {204, 304, 404, 0};
  return container_post(d, "container stop", id, suffix, ok, (long)(timeout_s + 30) * 1000);
}

int docker_container_remove(struct docker *d, const char *id, int force, int volumes) {
  begin(d);
  return container_remove(d, "container remove", id, force, volumes);
}

static cJSON *container_inspect(struct docker *d, const char *op, const char *id) {
  return get_json(d, op, make_path("/containers/", id, NULL, "/json"));
}

cJSON *docker_container_inspect(struct docker *d, const char *id) {
  begin(d);
  return container_inspect(d, "container inspect", id);
}

cJSON *docker_container_list(struct docker *d, const struct docker_kv *labels, int all) {
  static const char op[] = "container list";
  begin(d);
  cJSON *j = get_list(d, op, all ? "/containers/json?all=1" : "/containers/json?all=0", labels);
  if (!j) return NULL;
  cJSON *list = cJSON_CreateArray();
  const cJSON *c;
  cJSON_ArrayForEach(c, j) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToArray(list, e);
    add_string(e, "id", json_str(c, "Id"));
    cJSON *names = cJSON_AddArrayToObject(e, "names");
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(c, "Names"))
      if (cJSON_IsString(n)) cJSON_AddItemToArray(names, cJSON_CreateString(n->valuestring + (n->valuestring[0] == '/')));
    add_string(e, "image", json_str(c, "Image"));
    add_string(e, "state", json_str(c, "State"));
    cJSON_AddItemToObject(e, "labels", string_object(cJSON_GetObjectItemCaseSensitive(c, "Labels")));
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(c, "Created");
    if (cJSON_IsNumber(created)) cJSON_AddNumberToObject(e, "created", created->valuedouble);
  }
  cJSON_Delete(j);
  return list;
}

int docker_container_logs(struct docker *d, const char *id, int tail, struct docker_output *o) {
  static const char op[] = "container logs";
  begin(d);
  memset(o, 0, sizeof *o);
  /* A TTY container's log is one raw stream; others are multiplexed. */
  cJSON *info = container_inspect(d, op, id);
  if (!info) return -1;
  int tty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(info, "Config"), "Tty"));
  cJSON_Delete(info);
  char suffix[64];
  if (tail >= 0) snprintf(suffix, sizeof suffix, "/logs?stdout=1&stderr=1&tail=%d", tail);
  else snprintf(suffix, sizeof suffix, "/logs?stdout=1&stderr=1&tail=all");
  char *path = make_path("/containers/", id, NULL, suffix);
  if (!path) return oom(d, op);
  struct request rq = {.op = op, .method = "GET", .path = path};
  struct buf resp = {0};
  long st = send_req(d, &rq, &resp);
  free(path);
  if (st < 0 || st != 200) {
    if (st > 0) engine_fail(d, op, st, &resp);
    buf_free(&resp);
    return -1;
  }
  struct demux m = {.raw = tty};
  demux_feed(&m, resp.p ? resp.p : "", resp.len);
  buf_free(&resp);
  if (demux_finish(&m, o) < 0) return oom(d, op);
  return 0;
}

int docker_container_wait(struct docker *d, const char *id, int timeout_ms, int *code) {
  static const char op[] = "container wait";
  begin(d);
  char *path = make_path("/containers/", id, NULL, "/wait?condition=not-running");
  if (!path) return oom(d, op);
  struct request rq = {.op = op, .method = "POST", .path = path, .timeout_ms = timeout_ms > 0 ? timeout_ms : -1};
  cJSON *j;
  long st = call(d, &rq, OK200, &j);
  free(path);
  if (st < 0) {
    if (d->timed_out)
      fail(d, 0, "%s: %s still running after %d ms", op, id, timeout_ms);
    return -1;
  }
  const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "StatusCode");
  const char *werr = json_str(cJSON_GetObjectItemCaseSensitive(j, "Error"), "Message");
  int r = 0;
  if (werr && *werr) r = fail(d, 500, "%s: %s", op, werr);
  else if (!cJSON_IsNumber(sc)) r = fail(d, 200, "%s: the Docker engine's reply has no exit code", op);
  else *code = sc->valueint;
  cJSON_Delete(j);
  return r;
}

int docker_ports(struct docker *d, const char *id, struct docker_port **ports, size_t *n) {
  static const char op[] = "ports";
  begin(d);
  *ports = NULL;
  *n = 0;
  cJSON *info = container_inspect(d, op, id);
  if (!info) return -1;
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(info, "NetworkSettings"), "Ports");
  size_t cap = (size_t)cJSON_GetArraySize(map);
  struct docker_port *v = calloc(cap ? cap : 1, sizeof *v);
  if (!v) {
    cJSON_Delete(info);
    return oom(d, op);
  }
  const cJSON *e;
  cJSON_ArrayForEach(e, map) {
    int port;
    char proto[8];
    if (!e->string || sscanf(e->string, "%d/%7s", &port, proto) != 2 || strcmp(proto, "tcp") != 0) continue;
    /* Prefer the IPv4 binding when the engine also lists an IPv6 one. */
    const cJSON *pick = cJSON_GetArrayItem(e, 0), *b;
    cJSON_ArrayForEach(b, e) {
      const char *ip = json_str(b, "HostIp");
      if (ip && !strchr(ip, ':')) {
        pick = b;
        break;
      }
    }
    const char *hp = json_str(pick, "HostPort"), *hip = json_str(pick, "HostIp");
    if (!hp || !*hp) continue;
    v[*n].port = port;
    v[*n].host_port = atoi(hp);
    snprintf(v[*n].host_ip, sizeof v[*n].host_ip, "%s", hip ? hip : "");
    (*n)++;
  }
  cJSON_Delete(info);
  *ports = v;
  return 0;
}

/* ---- exec ---- */

static int connect_unix(struct docker *d, const char *op) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (strlen(d->sock) >= sizeof sa.sun_path)
    return fail(d, 0, "%s: cannot reach the Docker engine at %s: socket path too long", op, d->sock);
  memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return fail(d, 0, "%s: cannot reach the Docker engine at %s: %s", op, d->sock, strerror(errno));
  fcntl(fd, F_SETFD, FD_CLOEXEC);
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return fail(d, 0, "%s: cannot reach the Docker engine at %s: %s", op, d->sock, strerror(e));
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* An error answer to the hijack request: the JSON body after the headers,
 * sized by Content-Length or chunked. */
static int hijack_error(struct docker *d, const char *op, long status, const char *hdrs, const char *body,
                        size_t len) {
  struct buf b = {0};
  if (strstr(hdrs, "chunked") || strstr(hdrs, "Chunked")) {
    const char *p = body, *end = body + len;
    while (p < end) {
      char *nl;
      unsigned long n = strtoul(p, &nl, 16);
      if (nl == p || n == 0) break;
      const char *data = strstr(nl, "\r\n");
      if (!data || data + 2 + n > end) break;
      buf_addn(&b, data + 2, n);
      p = data + 2 + n + 2;
    }
  } else {
    buf_addn(&b, body, len);
  }
  engine_fail(d, op, status, &b);
  buf_free(&b);
  return -1;
}

/* Complete when the headers and (for an error answer) its body are in. */
static int answer_complete(const char *hdrs, size_t body_len, int status) {
  if (status == 101 || status == 200) return 1;
  const char *cl = strstr(hdrs, "Content-Length:");
  if (!cl) cl = strstr(hdrs, "content-length:");
  if (cl) return body_len >= strtoul(cl + 15, NULL, 10);
  return 0; /* chunked or close-delimited: read until EOF or the terminal chunk */
}

/* POST /exec/{id}/start on a hijacked connection: writes stdin (then
 * half-closes), reads frames until the engine closes the stream. */
static int exec_stream(struct docker *d, const char *op, const char *exec_id, const struct docker_exec_spec *spec,
                       long long deadline, struct docker_output *o) {
  int fd = connect_unix(d, op);
  if (fd < 0) return -1;
  static const char body[] = "{\"Detach\":false,\"Tty\":false}";
  struct buf req = {0};
  buf_printf(&req, "POST /v1.%d/exec/", d->api_minor);
  buf_add_escaped(&req, exec_id, NULL);
  size_t path_end = req.len;
  buf_printf(&req,
             "/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n%s",
             sizeof body - 1, body);
  if (req.oom) {
    close(fd);
    buf_free(&req);
    return oom(d, op);
  }
  log_printf(LOG_TRACE, "docker %.*s/start", (int)path_end, req.p);

  struct buf head = {0};
  struct demux m = {0};
  size_t req_off = 0, in_off = 0;
  int status = 0, wr_closed = 0, rc = 0;
  size_t hdr_len = 0;
  char chunk[65536];
  for (;;) {
    if (signalled(d)) {
      rc = fail(d, 0, "%s: interrupted", op);
      break;
    }
    long long left = deadline > 0 ? deadline - now_ms() : POLL_SLICE_MS;
    if (left <= 0) {
      rc = fail(d, 0, "%s: timed out after %d ms", op, spec->timeout_ms ? spec->timeout_ms : DOCKER_DEFAULT_TIMEOUT_MS);
      break;
    }
    int streaming = status == 101 || status == 200;
    if (streaming && !wr_closed && (!spec->input || in_off >= spec->input_len)) {
      shutdown(fd, SHUT_WR);
      wr_closed = 1;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (req_off < req.len || (streaming && !wr_closed)) p.events |= POLLOUT;
    int pr = poll(&p, 1, left < POLL_SLICE_MS ? (int)left : POLL_SLICE_MS);
    if (pr < 0 && errno != EINTR) {
      rc = fail(d, 0, "%s: poll: %s", op, strerror(errno));
      break;
    }
    if (pr <= 0) continue;
    if (p.revents & POLLOUT) {
      const char *src = req_off < req.len ? req.p + req_off : spec->input + in_off;
      size_t n = req_off < req.len ? req.len - req_off : spec->input_len - in_off;
      ssize_t w = send(fd, src, n, SEND_FLAGS);
      if (w > 0) {
        if (req_off < req.len) req_off += (size_t)w;
        else in_off += (size_t)w;
      } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        if (!streaming) {
          rc = fail(d, 0, "%s: cannot reach the Docker engine at %s: %s", op, d->sock, strerror(errno));
          break;
        }
        /* The process stopped reading its stdin: the rest is dropped. */
        in_off = spec->input_len;
      }
    }
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t r = recv(fd, chunk, sizeof chunk, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      rc = fail(d, 0, "%s: reading from the Docker engine: %s", op, strerror(errno));
      break;
    }
    if (streaming) {
      if (r == 0) break;
      demux_feed(&m, chunk, (size_t)r);
      continue;
    }
    buf_addn(&head, chunk, (size_t)r);
    if (!hdr_len) {
      char *end = head.p ? strstr(head.p, "\r\n\r\n") : NULL;
      if (end) {
        hdr_len = (size_t)(end - head.p) + 4;
        if (sscanf(head.p, "HTTP/%*d.%*d %d", &status) != 1) {
          rc = fail(d, 0, "%s: the Docker engine sent a malformed answer", op);
          break;
        }
      } else if (head.len > 65536 || r == 0) {
        rc = fail(d, 0, "%s: the Docker engine closed the connection without an answer", op);
        break;
      }
    }
    if (!hdr_len) continue;
    if (status == 101 || status == 200) {
      demux_feed(&m, head.p + hdr_len, head.len - hdr_len);
      buf_free(&head);
      continue;
    }
    head.p[hdr_len - 1] = '\0'; /* end the header text for the lookups below */
    if (r == 0 || answer_complete(head.p, head.len - hdr_len, status) ||
        strstr(head.p + hdr_len, "\r\n0\r\n\r\n") || (head.len - hdr_len >= 5 && memcmp(head.p + hdr_len, "0\r\n\r\n", 5) == 0)) {
      rc = hijack_error(d, op, status, head.p, head.p + hdr_len, head.len - hdr_len);
      break;
    }
    head.p[hdr_len - 1] = '\n';
  }
  close(fd);
  buf_free(&req);
  buf_free(&head);
  if (rc < 0) {
    buf_free(&m.out);
    buf_free(&m.err);
    return -1;
  }
  if (demux_finish(&m, o) < 0) return oom(d, op);
  return 0;
}

int docker_exec(struct docker *d, const char *id, const struct docker_exec_spec *spec, struct docker_output *o) {
  static const char op[] = "exec";
  begin(d);
  memset(o, 0, sizeof *o);
  if (!spec->cmd || !spec->cmd[0]) return fail(d, 0, "%s: a command is required", op);
  long timeout_ms = spec->timeout_ms ? spec->timeout_ms : DOCKER_DEFAULT_TIMEOUT_MS;
  long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;

  cJSON *b = cJSON_CreateObject();
  if (!b || !cJSON_AddBoolToObject(b, "AttachStdin", spec->input != NULL) ||
      !cJSON_AddTrueToObject(b, "AttachStdout") || !cJSON_AddTrueToObject(b, "AttachStderr") ||
      !cJSON_AddFalseToObject(b, "Tty") || add_list(b, "Cmd", spec->cmd) < 0 || add_env(b, "Env", spec->env) < 0 ||
      add_string(b, "User", spec->user) < 0 || add_string(b, "WorkingDir", spec->workdir) < 0) {
    cJSON_Delete(b);
    return oom(d, op);
  }
  char *path = make_path("/containers/", id, NULL, "/exec");
  if (!path) {
    cJSON_Delete(b);
    return oom(d, op);
  }
  struct request rq = {.op = op, .method = "POST", .path = path, .json = b, .timeout_ms = timeout_ms};
  cJSON *j;
  long st = call(d, &rq, OK201, &j);
  delete_wiping_env(b);
  free(path);
  if (st < 0) return -1;
  const char *eid = json_str(j, "Id");
  char *exec_id = eid ? strdup(eid) : NULL;
  cJSON_Delete(j);
  if (!exec_id) return fail(d, (int)st, "%s: the Docker engine's reply has no exec id", op);

  int rc = exec_stream(d, op, exec_id, spec, deadline, o);
  /* The stream ends when the process's output closes; its exit code can
   * trail that by a moment, so poll briefly until it is recorded. */
  char *ipath = rc == 0 ? make_path("/exec/", exec_id, NULL, "/json") : NULL;
  if (rc == 0 && !ipath) rc = oom(d, op);
  for (int i = 0; rc == 0; i++) {
    struct request iq = {.op = op, .method = "GET", .path = ipath};
    cJSON *info;
    if (call(d, &iq, OK200, &info) < 0) {
      rc = -1;
      break;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(info, "ExitCode");
    int running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(info, "Running"));
    if (!running && cJSON_IsNumber(code)) {
      o->code = code->valueint;
      cJSON_Delete(info);
      break;
    }
    cJSON_Delete(info);
    if (deadline && now_ms() >= deadline) {
      rc = fail(d, 0, "%s: timed out after %ld ms", op, timeout_ms);
      break;
    }
    if (i > 200) {
      rc = fail(d, 0, "%s: the Docker engine did not report the exit code", op);
      break;
    }
    if (nap(d, i < 10 ? 5 * (i + 1) : 50) < 0) rc = fail(d, 0, "%s: interrupted", op);
  }
  free(ipath);
  free(exec_id);
  if (rc < 0) docker_output_free(o);
  return rc;
}

/* ---- images ---- */

static const char IMAGE_KEEP[] = "/:@";

static cJSON *image_inspect(struct docker *d, const char *op, const char *ref) {
  return get_json(d, op, make_path("/images/", ref, IMAGE_KEEP, "/json"));
}

cJSON *docker_image_inspect(struct docker *d, const char *ref) {
  begin(d);
  cJSON *j = image_inspect(d, "image inspect", ref);
  if (!j) return NULL;
  cJSON *r = cJSON_CreateObject();
  add_string(r, "id", json_str(j, "Id"));
  add_string(r, "created", json_str(j, "Created"));
  cJSON *tags = cJSON_AddArrayToObject(r, "repo_tags");
  const cJSON *t;
  cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "RepoTags"))
    if (cJSON_IsString(t)) cJSON_AddItemToArray(tags, cJSON_CreateString(t->valuestring));
  cJSON_AddItemToObject(r, "labels",
                        string_object(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "Config"), "Labels")));
  cJSON_Delete(j);
  return r;
}

int docker_image_exists(struct docker *d, const char *ref) {
  begin(d);
  cJSON *j = image_inspect(d, "image inspect", ref);
  if (j) {
    cJSON_Delete(j);
    return 1;
  }
  if (d->status == 404) {
    begin(d);
    return 0;
  }
  return -1;
}

char *docker_image_import(struct docker *d, const char *tar_path, const char *repo, const char *tag,
                          const char *const *changes) {
  static const char op[] = "image import";
  begin(d);
  int fd = open(tar_path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return fail(d, 0, "%s: cannot open %s: %s", op, tar_path, strerror(e)), NULL;
  }
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return oom(d, op), NULL;
  }
  struct buf p = {0};
  buf_adds(&p, "/images/create?fromSrc=-");
  if (repo) {
    buf_adds(&p, "&repo=");
    buf_add_escaped(&p, repo, NULL);
  }
  if (tag) {
    buf_adds(&p, "&tag=");
    buf_add_escaped(&p, tag, NULL);
  }
  for (; changes && *changes; changes++) {
    buf_adds(&p, "&changes=");
    buf_add_escaped(&p, *changes, NULL);
  }
  char *path = buf_take(&p, NULL);
  if (!path) {
    fclose(f);
    return oom(d, op), NULL;
  }
  struct request rq = {.op = op, .method = "POST", .path = path, .upload = f,
                       .upload_len = (long long)st.st_size, .timeout_ms = 600000};
  struct buf resp = {0};
  long status = send_req(d, &rq, &resp);
  fclose(f);
  free(path);
  if (status < 0) {
    buf_free(&resp);
    return NULL;
  }
  if (status != 200) {
    engine_fail(d, op, status, &resp);
    buf_free(&resp);
    return NULL;
  }
  /* The answer is a stream of JSON progress objects; a failure after the
   * upload started arrives as {"error": "..."} inside a 200 answer. */
  char *id = NULL;
  const char *s = resp.p ? resp.p : "", *end = s + resp.len;
  while (s < end) {
    const char *parse_end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, (size_t)(end - s), &parse_end, 0);
    if (!j) break;
    const char *err = json_str(j, "error");
    const char *stat_s = json_str(j, "status");
    if (err) {
      fail(d, 500, "%s: %s", op, err);
      cJSON_Delete(j);
      free(id);
      buf_free(&resp);
      return NULL;
    }
    if (stat_s && strncmp(stat_s, "sha256:", 7) == 0) {
      free(id);
      id = strdup(stat_s);
    }
    cJSON_Delete(j);
    s = parse_end;
    while (s < end && (*s == '\n' || *s == '\r' || *s == ' ')) s++;
  }
  buf_free(&resp);
  if (!id) fail(d, 200, "%s: the Docker engine's reply has no image id", op);
  return id;
}

int docker_image_save(struct docker *d, const char *ref, const char *out_path) {
  static const char op[] = "image save";
  begin(d);
  int fd = open(out_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail(d, 0, "%s: cannot create %s: %s", op, out_path, strerror(errno));
  FILE *f = fdopen(fd, "w+b");
  if (!f) {
    close(fd);
    unlink(out_path);
    return oom(d, op);
  }
  char *path = make_path("/images/", ref, IMAGE_KEEP, "/get");
  if (!path) {
    fclose(f);
    unlink(out_path);
    return oom(d, op);
  }
  struct request rq = {.op = op, .method = "GET", .path = path, .download = f, .timeout_ms = 600000};
  long status = send_req(d, &rq, NULL);
  free(path);
  int write_failed = fflush(f) != 0 || ferror(f);
  if (status == 200 && !write_failed) {
    if (fclose(f) != 0) {
      unlink(out_path);
      return fail(d, 0, "%s: cannot write %s: %s", op, out_path, strerror(errno));
    }
    return 0;
  }
  if (status > 0 && status != 200) {
    /* The error body went to the file: read it back for the message. */
    struct buf body = {0};
    char chunk[4096];
    size_t got;
    rewind(f);
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0 && body.len < 65536) buf_addn(&body, chunk, got);
    engine_fail(d, op, status, &body);
    buf_free(&body);
  } else if (status == 200) {
    fail(d, 0, "%s: cannot write %s", op, out_path);
  }
  fclose(f);
  unlink(out_path);
  return -1;
}

int docker_image_remove(struct docker *d, const char *ref, int force) {
  begin(d);
  char *path = make_path("/images/", ref, IMAGE_KEEP, force ? "?force=1" : "");
  if (!path) return oom(d, "image remove");
  struct request rq = {.op = "image remove", .method = "DELETE", .path = path};
  static const long ok[] = {200, 404, 0};
  long st = call(d, &rq, ok, NULL);
  free(path);
  return st < 0 ? -1 : 0;
}
