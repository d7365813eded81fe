/* docker.h: a client of the Docker Engine API over its unix socket. Pure C,
 * no Lua: libcurl speaks HTTP, cJSON builds and reads the bodies. The
 * transport (connection, requests, the hijacked exec stream) is
 * docker_http.c; the API objects below it are docker.c; the stream
 * demultiplexer is demux.h.
 *
 * One `struct docker` is one connection: it finds the socket (DOCKER_HOST
 * unix://PATH, else /var/run/docker.sock, else Docker Desktop's
 * ~/.docker/run/docker.sock) on first use, negotiates the API version once
 * (the lower of the engine's and 1.DOCKER_API_MAX_MINOR) and keeps the connection
 * alive between calls. docker_reset() forgets all of that, so the next call
 * reads DOCKER_HOST again. No `docker` program is ever run.
 *
 * Every call has a timeout and gives up promptly when the `pending_signal`
 * callback reports a signal. A failed call returns NULL / -1 and leaves
 * "<operation>: <the engine's own message>" in docker_errmsg(), a string
 * code in docker_code() and the HTTP status in docker_status() (0 when no
 * answer came), and docker_interrupted() set when a signal stopped it.
 * Codes: an answer's status gives "BAD_REQUEST" (400), "FORBIDDEN" (401,
 * 403), "NOT_FOUND" (404), "CONFLICT" (409), else "ENGINE_ERROR" (also a
 * 2xx answer that makes no sense); without an answer the code is errno
 * style ("ECONNREFUSED", "ENOENT", "EACCES", "ENOMEM", "EINVAL" ...),
 * "TIMEOUT" for a timeout and "EINTR" for a signal. Request bodies (which
 * carry env values) are never logged; with log level trace every call is
 * logged as `docker METHOD PATH`.
 *
 * Results that are documents are cJSON trees the caller frees with
 * cJSON_Delete; inspect calls return the engine's JSON as is, list calls a
 * reduced array described at each function. Strings returned are malloc'd. */
#ifndef BOTTLE_DOCKER_H
#define BOTTLE_DOCKER_H

#include <stddef.h>

#include <cJSON.h>

#define DOCKER_API_MAX_MINOR 43 /* highest API version this client speaks: 1.43 */
#define DOCKER_API_MIN_MINOR 40 /* oldest engine API accepted: 1.40 */
#define DOCKER_DEFAULT_TIMEOUT_MS 60000

struct docker;

/* `pending_signal` may be NULL; it returns a signal number to give up, else 0. */
/* libcurl is loaded on the first call; NULL when it cannot be (or out of
 * memory), docker_new_error() then says why in one line. */
struct docker *docker_new(int (*pending_signal)(void));
const char *docker_new_error(void);
void docker_free(struct docker *d);
/* Drops the connection and the negotiated version. */
void docker_reset(struct docker *d);

/* The last failure. The message is valid until the next call on `d`;
 * codes are static strings. */
const char *docker_errmsg(const struct docker *d);
const char *docker_code(const struct docker *d);
int docker_status(const struct docker *d);
/* The code an engine answer with this HTTP status fails with. */
const char *docker_status_code(int status);
int docker_interrupted(const struct docker *d);
/* Socket path in use (resolving it if needed), or NULL with the error set. */
const char *docker_socket(struct docker *d);

/* Arrays below end with a zeroed element (key/name/host NULL, port 0);
 * string lists end with NULL. Any pointer may be NULL for "none". */
struct docker_kv {
  const char *key, *value;
};

struct docker_network_spec {
  const char *name;    /* required */
  const char *subnet;  /* e.g. 10.231.7.0/24; NULL lets the engine pick */
  const char *gateway; /* e.g. 10.231.7.1 */
  const char *driver;  /* NULL: bridge */
  int internal;        /* no route out */
  const struct docker_kv *labels;
};

struct docker_endpoint { /* a network a container joins */
  const char *name;
  const char *ip; /* fixed IPv4 address, or NULL */
  const char *const *aliases;
};

struct docker_bind {
  const char *host, *container;
  int ro;
};

struct docker_publish {
  int port;            /* container port (tcp) */
  const char *host_ip; /* NULL: 127.0.0.1 */
  int host_port;       /* 0: the engine picks a free one */
};

