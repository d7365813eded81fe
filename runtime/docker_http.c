/* docker_http.c: the transport under docker.c (see docker_http.h).
 *
 * Requests go through one CURL easy handle driven by a private multi handle,
 * so the connection to the engine is kept alive between calls and the wait
 * loop can look at the caller's pending-signal callback every 100 ms.
 *
 * `exec` with a stream is the one place that cannot use libcurl: the engine
 * answers POST /exec/{id}/start by hijacking the connection (HTTP upgrade to
 * a raw duplex stream), and the process's stdin must be written and then
 * half-closed on that same socket. That request is written by hand on a
 * plain AF_UNIX socket; its stream goes through demux.h. */
#include "docker_http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "curl_dl.h"
#include "log.h"

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0
#endif

#define POLL_SLICE_MS 100

/* ---- errors ---- */

__attribute__((format(printf, 4, 0))) static int vfail(struct docker *d, int status, const char *code,
                                                     const char *fmt, va_list ap) {
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  free(d->err);
  d->err = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (d->err) {
    vsnprintf(d->err, (size_t)n + 1, fmt, again);
    /* Messages are one line. */
    for (char *c = d->err; *c; c++)
      if (*c == '\n' || *c == '\r') *c = ' ';
  }
  va_end(again);
  d->status = status;
  d->code = code;
  return -1;
}

int dh_fail(struct docker *d, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(d, status, NULL, fmt, ap);
  va_end(ap);
  return -1;
}

int dh_fail_code(struct docker *d, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(d, 0, code, fmt, ap);
  va_end(ap);
  return -1;
}

void dh_begin(struct docker *d) {
  free(d->err);
  d->err = NULL;
  d->code = NULL;
  d->status = 0;
  d->interrupted = 0;
  d->timed_out = 0;
}

/* The engine answers errors as {"message": "..."}; anything else is quoted
 * as it came (trimmed), so the engine's own words always reach the user. */
int dh_engine_fail(struct docker *d, const char *op, long status, const struct buf *body) {
  cJSON *j = body->len ? cJSON_ParseWithLength(body->p, body->len) : NULL;
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
  if (cJSON_IsString(m) && m->valuestring[0]) {
    dh_fail(d, (int)status, "%s: %s", op, m->valuestring);
  } else if (body->len) {
    size_t n = body->len;
    while (n && (body->p[n - 1] == '\n' || body->p[n - 1] == '\r' || body->p[n - 1] == ' ')) n--;
    if (n > 1000) n = 1000;
    dh_fail(d, (int)status, "%s: %.*s", op, (int)n, body->p);
  } else {
    dh_fail(d, (int)status, "%s: the Docker engine answered HTTP %ld", op, status);
  }
  cJSON_Delete(j);
  return -1;
}

int dh_oom(struct docker *d, const char *op) { return dh_fail_code(d, "ENOMEM", "%s: out of memory", op); }

const char *docker_status_code(int status) {
  switch (status) {
  case 400: return "BAD_REQUEST";
  case 401:
  case 403: return "FORBIDDEN";
  case 404: return "NOT_FOUND";
  case 409: return "CONFLICT";
  default: return "ENGINE_ERROR";
  }
}

const char *docker_code(const struct docker *d) {
  if (d->code) return d->code;
  return d->status ? docker_status_code(d->status) : "EIO";
}

/* ---- time and signals ---- */

long long dh_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int signalled(struct docker *d) {
  if (d->pending_signal && d->pending_signal()) d->interrupted = 1;
  return d->interrupted;
}

