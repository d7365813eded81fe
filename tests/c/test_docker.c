/* Tests for docker.c against a real Docker engine (DOCKER_HOST).
 *
 * The image is built offline: a static busybox plus applet symlinks, tarred
 * and imported as bottle-test-busybox:<run id>. Everything created carries
 * the label io.bottle.test=<run id> and is removed at the end, also when
 * checks fail. Without an engine every engine test is skipped with the
 * reason. */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "docker.h"
#include "docker_testapi.h"
#include "log.h"
#include "proc.h"
#include "tap.h"

static struct docker *D;
static char engine_skip[600];
static char image_skip[600];
static char run_id[17];
static char image_ref[96];
static char workdir[256];
static struct docker_kv test_labels[2];

/* ---- helpers ---- */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long interrupt_at; /* pending_signal reports SIGINT from then on */
static int test_pending_signal(void) { return interrupt_at && now_ms() >= interrupt_at ? SIGINT : 0; }

static void random_hex(char *out, size_t nbytes) {
  unsigned char b[64];
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(b, 1, nbytes, f) != nbytes) {
    for (size_t i = 0; i < nbytes; i++) b[i] = (unsigned char)(rand() ^ getpid() ^ time(NULL));
  }
  if (f) fclose(f);
  for (size_t i = 0; i < nbytes; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static unsigned random_byte(void) {
  char h[3];
  random_hex(h, 1);
  return (unsigned)strtoul(h, NULL, 16);
}

static void need_engine(void) {
  if (engine_skip[0]) SKIP("%s", engine_skip);
}

static void need_image(void) {
  need_engine();
  if (image_skip[0]) SKIP("%s", image_skip);
}

static int contains(const char *s, const char *sub) { return s && sub && strstr(s, sub) != NULL; }

static const cJSON *path_get(const cJSON *j, const char *a, const char *b, const char *c) {
  j = cJSON_GetObjectItemCaseSensitive(j, a);
  if (b) j = cJSON_GetObjectItemCaseSensitive(j, b);
  if (c) j = cJSON_GetObjectItemCaseSensitive(j, c);
  return j;
}

static int array_has_string(const cJSON *a, const char *s) {
  const cJSON *e;
  cJSON_ArrayForEach(e, a)
    if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0) return 1;
  return 0;
}

static void name_for(char *out, size_t n, const char *what) { snprintf(out, n, "bottle-test-%s-%s", what, run_id); }

/* A container from the test image; NULL-terminated cmd. */
static char *make_container(const char *name, const char *const *cmd, int start) {
  struct docker_container_spec s = {.name = name, .image = image_ref, .cmd = cmd, .labels = test_labels};
  char *id = docker_container_create(D, &s);
  CHECK(id != NULL, "create %s: %s", name, docker_errmsg(D));
  if (id && start) CHECK(docker_container_start(D, id) == 0, "start %s: %s", name, docker_errmsg(D));
  return id;
}

static void drop_container(char *id) {
  if (!id) return;
  CHECK(docker_container_remove(D, id, 1, 1) == 0, "remove: %s", docker_errmsg(D));
  free(id);
}

/* Creates a network on a random 10.231.X.0/24, retrying when the pool
 * overlaps a network someone else made. Returns the id; X in *octet. */
static char *make_network(const char *name, int internal, unsigned *octet) {
  for (int attempt = 0; attempt < 12; attempt++) {
    unsigned x = random_byte();
    char subnet[32], gw[32];
    snprintf(subnet, sizeof subnet, "10.231.%u.0/24", x);
    snprintf(gw, sizeof gw, "10.231.%u.1", x);
    struct docker_network_spec s = {.name = name, .subnet = subnet, .gateway = gw, .internal = internal,
                                    .labels = test_labels};
    char *id = docker_network_create(D, &s);
    if (id) {
      if (octet) *octet = x;
      return id;
    }
    if (!contains(docker_errmsg(D), "overlap")) break;
  }
  CHECK(0, "network create %s: %s", name, docker_errmsg(D));
  return NULL;
}

struct fetched {
  char data[4096];
  size_t len;
};

static size_t on_fetch(char *p, size_t size, size_t n, void *ud) {
  struct fetched *f = ud;
  size_t take = size * n;
  if (take > sizeof f->data - 1 - f->len) take = sizeof f->data - 1 - f->len;
  memcpy(f->data + f->len, p, take);
  f->len += take;
  f->data[f->len] = '\0';
  return size * n;
}

/* GET http://127.0.0.1:port/path, retried for up to 10 s while the server starts. */
static int http_get(int port, const char *path, struct fetched *f) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  for (int i = 0; i < 50; i++) {
    memset(f, 0, sizeof *f);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_fetch);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc == CURLE_OK && status == 200) return 0;
    usleep(200000);
  }
  return -1;
}

static int write_file(const char *path, const char *data, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) return -1;
  ssize_t w = write(fd, data, len);
  close(fd);
  return w == (ssize_t)len ? 0 : -1;
}

