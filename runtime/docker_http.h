/* docker_http.h: the transport under docker.c, private to it (and to the C
 * unit tests, which build the requests only they need on it). Not part of
 * the API: callers outside runtime/docker*.c use docker.h.
 *
 * docker_http.c owns `struct docker` (socket path, the libcurl handles, the
 * negotiated version, the last error), the request/response cycle through
 * libcurl over the unix socket, and the hijacked attach stream that
 * `exec` needs (written by hand on a plain socket, demultiplexed with
 * demux.h). docker.c owns the API objects: it builds request bodies and
 * reads answers, and every failure it reports goes through dh_fail*.
 *
 * Error state: dh_begin() clears it at the start of each public call;
 * dh_fail() records an engine answer (an HTTP status; the string code
 * follows from it, see docker_code()), dh_fail_code() a failure with no
 * answer (status 0, an errno-style code such as "ECONNREFUSED"). Both
 * return -1 so callers can `return dh_fail(...)`. */
#ifndef BOTTLE_DOCKER_HTTP_H
#define BOTTLE_DOCKER_HTTP_H

#include <stdio.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "demux.h"
#include "docker.h"
#include "util.h"

struct docker {
  int (*pending_signal)(void);
  CURLM *multi;
  CURL *curl;
  char *sock;    /* resolved socket path */
  int api_minor; /* 0 until negotiated */
  char server_api[16], engine_version[64], os[32], arch[32];
  char *err;
  const char *code; /* static string; NULL: follows from status */
  int status;
  int interrupted;
  int timed_out; /* the last failure was a request timeout */
  char curl_err[CURL_ERROR_SIZE];
};

void dh_begin(struct docker *d);
int dh_fail(struct docker *d, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int dh_fail_code(struct docker *d, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "<op>: out of memory", code "ENOMEM". */
int dh_oom(struct docker *d, const char *op);
/* The engine's answer `body` with HTTP `status` as the error: its
 * {"message"} when it has one, else the body itself, trimmed. */
int dh_engine_fail(struct docker *d, const char *op, long status, const struct buf *body);

long long dh_now_ms(void);
/* Sleeps ms in short slices; -1 as soon as a signal is pending. */
int dh_nap(struct docker *d, int ms);

struct dh_request {
  const char *op;     /* names the operation in messages */
  const char *method; /* GET, POST, DELETE */
  const char *path;   /* after the version prefix, query included */
  const cJSON *json;  /* body, or NULL */
  FILE *upload;       /* streamed body (a tar) instead of json */
  FILE *download;     /* the answer's body goes here instead of resp */
  long long upload_len;
  long timeout_ms; /* 0: default; < 0: none */
  int unversioned;
};

/* Opens the connection and negotiates the version when not done yet. */
int dh_connect(struct docker *d, const char *op);
/* Sends one request; returns the HTTP status with the body in `resp` (may
 * be NULL with rq->download), or -1 (error set) when no answer came. */
long dh_send(struct docker *d, const struct dh_request *rq, struct buf *resp);
/* dh_send, then: a status not in `ok` (0-terminated) becomes the engine's
 * error; with `out`, a 2xx body is parsed into *out. Returns the status or -1. */
long dh_call(struct docker *d, const struct dh_request *rq, const long *ok, cJSON **out);
/* GET path (taken: freed here; NULL counts as out of memory) expecting 200
 * and JSON. */
cJSON *dh_get_json(struct docker *d, const char *op, char *path);
/* prefix + percent-encoded seg (but `keep`) + suffix; NULL when out of memory. */
char *dh_make_path(const char *prefix, const char *seg, const char *keep, const char *suffix);

/* POST <path> (after the version prefix) with a JSON body on a connection
 * the engine hijacks: writes `input` to the stream and half-closes it,
 * feeds everything read into m until the engine closes. `deadline`
 * (dh_now_ms() based, 0: none) bounds it; `timeout_ms` is only quoted in
 * the message. 0, or -1 with the error set. */
struct dh_hijack_spec {
  const char *path, *body;
  const char *input; /* NULL: none; the stream is half-closed at once */
  size_t input_len;
  long long deadline;
  long timeout_ms;
};
int dh_hijack(struct docker *d, const char *op, const struct dh_hijack_spec *spec, struct demux *m);

#endif