int dh_nap(struct docker *d, int ms) {
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

const char *docker_new_error(void) {
  const char *e = curl_dl_error();
  return *e ? e : "out of memory";
}

struct docker *docker_new(int (*pending_signal)(void)) {
  if (curl_dl_load() != 0) return NULL;
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

/* A whole small file (config.json, meta.json) as a NUL-terminated string;
 * NULL with errno set when it cannot be read. */
static char *read_small(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  struct buf b = {0};
  b.max = 1 << 20;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_addn(&b, chunk, n);
  int bad = ferror(f) || b.oom;
  fclose(f);
  if (bad) {
    buf_free(&b);
    errno = EIO;
    return NULL;
  }
  return buf_take(&b, NULL);
}

/* The Docker CLI's config dir: $DOCKER_CONFIG, else ~/.docker. */
static int config_dir(char *out, size_t outsz) {
  const char *dir = getenv("DOCKER_CONFIG");
  const char *home = getenv("HOME");
  int n;
  if (dir && *dir) n = snprintf(out, outsz, "%s", dir);
  else if (home && *home) n = snprintf(out, outsz, "%s/.docker", home);
  else return -1;
  return n > 0 && (size_t)n < outsz ? 0 : -1;
}

/* The context the Docker CLI would use with DOCKER_HOST unset, as the CLI
 * resolves it (cli/command/cli.go resolveContextName): DOCKER_CONTEXT, else
 * "currentContext" in config.json; none, or "default", means the default
 * socket. A config.json that does not parse is skipped, as the CLI only
 * warns about it. Writes the name into out (empty: none); *from says where
 * it came from. */
static void context_name(const char *cfg, char *out, size_t outsz, const char **from) {
  out[0] = '\0';
  const char *env = getenv("DOCKER_CONTEXT");
  if (env && *env) {
    snprintf(out, outsz, "%s", env);
    *from = "DOCKER_CONTEXT";
    return;
  }
  char path[4096];
  if (snprintf(path, sizeof path, "%s/config.json", cfg) >= (int)sizeof path) return;
  char *text = read_small(path);
  if (!text) return;
  cJSON *root = cJSON_Parse(text);
  free(text);
  const cJSON *cur = cJSON_GetObjectItemCaseSensitive(root, "currentContext");
  if (cJSON_IsString(cur) && cur->valuestring[0]) {
    snprintf(out, outsz, "%s", cur->valuestring);
    *from = "currentContext in config.json";
  }
  cJSON_Delete(root);
}

/* The socket path of a unix:// engine address; `what` names where the
 * address came from in messages. */
static int use_host(struct docker *d, const char *op, const char *host, const char *what, char *path,
                    size_t pathsz) {
  if (strncmp(host, "unix://", 7) != 0) {
    const char *sep = strstr(host, "://");
    int scheme = sep ? (int)(sep - host) : 0;
    if (scheme > 16) scheme = 16;
    return dh_fail_code(d, "EINVAL", "%s: %s %s%.*s%s: only unix:// sockets are supported", op, what,
                        sep ? "uses " : "is not a unix:// address", scheme, host, sep ? "://" : "");
  }
  if (!host[7]) return dh_fail_code(d, "EINVAL", "%s: %s is unix:// with no socket path", op, what);
  snprintf(path, pathsz, "%s", host + 7);
  return 0;
}

/* The endpoint of the current Docker context (contexts/meta/<sha256 of the
 * name>/meta.json, Endpoints.docker.Host, as the CLI's context store lays it
 * out). 1 with the socket in path, 0 when no context applies, -1 on error. */
static int context_socket(struct docker *d, const char *op, char *path, size_t pathsz) {
  char cfg[4096], name[512];
  const char *from = "";
  if (config_dir(cfg, sizeof cfg) != 0) return 0;
  context_name(cfg, name, sizeof name, &from);
  if (!name[0] || strcmp(name, "default") == 0) return 0;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL))
    return dh_fail_code(d, "EIO", "%s: cannot hash the Docker context name", op);
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned int i = 0; i < mdlen; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  char meta[4096 + 200];
  snprintf(meta, sizeof meta, "%s/contexts/meta/%s/meta.json", cfg, hex);
  char *text = read_small(meta);
  if (!text)
    return dh_fail_code(d, errno == ENOENT ? "ENOENT" : errno_name(errno),
                        "%s: Docker context '%s' (from %s) not found: cannot read %s: %s", op, name, from, meta,
                        strerror(errno));
  cJSON *root = cJSON_Parse(text);
  free(text);
  const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "Endpoints");
  const cJSON *dk = cJSON_GetObjectItemCaseSensitive(eps, "docker");
  const cJSON *host = cJSON_GetObjectItemCaseSensitive(dk, "Host");
  int rc;
  if (!root) {
    rc = dh_fail_code(d, "EINVAL", "%s: Docker context '%s': %s is not valid JSON", op, name, meta);
  } else if (!cJSON_IsString(host) || !host->valuestring[0]) {
    /* the CLI cannot use such a context for the engine either */
    rc = dh_fail_code(d, "EINVAL", "%s: Docker context '%s' (from %s) has no docker endpoint (%s)", op, name, from,
                      meta);
  } else {
    char what[600];
    snprintf(what, sizeof what, "Docker context '%s' (from %s)", name, from);
    rc = use_host(d, op, host->valuestring, what, path, pathsz) < 0 ? -1 : 1;
  }
  cJSON_Delete(root);
  return rc;
}

