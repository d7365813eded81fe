/* docker.c: the Docker Engine API objects (see docker.h): networks,
 * containers, exec, images. It builds the request bodies and reads the
 * answers; the transport (connection, version, requests, the hijacked exec
 * stream, the error state) is docker_http.c. */
#include "docker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docker_http.h"

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

/* "k=v", or "k" alone when the value is empty; NULL when out of memory. */
static char *kv_text(const struct docker_kv *kv) {
  struct buf e = {0};
  if (kv->value && *kv->value) buf_printf(&e, "%s=%s", kv->key, kv->value);
  else buf_adds(&e, kv->key);
  return buf_take(&e, NULL);
}

static int add_env(cJSON *obj, const char *key, const struct docker_kv *kv) {
  if (!kv) return 0;
  cJSON *a = cJSON_AddArrayToObject(obj, key);
  if (!a) return -1;
  for (; kv->key; kv++) {
    char *s = kv_text(kv);
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
    /* An empty value matches any value: the label is present. */
    char *s = kv_text(kv);
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
static const long OK201[] = {201, 0};

/* POSTs rq expecting 201 and {"Id": ...}; its body `b` (env values in it)
 * is wiped and freed here. The id (malloc'd), or NULL with the error set. */
static char *post_for_id(struct docker *d, const struct dh_request *rq, cJSON *b, const char *what) {
  cJSON *j;
  long st = dh_call(d, rq, OK201, &j);
  delete_wiping_env(b);
  if (st < 0) return NULL;
  const char *id = json_str(j, "Id");
  char *r = id ? strdup(id) : NULL;
  cJSON_Delete(j);
  if (!r) dh_fail(d, (int)st, "%s: the Docker engine's reply has no %s id", rq->op, what);
  return r;
}

/* GET base (which may already carry a query) with the label filter added;
 * returns the engine's list reduced to one {"id", ...} object per element,
 * the rest filled in by `reduce`, or NULL (error set). */
static cJSON *get_list(struct docker *d, const char *op, const char *base, const struct docker_kv *labels,
                       void (*reduce)(cJSON *e, const cJSON *item)) {
  char *filter = label_filter(labels);
  struct buf p = {0};
  buf_adds(&p, base);
  if (filter && *filter) buf_printf(&p, "%c%s", strchr(base, '?') ? '&' : '?', filter);
  free(filter);
  cJSON *j = dh_get_json(d, op, buf_take(&p, NULL));
  if (!j) return NULL;
  cJSON *list = cJSON_CreateArray();
  const cJSON *item;
  cJSON_ArrayForEach(item, j) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToArray(list, e);
    add_string(e, "id", json_str(item, "Id"));
    reduce(e, item);
  }
  cJSON_Delete(j);
  return list;
}

void docker_output_free(struct docker_output *o) {
  if (!o) return;
  free(o->out);
  free(o->err);
  o->out = o->err = NULL;
  o->out_len = o->err_len = 0;
}


/* ---- networks ---- */

static cJSON *network_inspect(struct docker *d, const char *op, const char *name) {
  return dh_get_json(d, op, dh_make_path("/networks/", name, NULL, NULL));
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
  dh_begin(d);
  if (!spec->name || !*spec->name) return dh_fail_code(d, "EINVAL", "%s: a network name is required", op), NULL;
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
    return dh_oom(d, op), NULL;
  }
  struct dh_request rq = {.op = op, .method = "POST", .path = "/networks/create", .json = b};
  struct buf resp = {0};
  long st = dh_send(d, &rq, &resp);
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
      if (!r) dh_oom(d, op);
      return r;
    }
    cJSON_Delete(have);
    dh_begin(d);
    dh_engine_fail(d, op, saved_status, &resp);
    buf_free(&resp);
    return NULL;
  }
  if (st != 201) {
    dh_engine_fail(d, op, st, &resp);
    buf_free(&resp);
    return NULL;
  }
  cJSON *j = cJSON_ParseWithLength(resp.p ? resp.p : "", resp.len);
  buf_free(&resp);
  const char *id = json_str(j, "Id");
  char *r = id ? strdup(id) : NULL;
  if (!r) dh_fail(d, (int)st, "%s: the Docker engine's reply has no network id", op);
  cJSON_Delete(j);
  return r;
}