static char *read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  size_t cap = 4096, n = 0;
  char *b = malloc(cap + 1);
  for (;;) {
    if (!b) break;
    if (n == cap) {
      char *nb = realloc(b, (cap *= 2) + 1);
      if (!nb) {
        free(b);
        b = NULL;
        break;
      }
      b = nb;
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (!b) return NULL;
  b[n] = '\0';
  if (len) *len = n;
  return b;
}

static int run(const char *const *argv, struct proc_result *r) {
  struct proc_spec s = {.argv = argv, .timeout_ms = 60000};
  proc_run(&s, r);
  return r->status == PROC_EXITED ? r->code : -1;
}

/* ---- the test image ---- */

static void build_image(void) {
  struct proc_result r;
  const char *ldd[] = {"ldd", "/bin/busybox", NULL};
  if (access("/bin/busybox", X_OK) != 0) {
    snprintf(image_skip, sizeof image_skip, "no /bin/busybox (install busybox-static)");
    return;
  }
  run(ldd, &r);
  int is_static = contains(r.out, "not a dynamic executable") || contains(r.err, "not a dynamic executable") ||
                  contains(r.out, "statically linked") || contains(r.err, "statically linked");
  proc_result_free(&r);
  if (!is_static) {
    snprintf(image_skip, sizeof image_skip, "/bin/busybox is not statically linked (install busybox-static)");
    return;
  }
  char root[300], path[400];
  snprintf(root, sizeof root, "%s/rootfs", workdir);
  const char *dirs[] = {"", "/bin", "/etc", "/tmp", "/www", "/proc", "/sys", "/dev", "/mnt", NULL};
  for (int i = 0; dirs[i]; i++) {
    snprintf(path, sizeof path, "%s%s", root, dirs[i]);
    mkdir(path, strcmp(dirs[i], "/tmp") == 0 ? 01777 : 0755);
  }
  snprintf(path, sizeof path, "%s/tmp", root);
  chmod(path, 01777);
  size_t len;
  char *bb = read_file("/bin/busybox", &len);
  snprintf(path, sizeof path, "%s/bin/busybox", root);
  if (!bb || write_file(path, bb, len, 0755) < 0) {
    free(bb);
    snprintf(image_skip, sizeof image_skip, "cannot copy /bin/busybox into %s", root);
    return;
  }
  free(bb);
  const char *applets[] = {"sh", "cat", "echo", "sleep", "httpd", "nc", "wget", "mkdir", "id", "pwd",
                           "grep", "touch", "ls", "env", "true", "false", "printf", NULL};
  for (int i = 0; applets[i]; i++) {
    snprintf(path, sizeof path, "%s/bin/%s", root, applets[i]);
    symlink("busybox", path);
  }
  char tarball[300];
  snprintf(tarball, sizeof tarball, "%s/rootfs.tar", workdir);
  const char *tar[] = {"tar", "--numeric-owner", "--owner=0", "--group=0", "-C", root, "-cf", tarball, ".", NULL};
  int code = run(tar, &r);
  if (code != 0) {
    snprintf(image_skip, sizeof image_skip, "tar failed (%d): %.200s", code, r.err);
    proc_result_free(&r);
    return;
  }
  proc_result_free(&r);
  char label[80];
  snprintf(label, sizeof label, "LABEL io.bottle.test=%s", run_id);
  const char *changes[] = {"ENV PATH=/bin", label, "CMD [\"/bin/sh\"]", NULL};
  char *id = docker_image_import(D, tarball, "bottle-test-busybox", run_id, changes);
  if (!id) {
    snprintf(image_skip, sizeof image_skip, "image import failed: %s", docker_errmsg(D));
    return;
  }
  free(id);
}

/* Removes everything labelled with this run's id. */
static void sweep(void) {
  if (engine_skip[0]) return;
  cJSON *cs = docker_container_list(D, test_labels, 1);
  const cJSON *c;
  cJSON_ArrayForEach(c, cs) {
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
    if (id && docker_container_remove(D, id, 1, 1) < 0) printf("# sweep: %s\n", docker_errmsg(D));
  }
  cJSON_Delete(cs);
  cJSON *ns = docker_network_list(D, test_labels);
  const cJSON *n;
  cJSON_ArrayForEach(n, ns) {
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "id"));
    if (id && docker_network_remove(D, id) < 0) printf("# sweep: %s\n", docker_errmsg(D));
  }
  cJSON_Delete(ns);
  char ref[128];
  snprintf(ref, sizeof ref, "bottle-test-busybox:%s-bad", run_id);
  docker_image_remove(D, ref, 1);
  if (docker_image_remove(D, image_ref, 1) < 0) printf("# sweep: %s\n", docker_errmsg(D));
}

/* ---- tests ---- */

static void test_socket_selection(void) {
  const char *saved = getenv("DOCKER_HOST");
  char *keep = saved ? strdup(saved) : NULL;
  struct docker *d = docker_new(NULL);

  setenv("DOCKER_HOST", "tcp://127.0.0.1:2375", 1);
  CHECK_INT(docker_ping(d), -1);
  CHECK(contains(docker_errmsg(d), "only unix:// sockets are supported"), "%s", docker_errmsg(d));
  CHECK(contains(docker_errmsg(d), "ping: "), "%s", docker_errmsg(d));
  CHECK_INT(docker_status(d), 0);
  CHECK_STR(docker_code(d), "EINVAL");

  /* A socket path once resolved is kept until reset; only then is
   * DOCKER_HOST read again. */
  setenv("DOCKER_HOST", "unix:///nonexistent/bottle/docker.sock", 1);
  docker_reset(d);
  CHECK_INT(docker_ping(d), -1);
  CHECK_STR(docker_errmsg(d),
            "ping: cannot reach the Docker engine at /nonexistent/bottle/docker.sock: No such file or directory");
  CHECK_INT(docker_status(d), 0);
  CHECK_STR(docker_code(d), "ENOENT");
  CHECK_STR(docker_socket(d), "/nonexistent/bottle/docker.sock");
  setenv("DOCKER_HOST", "tcp://127.0.0.1:2375", 1);
  CHECK_INT(docker_ping(d), -1);
  CHECK(contains(docker_errmsg(d), "/nonexistent/bottle/docker.sock"), "kept before reset: %s", docker_errmsg(d));
  docker_reset(d);
  CHECK_INT(docker_ping(d), -1);
  CHECK(contains(docker_errmsg(d), "only unix:// sockets are supported"), "%s", docker_errmsg(d));

  if (keep) setenv("DOCKER_HOST", keep, 1);
  else unsetenv("DOCKER_HOST");
  docker_reset(d);
  if (keep && !engine_skip[0]) CHECK(docker_ping(d) == 0, "after reset: %s", docker_errmsg(d));
  docker_free(d);
  free(keep);
}

static void test_version(void) {
  need_engine();
  cJSON *v = docker_version(D);
  CHECK(v != NULL, "%s", docker_errmsg(D));
  const char *api = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "api"));
  int minor = 0;
  CHECK(api && sscanf(api, "1.%d", &minor) == 1 && minor >= 40 && minor <= 43, "api %s", api ? api : "(null)");
  CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "os")), "linux");
  const char *ver = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "version"));
  CHECK(ver && *ver, "engine version");
  cJSON_Delete(v);
  CHECK_INT(docker_ping(D), 0);
}