/* DOCKER_HOST, else the current Docker context's endpoint, else the default
 * socket (Docker Desktop's per-user one when /var/run/docker.sock is
 * absent). */
static int resolve_socket(struct docker *d, const char *op) {
  const char *host = getenv("DOCKER_HOST");
  char path[4096];
  int rc;
  if (host && *host) {
    if (use_host(d, op, host, "DOCKER_HOST", path, sizeof path) < 0) return -1;
  } else if ((rc = context_socket(d, op, path, sizeof path)) != 0) {
    if (rc < 0) return -1;
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
  return d->sock ? 0 : dh_oom(d, op);
}

const char *docker_socket(struct docker *d) {
  if (!d->sock) {
    dh_begin(d);
    if (resolve_socket(d, "docker") < 0) return NULL;
  }
  return d->sock;
}

/* ---- requests through libcurl ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  struct buf *b = ud;
  return buf_addn(b, p, size * n) < 0 ? 0 : size * n;
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
  if (!d->multi || !d->curl) return dh_fail_code(d, "ENOMEM", "%s: cannot initialise libcurl", op);
  return 0;
}

int dh_connect(struct docker *d, const char *op) {
  if (open_handle(d, op) < 0) return -1;
  return d->api_minor || negotiate(d, op) == 0 ? 0 : -1;
}

static int transport_fail(struct docker *d, const struct dh_request *rq, CURLcode rc, long timeout_ms) {
  if (d->interrupted) return dh_fail_code(d, "EINTR", "%s: interrupted", rq->op);
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    d->timed_out = 1;
    return dh_fail_code(d, "TIMEOUT", "%s: the Docker engine at %s did not answer within %ld ms", rq->op, d->sock,
                        timeout_ms);
  }
  const char *why = d->curl_err[0] ? d->curl_err : curl_easy_strerror(rc);
  const char *code = rc == CURLE_COULDNT_CONNECT ? "ECONNREFUSED" : "ECONNRESET";
  long os_errno = 0;
  if (rc == CURLE_COULDNT_CONNECT && curl_easy_getinfo(d->curl, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
      os_errno) {
    why = strerror((int)os_errno);
    code = errno_name((int)os_errno);
  }
  return dh_fail_code(d, code, "%s: cannot reach the Docker engine at %s: %s", rq->op, d->sock, why);
}

/* The easy handle set up for rq; the header list is returned for freeing. */
static struct curl_slist *setup_handle(struct docker *d, const struct dh_request *rq, const char *url,
                                       const char *body, struct buf *resp, long timeout_ms) {
  CURL *h = d->curl;
  curl_easy_reset(h);
  d->curl_err[0] = '\0';
  curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->sock);
  curl_easy_setopt(h, CURLOPT_URL, url);
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
  return hdr;
}

/* Drives the multi handle until the transfer ends; its result. It wakes
 * every POLL_SLICE_MS so a signal is noticed promptly even while the
 * engine is silent (a long stop or wait). */
static CURLcode perform(struct docker *d) {
  CURL *h = d->curl;
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
  return rc;
}