int docker_network_remove(struct docker *d, const char *name) {
  dh_begin(d);
  char *path = dh_make_path("/networks/", name, NULL, NULL);
  if (!path) return dh_oom(d, "network remove");
  struct dh_request rq = {.op = "network remove", .method = "DELETE", .path = path};
  static const long ok[] = {200, 204, 404, 0};
  long st = dh_call(d, &rq, ok, NULL);
  free(path);
  return st < 0 ? -1 : 0;
}

cJSON *docker_network_inspect(struct docker *d, const char *name) {
  dh_begin(d);
  return network_inspect(d, "network inspect", name);
}

static cJSON *string_object(const cJSON *src) {
  cJSON *o = cJSON_CreateObject();
  const cJSON *it;
  cJSON_ArrayForEach(it, src)
    if (cJSON_IsString(it) && it->string) cJSON_AddStringToObject(o, it->string, it->valuestring);
  return o;
}

static void reduce_network(cJSON *e, const cJSON *n) {
  add_string(e, "name", json_str(n, "Name"));
  cJSON_AddItemToObject(e, "labels", string_object(cJSON_GetObjectItemCaseSensitive(n, "Labels")));
  cJSON *subnets = cJSON_AddArrayToObject(e, "subnets");
  const cJSON *cfg;
  cJSON_ArrayForEach(cfg, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(n, "IPAM"), "Config")) {
    const char *s = json_str(cfg, "Subnet");
    if (s) cJSON_AddItemToArray(subnets, cJSON_CreateString(s));
  }
}

cJSON *docker_network_list(struct docker *d, const struct docker_kv *labels) {
  dh_begin(d);
  return get_list(d, "network list", "/networks", labels, reduce_network);
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
  char *path = dh_make_path("/networks/", network, NULL, "/connect");
  if (bad || !path) {
    cJSON_Delete(b);
    free(path);
    return dh_oom(d, op);
  }
  struct dh_request rq = {.op = op, .method = "POST", .path = path, .json = b};
  long st = dh_call(d, &rq, OK200, NULL);
  cJSON_Delete(b);
  free(path);
  return st < 0 ? -1 : 0;
}

/* ---- containers ---- */

static int container_remove(struct docker *d, const char *op, const char *id, int force, int volumes) {
  struct buf p = {0};
  buf_adds(&p, "/containers/");
  buf_add_escaped(&p, id, NULL);
  buf_printf(&p, "?force=%d&v=%d", force ? 1 : 0, volumes ? 1 : 0);
  char *path = buf_take(&p, NULL);
  if (!path) return dh_oom(d, op);
  struct dh_request rq = {.op = op, .method = "DELETE", .path = path};
  static const long ok[] = {204, 200, 404, 0};
  long st = dh_call(d, &rq, ok, NULL);
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
  dh_begin(d);
  if (!spec->image || !*spec->image) return dh_fail_code(d, "EINVAL", "%s: an image is required", op), NULL;
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
    return dh_oom(d, op), NULL;
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
  struct dh_request rq = {.op = op, .method = "POST", .path = path, .json = b};
  char *r = post_for_id(d, &rq, b, "container");
  free(path);
  if (!r) return NULL;

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
  char *path = dh_make_path("/containers/", id, NULL, suffix);
  if (!path) return dh_oom(d, op);
  struct dh_request rq = {.op = op, .method = "POST", .path = path, .timeout_ms = timeout_ms};
  long st = dh_call(d, &rq, ok, NULL);
  free(path);
  return st < 0 ? -1 : 0;
}