static void test_network_lifecycle(void) {
  need_engine();
  char name[96];
  name_for(name, sizeof name, "net");
  unsigned x = 0;
  char *id = make_network(name, 1, &x);
  if (!id) return;
  char subnet[32];
  snprintf(subnet, sizeof subnet, "10.231.%u.0/24", x);

  /* Again with our labels: the existing one is ours, same id. */
  struct docker_network_spec again = {.name = name, .subnet = subnet, .internal = 1, .labels = test_labels};
  char *id2 = docker_network_create(D, &again);
  CHECK(id2 && strcmp(id, id2) == 0, "second create: %s / %s", id2 ? id2 : docker_errmsg(D), id);
  free(id2);

  /* Someone else's labels: the engine's refusal comes through. */
  struct docker_kv other[] = {{"io.bottle.test", "someone-else"}, {NULL, NULL}};
  struct docker_network_spec theirs = {.name = name, .labels = other};
  char *id3 = docker_network_create(D, &theirs);
  CHECK(id3 == NULL, "create with other labels succeeded");
  free(id3);
  CHECK_INT(docker_status(D), 409);
  CHECK_STR(docker_code(D), "CONFLICT");
  CHECK(contains(docker_errmsg(D), "network create: ") && contains(docker_errmsg(D), "already exists") &&
            contains(docker_errmsg(D), name),
        "%s", docker_errmsg(D));

  cJSON *list = docker_network_list(D, test_labels);
  CHECK(list != NULL, "%s", docker_errmsg(D));
  int found = 0;
  const cJSON *n;
  cJSON_ArrayForEach(n, list) {
    if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "name")), name) != 0) continue;
    found++;
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "id")), id);
    CHECK(array_has_string(cJSON_GetObjectItemCaseSensitive(n, "subnets"), subnet), "subnet listed");
    CHECK_STR(cJSON_GetStringValue(path_get(n, "labels", "io.bottle.test", NULL)), run_id);
  }
  CHECK_INT(found, 1);
  cJSON_Delete(list);

  cJSON *all = docker_network_list(D, NULL);
  int has_bridge = 0, has_ours = 0;
  cJSON_ArrayForEach(n, all) {
    const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "name"));
    has_bridge += nm && strcmp(nm, "bridge") == 0;
    has_ours += nm && strcmp(nm, name) == 0;
  }
  CHECK(has_bridge && has_ours, "unfiltered list has bridge (%d) and ours (%d)", has_bridge, has_ours);
  cJSON_Delete(all);

  cJSON *info = docker_network_inspect(D, name);
  CHECK(info != NULL, "%s", docker_errmsg(D));
  CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(info, "Internal")), "internal");
  CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, "Driver")), "bridge");
  const cJSON *cfg = cJSON_GetArrayItem(path_get(info, "IPAM", "Config", NULL), 0);
  char gw[32];
  snprintf(gw, sizeof gw, "10.231.%u.1", x);
  CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cfg, "Gateway")), gw);
  CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cfg, "Subnet")), subnet);
  cJSON_Delete(info);

  CHECK_INT(docker_network_remove(D, name), 0);
  CHECK(docker_network_remove(D, name) == 0, "second remove: %s", docker_errmsg(D));
  cJSON *gone = docker_network_inspect(D, name);
  CHECK(gone == NULL, "still there after remove");
  cJSON_Delete(gone);
  CHECK_INT(docker_status(D), 404);
  CHECK_STR(docker_code(D), "NOT_FOUND");
  CHECK(contains(docker_errmsg(D), "network inspect: "), "%s", docker_errmsg(D));
  free(id);
}

static void test_image(void) {
  need_image();
  CHECK_INT(docker_image_exists(D, image_ref), 1);
  cJSON *img = docker_image_inspect(D, image_ref);
  CHECK(img != NULL, "%s", docker_errmsg(D));
  CHECK(array_has_string(cJSON_GetObjectItemCaseSensitive(img, "repo_tags"), image_ref), "repo_tags");
  CHECK(contains(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(img, "id")), "sha256:"), "id");
  CHECK_STR(cJSON_GetStringValue(path_get(img, "labels", "io.bottle.test", NULL)), run_id);
  cJSON_Delete(img);

  char missing[128];
  snprintf(missing, sizeof missing, "bottle-test-missing-%s:none", run_id);
  CHECK_INT(docker_image_exists(D, missing), 0);
  cJSON *none = docker_image_inspect(D, missing);
  CHECK(none == NULL, "missing image inspected");
  cJSON_Delete(none);
  CHECK_INT(docker_status(D), 404);
  CHECK_STR(docker_code(D), "NOT_FOUND");

  char *id = docker_image_import(D, "/nonexistent/rootfs.tar", "bottle-test-busybox", "x", NULL);
  CHECK(id == NULL && contains(docker_errmsg(D), "image import: cannot open /nonexistent/rootfs.tar"), "%s",
        docker_errmsg(D));
  free(id);

  /* A bad Dockerfile change: the engine's words, and no image. */
  char tarball[300], tag[64];
  snprintf(tarball, sizeof tarball, "%s/rootfs.tar", workdir);
  snprintf(tag, sizeof tag, "%s-bad", run_id);
  const char *bad[] = {"BOGUS instruction", NULL};
  id = docker_image_import(D, tarball, "bottle-test-busybox", tag, bad);
  CHECK(id == NULL, "bad change accepted");
  CHECK(contains(docker_errmsg(D), "image import: ") && docker_status(D) >= 400, "%s (%d)", docker_errmsg(D),
        docker_status(D));
  printf("# bad change: %s\n", docker_errmsg(D));
  free(id);
}