long dh_send(struct docker *d, const struct dh_request *rq, struct buf *resp) {
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
    return dh_oom(d, rq->op);
  }
  log_printf(LOG_TRACE, "docker %s %s", rq->method, url.p + path_at);

  long timeout_ms = rq->timeout_ms ? rq->timeout_ms : DOCKER_DEFAULT_TIMEOUT_MS;
  struct curl_slist *hdr = setup_handle(d, rq, url.p, body, resp, timeout_ms);
  CURLcode rc = perform(d);
  curl_slist_free_all(hdr);
  free(body);
  buf_free(&url);

  if (rc != CURLE_OK) {
    if (rc == CURLE_WRITE_ERROR && resp && resp->oom) return dh_oom(d, rq->op);
    return transport_fail(d, rq, rc, timeout_ms);
  }
  long status = 0;
  curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

static void copy_field(char *dst, size_t size, const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  snprintf(dst, size, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

/* GET /version once per connection: the API version in use is the lower of
 * the engine's and ours. */
static int negotiate(struct docker *d, const char *op) {
  struct dh_request rq = {.op = op, .method = "GET", .path = "/version", .unversioned = 1};
  struct buf resp = {0};
  long st = dh_send(d, &rq, &resp);
  if (st < 0) return -1;
  if (st != 200) {
    dh_engine_fail(d, op, st, &resp);
    buf_free(&resp);
    return -1;
  }
  cJSON *j = cJSON_ParseWithLength(resp.p, resp.len);
  buf_free(&resp);
  const cJSON *api = cJSON_GetObjectItemCaseSensitive(j, "ApiVersion");
  int major = 0, minor = 0;
  if (!cJSON_IsString(api) || sscanf(api->valuestring, "%d.%d", &major, &minor) != 2) {
    cJSON_Delete(j);
    return dh_fail_code(d, "ENGINE_ERROR", "%s: the Docker engine at %s did not report its API version", op,
                        d->sock);
  }
  if (major < 1 || (major == 1 && minor < DOCKER_API_MIN_MINOR)) {
    dh_fail_code(d, "ENGINE_ERROR", "%s: the Docker engine at %s speaks API %s; 1.%d or newer is needed", op,
                 d->sock, api->valuestring, DOCKER_API_MIN_MINOR);
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

char *dh_make_path(const char *prefix, const char *seg, const char *keep, const char *suffix) {
  struct buf b = {0};
  buf_adds(&b, prefix);
  buf_add_escaped(&b, seg, keep);
  buf_adds(&b, suffix ? suffix : "");
  return buf_take(&b, NULL);
}

long dh_call(struct docker *d, const struct dh_request *rq, const long *ok, cJSON **out) {
  if (out) *out = NULL;
  struct buf resp = {0};
  long st = dh_send(d, rq, &resp);
  if (st < 0) {
    buf_free(&resp);
    return -1;
  }
  int good = 0;
  for (const long *o = ok; *o; o++)
    if (*o == st) good = 1;
  if (!good) {
    dh_engine_fail(d, rq->op, st, &resp);
    buf_free(&resp);
    return -1;
  }
  if (out && st >= 200 && st < 300) {
    *out = cJSON_ParseWithLength(resp.p ? resp.p : "", resp.len);
    if (!*out) {
      buf_free(&resp);
      return dh_fail(d, (int)st, "%s: the Docker engine sent a reply that is not JSON", rq->op);
    }
  }
  buf_free(&resp);
  return st;
}

cJSON *dh_get_json(struct docker *d, const char *op, char *path) {
  static const long ok[] = {200, 0};
  if (!path) return dh_oom(d, op), NULL;
  struct dh_request rq = {.op = op, .method = "GET", .path = path};
  cJSON *j;
  long st = dh_call(d, &rq, ok, &j);
  free(path);
  return st < 0 ? NULL : j;
}

/* ---- engine ---- */

int docker_ping(struct docker *d) {
  static const long ok[] = {200, 0};
  dh_begin(d);
  struct dh_request rq = {.op = "ping", .method = "GET", .path = "/_ping"};
  return dh_call(d, &rq, ok, NULL) < 0 ? -1 : 0;
}

static int add_field(cJSON *obj, const char *key, const char *value) {
  return cJSON_AddStringToObject(obj, key, value) ? 0 : -1;
}

cJSON *docker_version(struct docker *d) {
  dh_begin(d);
  if (dh_connect(d, "version") < 0) return NULL;
  cJSON *v = cJSON_CreateObject();
  char api[16];
  snprintf(api, sizeof api, "1.%d", d->api_minor);
  if (add_field(v, "api", api) < 0 || add_field(v, "server_api", d->server_api) < 0 ||
      add_field(v, "version", d->engine_version) < 0 || add_field(v, "os", d->os) < 0 ||
      add_field(v, "arch", d->arch) < 0) {
    cJSON_Delete(v);
    dh_oom(d, "version");
    return NULL;
  }
  return v;
}

/* ---- the hijacked stream ---- */

static int connect_unix(struct docker *d, const char *op) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (strlen(d->sock) >= sizeof sa.sun_path)
    return dh_fail_code(d, "ENAMETOOLONG", "%s: cannot reach the Docker engine at %s: socket path too long", op,
                        d->sock);
  memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return dh_fail_code(d, errno_name(errno), "%s: cannot reach the Docker engine at %s: %s", op, d->sock,
                        strerror(errno));
  fcntl(fd, F_SETFD, FD_CLOEXEC);
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return dh_fail_code(d, errno_name(e), "%s: cannot reach the Docker engine at %s: %s", op, d->sock, strerror(e));
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
  dh_engine_fail(d, op, status, &b);
  buf_free(&b);
  return -1;
}

/* Complete when the headers and (for an error answer) its body are in. */
static int answer_complete(const char *hdrs, const char *body, size_t body_len, int status) {
  if (status == 101 || status == 200) return 1;
  const char *cl = strstr(hdrs, "Content-Length:");
  if (!cl) cl = strstr(hdrs, "content-length:");
  if (cl) return body_len >= strtoul(cl + 15, NULL, 10);
  /* Chunked: complete at the terminal chunk. Else close-delimited. */
  return strstr(body, "\r\n0\r\n\r\n") || (body_len >= 5 && memcmp(body, "0\r\n\r\n", 5) == 0);
}

struct hijack {
  int fd;
  struct buf req; /* the request, then (once all sent) the stream input */
  size_t req_off, in_off;
  struct buf head; /* the answer until its headers are complete */
  size_t hdr_len;
  int status, wr_closed;
};

static int streaming(const struct hijack *h) { return h->status == 101 || h->status == 200; }

/* Writes what it can of the request, then of the input. */
static int hijack_send(struct docker *d, const char *op, struct hijack *h, const struct dh_hijack_spec *spec) {
  int req = h->req_off < h->req.len;
  const char *src = req ? h->req.p + h->req_off : spec->input + h->in_off;
  size_t n = req ? h->req.len - h->req_off : spec->input_len - h->in_off;
  ssize_t w = send(h->fd, src, n, SEND_FLAGS);
  if (w > 0) {
    if (req) h->req_off += (size_t)w;
    else h->in_off += (size_t)w;
  } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    if (!streaming(h))
      return dh_fail_code(d, errno_name(errno), "%s: cannot reach the Docker engine at %s: %s", op, d->sock,
                          strerror(errno));
    /* The process stopped reading its stdin: the rest is dropped. */
    h->in_off = spec->input_len;
  }
  return 0;
}

/* Takes bytes of the answer before the stream starts (r == 0: the engine
 * closed). 0 to go on; -1 with the error set, which is also how a complete
 * error answer ends it. */
static int hijack_head(struct docker *d, const char *op, struct hijack *h, const char *chunk, size_t r,
                       struct demux *m) {
  buf_addn(&h->head, chunk, r);
  if (h->head.oom) return dh_oom(d, op);
  if (!h->hdr_len) {
    char *end = h->head.p ? strstr(h->head.p, "\r\n\r\n") : NULL;
    if (!end) {
      if (h->head.len > 65536 || r == 0)
        return dh_fail_code(d, "ECONNRESET", "%s: the Docker engine closed the connection without an answer", op);
      return 0;
    }
    h->hdr_len = (size_t)(end - h->head.p) + 4;
    if (sscanf(h->head.p, "HTTP/%*d.%*d %d", &h->status) != 1)
      return dh_fail_code(d, "EPROTO", "%s: the Docker engine sent a malformed answer", op);
  }
  if (streaming(h)) {
    if (demux_feed(m, h->head.p + h->hdr_len, h->head.len - h->hdr_len) < 0) return dh_oom(d, op);
    buf_free(&h->head);
    return 0;
  }
  h->head.p[h->hdr_len - 1] = '\0'; /* end the header text for the lookups below */
  if (r == 0 || answer_complete(h->head.p, h->head.p + h->hdr_len, h->head.len - h->hdr_len, h->status))
    return hijack_error(d, op, h->status, h->head.p, h->head.p + h->hdr_len, h->head.len - h->hdr_len);
  h->head.p[h->hdr_len - 1] = '\n';
  return 0;
}

/* One turn of the loop: 0 go on, 1 the stream ended, -1 failed (set). */
static int hijack_step(struct docker *d, const char *op, struct hijack *h, const struct dh_hijack_spec *spec,
                       struct demux *m) {
  if (signalled(d)) return dh_fail_code(d, "EINTR", "%s: interrupted", op);
  long long left = spec->deadline > 0 ? spec->deadline - dh_now_ms() : POLL_SLICE_MS;
  if (left <= 0) return dh_fail_code(d, "TIMEOUT", "%s: timed out after %ld ms", op, spec->timeout_ms);
  if (streaming(h) && !h->wr_closed && (!spec->input || h->in_off >= spec->input_len)) {
    shutdown(h->fd, SHUT_WR);
    h->wr_closed = 1;
  }
  struct pollfd p = {.fd = h->fd, .events = POLLIN};
  if (h->req_off < h->req.len || (streaming(h) && !h->wr_closed)) p.events |= POLLOUT;
  int pr = poll(&p, 1, left < POLL_SLICE_MS ? (int)left : POLL_SLICE_MS);
  if (pr < 0 && errno != EINTR) return dh_fail_code(d, errno_name(errno), "%s: poll: %s", op, strerror(errno));
  if (pr <= 0) return 0;
  if ((p.revents & POLLOUT) && hijack_send(d, op, h, spec) < 0) return -1;
  if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) return 0;
  char chunk[65536];
  ssize_t r = recv(h->fd, chunk, sizeof chunk, 0);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return dh_fail_code(d, errno_name(errno), "%s: reading from the Docker engine: %s", op, strerror(errno));
  }
  if (!streaming(h)) return hijack_head(d, op, h, chunk, (size_t)r, m);
  if (r == 0) return 1;
  return demux_feed(m, chunk, (size_t)r) < 0 ? dh_oom(d, op) : 0;
}

int dh_hijack(struct docker *d, const char *op, const struct dh_hijack_spec *spec, struct demux *m) {
  if (dh_connect(d, op) < 0) return -1;
  struct hijack h = {.fd = -1};
  buf_printf(&h.req, "POST /v1.%d%s", d->api_minor, spec->path);
  size_t path_end = h.req.len;
  buf_printf(&h.req,
             " HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n%s",
             strlen(spec->body), spec->body);
  if (h.req.oom) {
    buf_free(&h.req);
    return dh_oom(d, op);
  }
  log_printf(LOG_TRACE, "docker %.*s", (int)path_end, h.req.p);
  h.fd = connect_unix(d, op);
  int rc = h.fd < 0 ? -1 : 0;
  while (rc == 0) rc = hijack_step(d, op, &h, spec, m);
  if (h.fd >= 0) close(h.fd);
  buf_free(&h.req);
  buf_free(&h.head);
  return rc < 0 ? -1 : 0;
}