int docker_container_start(struct docker *d, const char *id) {
  dh_begin(d);
  static const long ok[] = {204, 304, 0};
  return container_post(d, "container start", id, "/start", ok, 0);
}

int docker_container_stop(struct docker *d, const char *id, int timeout_s) {
  dh_begin(d);
  if (timeout_s < 0) timeout_s = 0;
  char suffix[32];
  snprintf(suffix, sizeof suffix, "/stop?t=%d", timeout_s);
  static const long ok[] = {204, 304, 404, 0};
  return container_post(d, "container stop", id, suffix, ok, (long)(timeout_s + 30) * 1000);
}

int docker_container_kill(struct docker *d, const char *id, const char *signal) {
  dh_begin(d);
  char suffix[64];
  if (snprintf(suffix, sizeof suffix, "/kill?signal=%s", signal) >= (int)sizeof suffix)
    return dh_oom(d, "container kill");
  static const long ok[] = {204, 0};
  return container_post(d, "container kill", id, suffix, ok, 0);
}

int docker_container_remove(struct docker *d, const char *id, int force, int volumes) {
  dh_begin(d);
  return container_remove(d, "container remove", id, force, volumes);
}

static cJSON *container_inspect(struct docker *d, const char *op, const char *id) {
  return dh_get_json(d, op, dh_make_path("/containers/", id, NULL, "/json"));
}

cJSON *docker_container_inspect(struct docker *d, const char *id) {
  dh_begin(d);
  return container_inspect(d, "container inspect", id);
}

static void reduce_container(cJSON *e, const cJSON *c) {
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

cJSON *docker_container_list(struct docker *d, const struct docker_kv *labels, int all) {
  dh_begin(d);
  return get_list(d, "container list", all ? "/containers/json?all=1" : "/containers/json?all=0", labels,
                  reduce_container);
}

int docker_container_logs(struct docker *d, const char *id, int tail, struct docker_output *o) {
  static const char op[] = "container logs";
  dh_begin(d);
  memset(o, 0, sizeof *o);
  /* A TTY container's log is one raw stream; others are multiplexed. */
  cJSON *info = container_inspect(d, op, id);
  if (!info) return -1;
  int tty = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(info, "Config"), "Tty"));
  cJSON_Delete(info);
  char suffix[64];
  if (tail >= 0) snprintf(suffix, sizeof suffix, "/logs?stdout=1&stderr=1&tail=%d", tail);
  else snprintf(suffix, sizeof suffix, "/logs?stdout=1&stderr=1&tail=all");
  char *path = dh_make_path("/containers/", id, NULL, suffix);
  if (!path) return dh_oom(d, op);
  struct dh_request rq = {.op = op, .method = "GET", .path = path};
  struct buf resp = {0};
  long st = dh_send(d, &rq, &resp);
  free(path);
  if (st < 0 || st != 200) {
    if (st > 0) dh_engine_fail(d, op, st, &resp);
    buf_free(&resp);
    return -1;
  }
  struct demux m;
  demux_init(&m, tty);
  int bad = demux_feed(&m, resp.p ? resp.p : "", resp.len) < 0;
  buf_free(&resp);
  if (bad) demux_free(&m);
  if (bad || demux_finish(&m, &o->out, &o->out_len, &o->err, &o->err_len) < 0) return dh_oom(d, op);
  return 0;
}

int docker_container_wait(struct docker *d, const char *id, int timeout_ms, int *code) {
  static const char op[] = "container wait";
  dh_begin(d);
  char *path = dh_make_path("/containers/", id, NULL, "/wait?condition=not-running");
  if (!path) return dh_oom(d, op);
  struct dh_request rq = {.op = op, .method = "POST", .path = path, .timeout_ms = timeout_ms > 0 ? timeout_ms : -1};
  cJSON *j;
  long st = dh_call(d, &rq, OK200, &j);
  free(path);
  if (st < 0) {
    if (d->timed_out)
      dh_fail_code(d, "TIMEOUT", "%s: %s still running after %d ms", op, id, timeout_ms);
    return -1;
  }
  const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "StatusCode");
  const char *werr = json_str(cJSON_GetObjectItemCaseSensitive(j, "Error"), "Message");
  int r = 0;
  if (werr && *werr) r = dh_fail(d, 500, "%s: %s", op, werr);
  else if (!cJSON_IsNumber(sc)) r = dh_fail(d, 200, "%s: the Docker engine's reply has no exit code", op);
  else *code = sc->valueint;
  cJSON_Delete(j);
  return r;
}