static void test_ports_and_http(void) {
  need_image();
  char name[96], token[40];
  name_for(name, sizeof name, "http");
  random_hex(token, 16);
  char script[300];
  snprintf(script, sizeof script,
           "echo %s > /www/f.txt && httpd -p 9099 -h /www && exec httpd -f -p 8080 -h /www", token);
  const char *cmd[] = {"sh", "-c", script, NULL};
  struct docker_publish pub[] = {{8080, "127.0.0.1", 0}, {9099, NULL, 0}, {0, NULL, 0}};
  struct docker_container_spec s = {.name = name, .image = image_ref, .cmd = cmd, .labels = test_labels,
                                    .publish = pub};
  char *id = docker_container_create(D, &s);
  CHECK(id != NULL, "%s", docker_errmsg(D));
  if (!id) return;
  CHECK(docker_container_start(D, id) == 0, "%s", docker_errmsg(D));

  struct docker_port *ports = NULL;
  size_t n = 0;
  CHECK(docker_ports(D, id, &ports, &n) == 0, "%s", docker_errmsg(D));
  CHECK_INT(n, 2);
  int p8080 = 0, p9099 = 0;
  for (size_t i = 0; i < n; i++) {
    CHECK_STR(ports[i].host_ip, "127.0.0.1");
    CHECK(ports[i].host_port > 0, "host port %d", ports[i].host_port);
    if (ports[i].port == 8080) p8080 = ports[i].host_port;
    if (ports[i].port == 9099) p9099 = ports[i].host_port;
  }
  free(ports);
  CHECK(p8080 && p9099 && p8080 != p9099, "ports %d %d", p8080, p9099);
  char want[64];
  snprintf(want, sizeof want, "%s\n", token);
  struct fetched f;
  if (p9099) {
    CHECK(http_get(p9099, "/f.txt", &f) == 0, "GET through port %d failed", p9099);
    CHECK_STR(f.data, want);
  }
  if (p8080) {
    CHECK(http_get(p8080, "/f.txt", &f) == 0, "GET through port %d failed", p8080);
    CHECK_STR(f.data, want);
  }
  drop_container(id);
}

static void test_exec(void) {
  need_image();
  char name[96];
  name_for(name, sizeof name, "exec");
  const char *cmd[] = {"sleep", "600", NULL};
  char *id = make_container(name, cmd, 1);
  if (!id) return;
  struct docker_output o;

  const char *cat_err[] = {"sh", "-c", "cat; echo oops >&2; exit 3", NULL};
  struct docker_exec_spec e1 = {.cmd = cat_err, .input = "hello\nworld\n", .input_len = 12};
  CHECK(docker_exec(D, id, &e1, &o) == 0, "%s", docker_errmsg(D));
  CHECK_INT(o.code, 3);
  CHECK_STR(o.out, "hello\nworld\n");
  CHECK_STR(o.err, "oops\n");
  docker_output_free(&o);

  const char *echo_env[] = {"sh", "-c", "echo $FOO-$BAR; pwd; id -u", NULL};
  struct docker_kv env[] = {{"FOO", "one"}, {"BAR", "two words"}, {NULL, NULL}};
  struct docker_exec_spec e2 = {.cmd = echo_env, .env = env, .user = "1234", .workdir = "/tmp"};
  CHECK(docker_exec(D, id, &e2, &o) == 0, "%s", docker_errmsg(D));
  CHECK_INT(o.code, 0);
  CHECK_STR(o.out, "one-two words\n/tmp\n1234\n");
  CHECK_STR(o.err, "");
  docker_output_free(&o);

  /* Empty stdin: attached and closed at once. */
  const char *cat[] = {"cat", NULL};
  struct docker_exec_spec e3 = {.cmd = cat, .input = "", .input_len = 0};
  CHECK(docker_exec(D, id, &e3, &o) == 0, "%s", docker_errmsg(D));
  CHECK_INT(o.code, 0);
  CHECK_INT(o.out_len, 0);
  docker_output_free(&o);

  /* Megabytes both ways: stdin is written while output is read. */
  size_t big_len = 3u << 20;
  char *big = malloc(big_len);
  for (size_t i = 0; i < big_len; i++) big[i] = (char)('a' + i % 23);
  struct docker_exec_spec e4 = {.cmd = cat, .input = big, .input_len = big_len};
  CHECK(docker_exec(D, id, &e4, &o) == 0, "%s", docker_errmsg(D));
  CHECK_INT(o.out_len, big_len);
  CHECK(o.out && memcmp(o.out, big, o.out_len < big_len ? o.out_len : big_len) == 0, "big stdin echoed");
  docker_output_free(&o);
  free(big);

  const char *slow[] = {"sleep", "5", NULL};
  struct docker_exec_spec e5 = {.cmd = slow, .timeout_ms = 500};
  long long t0 = now_ms();
  CHECK_INT(docker_exec(D, id, &e5, &o), -1);
  CHECK(now_ms() - t0 < 3000, "timeout took %lld ms", now_ms() - t0);
  CHECK(contains(docker_errmsg(D), "exec: timed out after 500 ms"), "%s", docker_errmsg(D));
  CHECK_INT(docker_status(D), 0);
  CHECK_STR(docker_code(D), "TIMEOUT");

  interrupt_at = now_ms() + 300;
  struct docker_exec_spec e6 = {.cmd = slow};
  t0 = now_ms();
  CHECK_INT(docker_exec(D, id, &e6, &o), -1);
  interrupt_at = 0;
  CHECK(docker_interrupted(D), "interrupted flag: %s", docker_errmsg(D));
  CHECK(now_ms() - t0 < 2000, "interrupt took %lld ms", now_ms() - t0);

  const char *missing[] = {"/no/such/program", NULL};
  struct docker_exec_spec e7 = {.cmd = missing};
  int rc = docker_exec(D, id, &e7, &o);
  /* The engine reports a missing program either as an error or as exit 126/127. */
  CHECK(rc == -1 ? contains(docker_errmsg(D), "exec: ") : (o.code == 126 || o.code == 127), "rc %d code %d: %s", rc,
        o.code, docker_errmsg(D));
  if (rc == 0) docker_output_free(&o);

  drop_container(id);
  struct docker_exec_spec e8 = {.cmd = cat};
  CHECK_INT(docker_exec(D, name, &e8, &o), -1);
  CHECK_INT(docker_status(D), 404);
  CHECK_STR(docker_code(D), "NOT_FOUND");
  CHECK(contains(docker_errmsg(D), "exec: No such container"), "%s", docker_errmsg(D));
}