struct docker_container_spec {
  const char *name, *image; /* image required; name NULL lets the engine pick */
  const char *const *cmd, *const *entrypoint;
  const struct docker_kv *env; /* sent only in the request body */
  const struct docker_kv *labels;
  const char *network;         /* first network; also the network mode unless network_mode */
  const char *ip;              /* address on `network` */
  const char *const *aliases;  /* aliases on `network` */
  const struct docker_endpoint *networks; /* further networks, joined before returning */
  const struct docker_bind *binds;
  const struct docker_publish *publish;
  const char *const *extra_hosts; /* "name:ip" */
  const char *user, *workdir, *network_mode;
  int tty, open_stdin, init;
  const char *const *cap_add;
};

struct docker_port {
  int port;          /* container port */
  char host_ip[64];
  int host_port;
};

struct docker_exec_spec {
  const char *const *cmd; /* required */
  const struct docker_kv *env;
  const char *user, *workdir;
  const char *input; /* stdin bytes; NULL: no stdin attached */
  size_t input_len;
  int timeout_ms; /* 0: DOCKER_DEFAULT_TIMEOUT_MS; < 0: no limit */
};

/* Captured streams (NUL-terminated, never NULL after success) and an exit
 * code. Filled by docker_exec / docker_container_logs, freed by the caller. */
struct docker_output {
  char *out, *err;
  size_t out_len, err_len;
  int code;
};
void docker_output_free(struct docker_output *o);

int docker_ping(struct docker *d);
/* {"api": version in use, "server_api", "version", "os", "arch"} */
cJSON *docker_version(struct docker *d);

/* Returns the network id. A network of that name whose labels include all of
 * spec->labels counts as created (it is ours, from an earlier attempt). */
char *docker_network_create(struct docker *d, const struct docker_network_spec *spec);
int docker_network_remove(struct docker *d, const char *name); /* missing: success */
cJSON *docker_network_inspect(struct docker *d, const char *name);
/* [{"id", "name", "labels": {}, "subnets": []}], all networks when labels is NULL/empty */
cJSON *docker_network_list(struct docker *d, const struct docker_kv *labels);

/* Returns the container id. When joining spec->networks fails, the
 * container is removed before the error is returned. */
char *docker_container_create(struct docker *d, const struct docker_container_spec *spec);
int docker_container_start(struct docker *d, const char *id);
/* Already stopped or missing: success. Waits up to timeout_s for a clean exit. */
int docker_container_stop(struct docker *d, const char *id, int timeout_s);
int docker_container_remove(struct docker *d, const char *id, int force, int volumes); /* missing: success */
/* Sends signal (a name such as "SIGHUP", or a number) to the container's
 * PID 1. A container that is not running is an error (409). */
int docker_container_kill(struct docker *d, const char *id, const char *signal);
cJSON *docker_container_inspect(struct docker *d, const char *id);
/* [{"id", "names": [], "image", "state", "labels": {}, "created"}] */
cJSON *docker_container_list(struct docker *d, const struct docker_kv *labels, int all);
/* tail < 0: everything. A TTY container's output all goes to out. */
int docker_container_logs(struct docker *d, const char *id, int tail, struct docker_output *o);
/* Waits until the container stops; its exit code in *code. timeout_ms <= 0: no limit. */
int docker_container_wait(struct docker *d, const char *id, int timeout_ms, int *code);
/* Every published tcp port, from one inspect. *ports is malloc'd (free()). */
int docker_ports(struct docker *d, const char *id, struct docker_port **ports, size_t *n);

int docker_exec(struct docker *d, const char *id, const struct docker_exec_spec *spec,
                struct docker_output *o);

/* 1 present, 0 absent, -1 error. */
int docker_image_exists(struct docker *d, const char *ref);
/* {"id", "repo_tags": [], "created", "labels": {}}, or NULL (404 when absent). */
cJSON *docker_image_inspect(struct docker *d, const char *ref);
/* Writes `docker save` of ref (a tar) to out_path (created 0600, must not
 * exist); removed again on failure. */
int docker_image_save(struct docker *d, const char *ref, const char *out_path);

#endif