int docker_ports(struct docker *d, const char *id, struct docker_port **ports, size_t *n) {
  static const char op[] = "ports";
  dh_begin(d);
  *ports = NULL;
  *n = 0;
  cJSON *info = container_inspect(d, op, id);
  if (!info) return -1;
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(info, "NetworkSettings"), "Ports");
  size_t cap = (size_t)cJSON_GetArraySize(map);
  struct docker_port *v = calloc(cap ? cap : 1, sizeof *v);
  if (!v) {
    cJSON_Delete(info);
    return dh_oom(d, op);
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

/* POST /containers/{id}/exec; the exec id, or NULL (error set). */
static char *exec_create(struct docker *d, const char *op, const char *id, const struct docker_exec_spec *spec,
                         long timeout_ms) {
  cJSON *b = cJSON_CreateObject();
  if (!b || !cJSON_AddBoolToObject(b, "AttachStdin", spec->input != NULL) ||
      !cJSON_AddTrueToObject(b, "AttachStdout") || !cJSON_AddTrueToObject(b, "AttachStderr") ||
      !cJSON_AddFalseToObject(b, "Tty") || add_list(b, "Cmd", spec->cmd) < 0 || add_env(b, "Env", spec->env) < 0 ||
      add_string(b, "User", spec->user) < 0 || add_string(b, "WorkingDir", spec->workdir) < 0) {
    delete_wiping_env(b);
    return dh_oom(d, op), NULL;
  }
  char *path = dh_make_path("/containers/", id, NULL, "/exec");
  if (!path) {
    delete_wiping_env(b);
    return dh_oom(d, op), NULL;
  }
  struct dh_request rq = {.op = op, .method = "POST", .path = path, .json = b, .timeout_ms = timeout_ms};
  char *exec_id = post_for_id(d, &rq, b, "exec");
  free(path);
  return exec_id;
}

/* POST /exec/{id}/start on a hijacked connection: stdin in, frames out. */
static int exec_stream(struct docker *d, const char *op, const char *exec_id, const struct docker_exec_spec *spec,
                       long long deadline, long timeout_ms, struct docker_output *o) {
  char *path = dh_make_path("/exec/", exec_id, NULL, "/start");
  if (!path) return dh_oom(d, op);
  struct dh_hijack_spec h = {.path = path, .body = "{\"Detach\":false,\"Tty\":false}", .input = spec->input,
                             .input_len = spec->input_len, .deadline = deadline, .timeout_ms = timeout_ms};
  struct demux m;
  demux_init(&m, 0);
  int rc = dh_hijack(d, op, &h, &m);
  free(path);
  if (rc < 0) {
    demux_free(&m);
    return -1;
  }
  if (demux_finish(&m, &o->out, &o->out_len, &o->err, &o->err_len) < 0) return dh_oom(d, op);
  return 0;
}

/* The stream ends when the process's output closes; its exit code can
 * trail that by a moment, so poll briefly until it is recorded. */
static int exec_exit_code(struct docker *d, const char *op, const char *exec_id, long long deadline,
                          long timeout_ms, int *code) {
  char *path = dh_make_path("/exec/", exec_id, NULL, "/json");
  if (!path) return dh_oom(d, op);
  int rc = 0;
  for (int i = 0;; i++) {
    struct dh_request rq = {.op = op, .method = "GET", .path = path};
    cJSON *info;
    if (dh_call(d, &rq, OK200, &info) < 0) {
      rc = -1;
      break;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(info, "ExitCode");
    int running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(info, "Running"));
    int done = !running && cJSON_IsNumber(c);
    if (done) *code = c->valueint;
    cJSON_Delete(info);
    if (done) break;
    if (deadline && dh_now_ms() >= deadline) {
      rc = dh_fail_code(d, "TIMEOUT", "%s: timed out after %ld ms", op, timeout_ms);
      break;
    }
    if (i > 200) {
      rc = dh_fail_code(d, "ENGINE_ERROR", "%s: the Docker engine did not report the exit code", op);
      break;
    }
    if (dh_nap(d, i < 10 ? 5 * (i + 1) : 50) < 0) {
      rc = dh_fail_code(d, "EINTR", "%s: interrupted", op);
      break;
    }
  }
  free(path);
  return rc;
}

int docker_exec(struct docker *d, const char *id, const struct docker_exec_spec *spec, struct docker_output *o) {
  static const char op[] = "exec";
  dh_begin(d);
  memset(o, 0, sizeof *o);
  if (!spec->cmd || !spec->cmd[0]) return dh_fail_code(d, "EINVAL", "%s: a command is required", op);
  long timeout_ms = spec->timeout_ms ? spec->timeout_ms : DOCKER_DEFAULT_TIMEOUT_MS;
  long long deadline = timeout_ms > 0 ? dh_now_ms() + timeout_ms : 0;
  char *exec_id = exec_create(d, op, id, spec, timeout_ms);
  if (!exec_id) return -1;
  int rc = exec_stream(d, op, exec_id, spec, deadline, timeout_ms, o);
  if (rc == 0) rc = exec_exit_code(d, op, exec_id, deadline, timeout_ms, &o->code);
  free(exec_id);
  if (rc < 0) docker_output_free(o);
  return rc;
}

/* ---- images ---- */

static const char IMAGE_KEEP[] = "/:@";

static cJSON *image_inspect(struct docker *d, const char *op, const char *ref) {
  return dh_get_json(d, op, dh_make_path("/images/", ref, IMAGE_KEEP, "/json"));
}

cJSON *docker_image_inspect(struct docker *d, const char *ref) {
  dh_begin(d);
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
  dh_begin(d);
  cJSON *j = image_inspect(d, "image inspect", ref);
  if (j) {
    cJSON_Delete(j);
    return 1;
  }
  if (d->status == 404) {
    dh_begin(d);
    return 0;
  }
  return -1;
}

int docker_image_save(struct docker *d, const char *ref, const char *out_path) {
  static const char op[] = "image save";
  dh_begin(d);
  int fd = open(out_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return dh_fail_code(d, errno_name(errno), "%s: cannot create %s: %s", op, out_path, strerror(errno));
  FILE *f = fdopen(fd, "w+b");
  if (!f) {
    close(fd);
    unlink(out_path);
    return dh_oom(d, op);
  }
  char *path = dh_make_path("/images/", ref, IMAGE_KEEP, "/get");
  if (!path) {
    fclose(f);
    unlink(out_path);
    return dh_oom(d, op);
  }
  struct dh_request rq = {.op = op, .method = "GET", .path = path, .download = f, .timeout_ms = 600000};
  long status = dh_send(d, &rq, NULL);
  free(path);
  int write_failed = fflush(f) != 0 || ferror(f);
  if (status == 200 && !write_failed) {
    if (fclose(f) != 0) {
      unlink(out_path);
      return dh_fail_code(d, errno_name(errno), "%s: cannot write %s: %s", op, out_path, strerror(errno));
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
    dh_engine_fail(d, op, status, &body);
    buf_free(&body);
  } else if (status == 200) {
    dh_fail_code(d, "EIO", "%s: cannot write %s", op, out_path);
  }
  fclose(f);
  unlink(out_path);
  return -1;
}