#ifdef __linux__
/* Returns how many /proc/<pid>/cmdline contain `needle` (NULs kept). */
static int cmdlines_containing(const char *needle, size_t nlen) {
  DIR *dir = opendir("/proc");
  if (!dir) return -1;
  int hits = 0;
  struct dirent *de;
  while ((de = readdir(dir))) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
    size_t len;
    char *c = read_file(path, &len);
    if (c && len >= nlen && memmem(c, len, needle, nlen)) hits++;
    free(c);
  }
  closedir(dir);
  return hits;
}
#endif

static void test_env_not_on_cmdline(void) {
#ifndef __linux__
  SKIP("needs /proc");
#else
  need_image();
  char name[96], secret[80], hex[40], marker[32];
  name_for(name, sizeof name, "env");
  random_hex(hex, 16);
  snprintf(secret, sizeof secret, "bottle-secret-%s", hex);
  snprintf(marker, sizeof marker, "%u%u%u", 1 + random_byte() % 9, random_byte(), random_byte());
  const char *cmd[] = {"sleep", marker, NULL};
  struct docker_kv env[] = {{"BOTTLE_TEST_SECRET", secret}, {NULL, NULL}};
  struct docker_container_spec s = {.name = name, .image = image_ref, .cmd = cmd, .env = env, .labels = test_labels};
  char *id = docker_container_create(D, &s);
  CHECK(id != NULL, "%s", docker_errmsg(D));
  if (!id) return;
  CHECK(docker_container_start(D, id) == 0, "%s", docker_errmsg(D));

  /* The container's `sleep <marker>` shows the scan sees its processes. */
  char sleep_arg[64];
  int n = snprintf(sleep_arg, sizeof sleep_arg, "sleep%c%s", '\0', marker);
  int seen = 0;
  for (int i = 0; i < 50 && seen <= 0; i++) {
    seen = cmdlines_containing(sleep_arg, (size_t)n + 1);
    if (seen <= 0) usleep(100000);
  }
  CHECK(seen > 0, "the container's process is not visible in /proc");
  CHECK_INT(cmdlines_containing(secret, strlen(secret)), 0);

  cJSON *info = docker_container_inspect(D, id);
  CHECK(info != NULL, "%s", docker_errmsg(D));
  char want[128];
  snprintf(want, sizeof want, "BOTTLE_TEST_SECRET=%s", secret);
  CHECK(array_has_string(path_get(info, "Config", "Env", NULL), want), "env passed at create");
  cJSON_Delete(info);
  drop_container(id);
#endif
}

/* With trace logging each call is one line naming method and path; the body
 * (env values) never appears. */
static void test_trace_hides_body(void) {
  need_image();
  char logpath[300], name[96], secret[48];
  snprintf(logpath, sizeof logpath, "%s/trace.log", workdir);
  name_for(name, sizeof name, "trace");
  random_hex(secret, 16);
  fflush(stderr);
  int saved = dup(2);
  int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, 2);
  close(fd);
  enum log_level level = log_get_level();
  log_set_level(LOG_TRACE);
  struct docker_kv env[] = {{"TRACE_SECRET", secret}, {NULL, NULL}};
  const char *cmd[] = {"sh", "-c", "cat", NULL};
  struct docker_container_spec s = {.name = name, .image = image_ref, .cmd = cmd, .env = env, .labels = test_labels,
                                    .open_stdin = 1};
  char *id = docker_container_create(D, &s);
  int started = id && docker_container_start(D, id) == 0;
  struct docker_exec_spec e = {.cmd = cmd, .env = env, .input = secret, .input_len = strlen(secret)};
  struct docker_output o = {0};
  int exec_rc = started ? docker_exec(D, id, &e, &o) : -1;
  log_set_level(level);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  CHECK(id != NULL && started, "%s", docker_errmsg(D));
  CHECK(exec_rc == 0 && o.out && strcmp(o.out, secret) == 0, "exec: %s", docker_errmsg(D));
  docker_output_free(&o);

  char *log = read_file(logpath, NULL);
  const char *shown = log ? log : "(no trace file)";
  char want[160];
  snprintf(want, sizeof want, "docker POST /v1.");
  CHECK(contains(log, want), "trace: %s", shown);
  snprintf(want, sizeof want, "/containers/create?name=%s\n", name);
  CHECK(contains(log, want), "trace: %s", shown);
  CHECK(contains(log, "/start\n") && contains(log, "/exec/"), "trace: %s", shown);
  CHECK(!contains(log, secret), "the secret is in the trace");
  free(log);
  drop_container(id);
}

static void test_conflict(void) {
  need_image();
  char name[96];
  name_for(name, sizeof name, "dup");
  const char *cmd[] = {"true", NULL};
  char *id = make_container(name, cmd, 0);
  struct docker_container_spec s = {.name = name, .image = image_ref, .cmd = cmd, .labels = test_labels};
  char *id2 = docker_container_create(D, &s);
  CHECK(id2 == NULL, "duplicate name accepted");
  free(id2);
  CHECK_INT(docker_status(D), 409);
  CHECK_STR(docker_code(D), "CONFLICT");
  char want[200];
  snprintf(want, sizeof want, "container create: Conflict. The container name \"/%s\" is already in use", name);
  CHECK(strncmp(docker_errmsg(D), want, strlen(want)) == 0, "%s", docker_errmsg(D));
  drop_container(id);

  /* A missing image is the engine's message too. */
  struct docker_container_spec m = {.image = "bottle-test-missing-image:none", .labels = test_labels};
  char *id3 = docker_container_create(D, &m);
  CHECK(id3 == NULL, "missing image accepted");
  free(id3);
  CHECK_INT(docker_status(D), 404);
  CHECK_STR(docker_code(D), "NOT_FOUND");
  CHECK(contains(docker_errmsg(D), "container create: No such image"), "%s", docker_errmsg(D));
}

static void test_missing_objects(void) {
  need_engine();
  char name[96];
  name_for(name, sizeof name, "missing");
  CHECK(docker_container_remove(D, name, 1, 1) == 0, "%s", docker_errmsg(D));
  CHECK(docker_container_stop(D, name, 1) == 0, "%s", docker_errmsg(D));
  CHECK(docker_network_remove(D, name) == 0, "%s", docker_errmsg(D));
  cJSON *j = docker_container_inspect(D, name);
  CHECK(j == NULL, "inspect of a missing container");
  cJSON_Delete(j);
  CHECK_INT(docker_status(D), 404);
  CHECK_STR(docker_code(D), "NOT_FOUND");
  CHECK(contains(docker_errmsg(D), "container inspect: No such container: "), "%s", docker_errmsg(D));
  CHECK_INT(docker_container_start(D, name), -1);
  CHECK_INT(docker_status(D), 404);
  CHECK_STR(docker_code(D), "NOT_FOUND");
  CHECK(contains(docker_errmsg(D), "container start: No such container"), "%s", docker_errmsg(D));
  struct docker_port *p;
  size_t n;
  CHECK_INT(docker_ports(D, name, &p, &n), -1);
  CHECK_INT(docker_status(D), 404);
  CHECK_STR(docker_code(D), "NOT_FOUND");
}

static void test_logs_and_wait(void) {
  need_image();
  char name[96];
  name_for(name, sizeof name, "logs");
  const char *cmd[] = {"sh", "-c", "echo err1 >&2; sleep 0.3; echo out1; echo out2; echo out3; exit 7", NULL};
  char *id = make_container(name, cmd, 1);
  if (!id) return;
  int code = -1;
  CHECK(docker_container_wait(D, id, 20000, &code) == 0, "%s", docker_errmsg(D));
  CHECK_INT(code, 7);
  struct docker_output o;
  CHECK(docker_container_logs(D, id, -1, &o) == 0, "%s", docker_errmsg(D));
  CHECK_STR(o.out, "out1\nout2\nout3\n");
  CHECK_STR(o.err, "err1\n");
  docker_output_free(&o);
  CHECK(docker_container_logs(D, id, 2, &o) == 0, "%s", docker_errmsg(D));
  CHECK_STR(o.out, "out2\nout3\n");
  CHECK_STR(o.err, "");
  docker_output_free(&o);
  drop_container(id);

  /* A TTY container has one stream: everything lands in stdout. */
  name_for(name, sizeof name, "tty");
  const char *tcmd[] = {"sh", "-c", "echo tty-out; echo tty-err >&2", NULL};
  struct docker_container_spec s = {.name = name, .image = image_ref, .cmd = tcmd, .labels = test_labels, .tty = 1};
  id = docker_container_create(D, &s);
  CHECK(id != NULL, "%s", docker_errmsg(D));
  if (!id) return;
  CHECK(docker_container_start(D, id) == 0, "%s", docker_errmsg(D));
  CHECK(docker_container_wait(D, id, 20000, &code) == 0 && code == 0, "%s", docker_errmsg(D));
  CHECK(docker_container_logs(D, id, -1, &o) == 0, "%s", docker_errmsg(D));
  CHECK(contains(o.out, "tty-out") && contains(o.out, "tty-err"), "tty out: %s", o.out);
  CHECK_STR(o.err, "");
  docker_output_free(&o);
  drop_container(id);

  name_for(name, sizeof name, "wait");
  const char *scmd[] = {"sleep", "60", NULL};
  id = make_container(name, scmd, 1);
  if (!id) return;
  long long t0 = now_ms();
  CHECK_INT(docker_container_wait(D, id, 400, &code), -1);
  CHECK(contains(docker_errmsg(D), "still running after 400 ms"), "%s", docker_errmsg(D));
  CHECK_STR(docker_code(D), "TIMEOUT");
  CHECK(now_ms() - t0 < 3000, "wait timeout took %lld ms", now_ms() - t0);
  interrupt_at = now_ms() + 300;
  t0 = now_ms();
  CHECK_INT(docker_container_wait(D, id, 0, &code), -1);
  interrupt_at = 0;
  CHECK(docker_interrupted(D), "not interrupted: %s", docker_errmsg(D));
  CHECK(now_ms() - t0 < 1500, "interrupt took %lld ms", now_ms() - t0);
  CHECK(docker_ping(D) == 0, "usable after an interrupt: %s", docker_errmsg(D));
  drop_container(id);
}

static void test_stop_timeout(void) {
  need_image();
  char name[96];
  name_for(name, sizeof name, "stop");
  /* sleep as PID 1 ignores SIGTERM, so stop waits the full grace period. */
  const char *cmd[] = {"sleep", "300", NULL};
  char *id = make_container(name, cmd, 1);
  if (!id) return;
  long long t0 = now_ms();
  CHECK(docker_container_stop(D, id, 2) == 0, "%s", docker_errmsg(D));
  long long took = now_ms() - t0;
  CHECK(took >= 1500 && took < 8000, "stop with t=2 took %lld ms", took);
  cJSON *info = docker_container_inspect(D, id);
  CHECK(info && cJSON_IsFalse(path_get(info, "State", "Running", NULL)), "still running");
  cJSON_Delete(info);
  CHECK(docker_container_stop(D, id, 2) == 0, "stop of a stopped container: %s", docker_errmsg(D));
  drop_container(id);
}

static void test_kill_signal(void) {
  need_image();
  char name[96];
  name_for(name, sizeof name, "kill");
  const char *cmd[] = {"sh", "-c", "trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.1; done", NULL};
  char *id = make_container(name, cmd, 1);
  if (!id) return;
  CHECK(docker_container_kill(D, id, "SIGHUP") == 0, "%s", docker_errmsg(D));
  int seen = 0;
  for (int i = 0; i < 50 && !seen; i++) {
    struct docker_output o;
    if (docker_container_logs(D, id, -1, &o) == 0) {
      seen = strstr(o.out, "got-hup") != NULL;
      docker_output_free(&o);
    }
    if (!seen) usleep(100000);
  }
  CHECK(seen, "the container did not get SIGHUP");
  cJSON *info = docker_container_inspect(D, id);
  CHECK(info && cJSON_IsTrue(path_get(info, "State", "Running", NULL)), "SIGHUP stopped it");
  cJSON_Delete(info);
  CHECK(docker_container_stop(D, id, 0) == 0, "%s", docker_errmsg(D));
  CHECK_INT(docker_container_kill(D, id, "SIGHUP"), -1);
  CHECK_INT(docker_status(D), 409);
  CHECK(contains(docker_errmsg(D), "container kill: "), "%s", docker_errmsg(D));
  drop_container(id);
}

static void test_networks_at_create(void) {
  need_image();
  char net_a[96], net_b[96], name[96];
  name_for(net_a, sizeof net_a, "neta");
  name_for(net_b, sizeof net_b, "netb");
  name_for(name, sizeof name, "multi");
  unsigned x = 0;
  char *ida = make_network(net_a, 0, &x);
  char *idb = make_network(net_b, 1, NULL);
  if (!ida || !idb) goto out;
  char ip[32];
  snprintf(ip, sizeof ip, "10.231.%u.10", x);
  const char *cmd[] = {"sleep", "600", NULL};
  const char *alpha[] = {"alpha", NULL}, *beta[] = {"beta", "gamma", NULL};
  struct docker_endpoint more[] = {{net_b, NULL, beta}, {NULL, NULL, NULL}};
  struct docker_container_spec s = {.name = name, .image = image_ref, .cmd = cmd, .labels = test_labels,
                                    .network = net_a, .ip = ip, .aliases = alpha, .networks = more};
  char *id = docker_container_create(D, &s);
  CHECK(id != NULL, "%s", docker_errmsg(D));
  if (id) {
    CHECK(docker_container_start(D, id) == 0, "%s", docker_errmsg(D));
    cJSON *info = docker_container_inspect(D, id);
    const cJSON *nets = path_get(info, "NetworkSettings", "Networks", NULL);
    CHECK_STR(cJSON_GetStringValue(path_get(nets, net_a, "IPAddress", NULL)), ip);
    CHECK(array_has_string(path_get(nets, net_a, "Aliases", NULL), "alpha"), "alias alpha");
    CHECK(array_has_string(path_get(nets, net_b, "Aliases", NULL), "beta"), "alias beta");
    CHECK(array_has_string(path_get(nets, net_b, "Aliases", NULL), "gamma"), "alias gamma");
    CHECK_STR(cJSON_GetStringValue(path_get(info, "HostConfig", "NetworkMode", NULL)), net_a);
    cJSON_Delete(info);
    drop_container(id);
  }

  /* Joining a missing network fails the create and leaves no container. */
  char bad_net[96], bad_name[96];
  name_for(bad_net, sizeof bad_net, "nonet");
  name_for(bad_name, sizeof bad_name, "orphan");
  struct docker_endpoint nowhere[] = {{bad_net, NULL, NULL}, {NULL, NULL, NULL}};
  struct docker_container_spec b = {.name = bad_name, .image = image_ref, .cmd = cmd, .labels = test_labels,
                                    .network = net_a, .networks = nowhere};
  char *bid = docker_container_create(D, &b);
  CHECK(bid == NULL, "create joined a missing network");
  free(bid);
  CHECK_INT(docker_status(D), 404);
  CHECK_STR(docker_code(D), "NOT_FOUND");
  CHECK(contains(docker_errmsg(D), "container create: ") && contains(docker_errmsg(D), bad_net), "%s",
        docker_errmsg(D));
  cJSON *orphan = docker_container_inspect(D, bad_name);
  CHECK(orphan == NULL && docker_status(D) == 404, "a container was left behind");
  cJSON_Delete(orphan);

  /* Refused while joining (aliases need a user-defined network): the
   * container made a moment before is removed again. */
  const char *x_alias[] = {"x", NULL};
  struct docker_endpoint refused[] = {{"bridge", NULL, x_alias}, {NULL, NULL, NULL}};
  b.networks = refused;
  bid = docker_container_create(D, &b);
  CHECK(bid == NULL, "create with an alias on the default bridge succeeded");
  free(bid);
  CHECK(contains(docker_errmsg(D), "container create: network-scoped alias") && docker_status(D) == 400,
        "%s (%d)", docker_errmsg(D), docker_status(D));
  CHECK_STR(docker_code(D), "BAD_REQUEST");
  orphan = docker_container_inspect(D, bad_name);
  CHECK(orphan == NULL && docker_status(D) == 404, "the half-made container was left behind");
  cJSON_Delete(orphan);

out:
  if (ida) CHECK(docker_network_remove(D, net_a) == 0, "%s", docker_errmsg(D));
  if (idb) CHECK(docker_network_remove(D, net_b) == 0, "%s", docker_errmsg(D));
  free(ida);
  free(idb);
}

static void test_binds_and_options(void) {
  need_image();
  char share[300], file[340], name[96];
  snprintf(share, sizeof share, "%s/share", workdir);
  mkdir(share, 0755);
  snprintf(file, sizeof file, "%s/data.txt", share);
  CHECK_INT(write_file(file, "bound\n", 6, 0644), 0);
  name_for(name, sizeof name, "opts");
  struct docker_bind binds[] = {{share, "/mnt/share", 1}, {NULL, NULL, 0}};
  const char *hosts[] = {"gate.test:10.1.2.3", NULL};
  const char *caps[] = {"NET_ADMIN", NULL};
  const char *entry[] = {"sh", "-c", NULL};
  const char *cmd[] = {"sleep 600", NULL};
  struct docker_container_spec s = {.name = name, .image = image_ref, .entrypoint = entry, .cmd = cmd,
                                    .labels = test_labels, .binds = binds, .extra_hosts = hosts,
                                    .cap_add = caps, .init = 1, .workdir = "/tmp", .user = "0:0"};
  char *id = docker_container_create(D, &s);
  CHECK(id != NULL, "%s", docker_errmsg(D));
  if (!id) return;
  CHECK(docker_container_start(D, id) == 0, "%s", docker_errmsg(D));
  struct docker_output o;
  const char *cat[] = {"cat", "/mnt/share/data.txt", NULL};
  struct docker_exec_spec e = {.cmd = cat};
  CHECK(docker_exec(D, id, &e, &o) == 0 && o.code == 0, "%s", docker_errmsg(D));
  CHECK_STR(o.out, "bound\n");
  docker_output_free(&o);
  const char *touch[] = {"touch", "/mnt/share/x", NULL};
  e.cmd = touch;
  CHECK(docker_exec(D, id, &e, &o) == 0, "%s", docker_errmsg(D));
  CHECK(o.code != 0 && contains(o.err, "Read-only"), "read-only bind: code %d, %s", o.code, o.err);
  docker_output_free(&o);
  const char *hostsf[] = {"grep", "gate.test", "/etc/hosts", NULL};
  e.cmd = hostsf;
  CHECK(docker_exec(D, id, &e, &o) == 0 && contains(o.out, "10.1.2.3"), "extra host: %s", o.out ? o.out : "");
  docker_output_free(&o);

  cJSON *info = docker_container_inspect(D, id);
  CHECK(cJSON_IsTrue(path_get(info, "HostConfig", "Init", NULL)), "init");
  CHECK(array_has_string(path_get(info, "HostConfig", "CapAdd", NULL), "NET_ADMIN"), "cap_add");
  CHECK_STR(cJSON_GetStringValue(path_get(info, "Config", "WorkingDir", NULL)), "/tmp");
  CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(path_get(info, "Config", "Entrypoint", NULL), 0)), "sh");
  cJSON_Delete(info);
  drop_container(id);

  /* A missing bind source is refused rather than created. */
  char nosrc[340];
  snprintf(nosrc, sizeof nosrc, "%s/absent", workdir);
  struct docker_bind bad[] = {{nosrc, "/mnt/x", 0}, {NULL, NULL, 0}};
  struct docker_container_spec m = {.image = image_ref, .cmd = cmd, .labels = test_labels, .binds = bad};
  char *mid = docker_container_create(D, &m);
  CHECK(mid == NULL, "missing bind source accepted");
  free(mid);
  CHECK(contains(docker_errmsg(D), "container create: ") && contains(docker_errmsg(D), nosrc), "%s",
        docker_errmsg(D));
  struct stat st;
  CHECK(stat(nosrc, &st) != 0, "the engine created the bind source");
}

static void test_list(void) {
  need_image();
  char name[96];
  name_for(name, sizeof name, "list");
  const char *cmd[] = {"true", NULL};
  char *id = make_container(name, cmd, 0);
  if (!id) return;
  cJSON *all = docker_container_list(D, test_labels, 1);
  CHECK(all != NULL, "%s", docker_errmsg(D));
  int found = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, all) {
    if (!array_has_string(cJSON_GetObjectItemCaseSensitive(c, "names"), name)) continue;
    found++;
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id")), id);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "state")), "created");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "image")), image_ref);
    CHECK_STR(cJSON_GetStringValue(path_get(c, "labels", "io.bottle.test", NULL)), run_id);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "created")) > 1e9, "created");
  }
  CHECK_INT(found, 1);
  cJSON_Delete(all);
  cJSON *running = docker_container_list(D, test_labels, 0);
  found = 0;
  cJSON_ArrayForEach(c, running) found += array_has_string(cJSON_GetObjectItemCaseSensitive(c, "names"), name);
  CHECK_INT(found, 0);
  cJSON_Delete(running);
  drop_container(id);
}

/* The rt.docker binding, driven by tests/c/docker-lua/lua/bottle/cli.lua inside
 * the real binary (which then stands in for bottle.cli). */
static void test_lua_binding(void) {
  need_image();
  const char *build = getenv("BUILD");
  char bottle[300];
  snprintf(bottle, sizeof bottle, "%s/bottle", build && *build ? build : "build");
  if (access(bottle, X_OK) != 0) SKIP("%s is not built", bottle);
  if (access("tests/c/docker-lua/lua/bottle/cli.lua", R_OK) != 0) SKIP("run from the source tree (tests/run does)");
  const char *argv[] = {bottle, "--lua-dir", "tests/c/docker-lua", image_ref, run_id, NULL};
  struct proc_result r;
  struct proc_spec s = {.argv = argv, .timeout_ms = 180000};
  proc_run(&s, &r);
  CHECK(r.status == PROC_EXITED && r.code == 0, "status %d code %d", (int)r.status, r.code);
  CHECK(contains(r.out, "lua binding: 0 failed"), "no summary line");
  if (tap_cur_failed) {
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n"))
      if (strncmp(line, "ok - ", 5) != 0) printf("#   %s\n", line);
    for (char *line = strtok(r.err, "\n"); line; line = strtok(NULL, "\n")) printf("#   stderr: %s\n", line);
  }
  proc_result_free(&r);
}

int main(void) {
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  random_hex(run_id, 8);
  test_labels[0].key = "io.bottle.test";
  test_labels[0].value = run_id;
  snprintf(image_ref, sizeof image_ref, "bottle-test-busybox:%s", run_id);
  snprintf(workdir, sizeof workdir, "/tmp/bottle-test-docker-%s", run_id);
  mkdir(workdir, 0700);

  const char *host = getenv("DOCKER_HOST");
  D = docker_new(test_pending_signal);
  if (!host || !*host) {
    snprintf(engine_skip, sizeof engine_skip, "DOCKER_HOST is not set (tests/run sets it when an engine answers)");
  } else if (docker_ping(D) < 0) {
    snprintf(engine_skip, sizeof engine_skip, "no Docker engine: %s", docker_errmsg(D));
  } else {
    build_image();
  }

  RUN(test_socket_selection);
  RUN(test_version);
  RUN(test_network_lifecycle);
  RUN(test_image);
  RUN(test_ports_and_http);
  RUN(test_exec);
  RUN(test_env_not_on_cmdline);
  RUN(test_trace_hides_body);
  RUN(test_conflict);
  RUN(test_missing_objects);
  RUN(test_logs_and_wait);
  RUN(test_stop_timeout);
  RUN(test_kill_signal);
  RUN(test_networks_at_create);
  RUN(test_binds_and_options);
  RUN(test_list);
  RUN(test_lua_binding);

  sweep();
  docker_free(D);
  const char *rm[] = {"rm", "-rf", workdir, NULL};
  struct proc_result r;
  run(rm, &r);
  proc_result_free(&r);
  curl_global_cleanup();
  return tap_done();
}
