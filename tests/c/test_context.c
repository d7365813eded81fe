/* Unit tests for the engine socket's resolution from Docker contexts
 * (docker_http.c): DOCKER_HOST, else DOCKER_CONTEXT, else currentContext
 * in config.json, each context's endpoint read from the CLI's store. No
 * engine needed: only docker_socket() is asked. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docker.h"
#include "tap.h"

static char dir[256];

/* sha256("colima") and sha256("my ctx"), as the CLI's store names them. */
#define COLIMA_ID "f24fd3749c1368328e2b149bec149cb6795619f244c5b584e844961215dadd16"
#define MYCTX_ID "7dc32fcde6f5d4ed24a0b5709cca2382ed18f3d476abe19cd1355094c086edd8"

static void write_file(const char *rel, const char *text) {
  char path[512], sub[512];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  /* mkdir -p of the parents */
  for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
    snprintf(sub, sizeof sub, "%.*s", (int)(p - path), path);
    mkdir(sub, 0700);
  }
  FILE *f = fopen(path, "w");
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static void meta(const char *id, const char *name, const char *host) {
  char rel[256], text[1024];
  snprintf(rel, sizeof rel, "cfg/contexts/meta/%s/meta.json", id);
  snprintf(text, sizeof text,
           "{\"Name\":\"%s\",\"Metadata\":{\"Description\":\"test\"},"
           "\"Endpoints\":{\"docker\":{\"Host\":\"%s\",\"SkipTLSVerify\":false}}}",
           name, host);
  write_file(rel, text);
}

/* docker_socket() of a fresh handle, or the error as "ERR <code>: <msg>". */
static const char *resolve(void) {
  static char out[1024];
  struct docker *d = docker_new(NULL);
  const char *s = docker_socket(d);
  if (s) snprintf(out, sizeof out, "%s", s);
  else snprintf(out, sizeof out, "ERR %s: %s", docker_code(d), docker_errmsg(d));
  docker_free(d);
  return out;
}

static void setup(void) {
  char cfg[300];
  snprintf(cfg, sizeof cfg, "%s/cfg", dir);
  unsetenv("DOCKER_HOST");
  unsetenv("DOCKER_CONTEXT");
  setenv("DOCKER_CONFIG", cfg, 1);
  write_file("cfg/config.json", "{\"auths\":{},\"currentContext\":\"colima\"}");
  meta(COLIMA_ID, "colima", "unix:///tmp/bottle-test/colima/docker.sock");
  meta(MYCTX_ID, "my ctx", "unix:///tmp/bottle-test/other.sock");
}

static void test_current_context(void) {
  setup();
  CHECK_STR(resolve(), "/tmp/bottle-test/colima/docker.sock");
}

static void test_docker_context_wins_over_config(void) {
  setup();
  setenv("DOCKER_CONTEXT", "my ctx", 1);
  CHECK_STR(resolve(), "/tmp/bottle-test/other.sock");
}

static void test_docker_host_wins_over_contexts(void) {
  setup();
  setenv("DOCKER_CONTEXT", "my ctx", 1);
  setenv("DOCKER_HOST", "unix:///tmp/bottle-test/host.sock", 1);
  CHECK_STR(resolve(), "/tmp/bottle-test/host.sock");
}

/* "default", or no context at all: the default sockets. */
static void test_default_context(void) {
  struct stat st;
  const char *want = "/var/run/docker.sock";
  char desktop[512];
  snprintf(desktop, sizeof desktop, "%s/.docker/run/docker.sock", getenv("HOME") ? getenv("HOME") : "");
  if (stat(want, &st) != 0 && getenv("HOME") && stat(desktop, &st) == 0) want = desktop;
  setup();
  setenv("DOCKER_CONTEXT", "default", 1);
  CHECK_STR(resolve(), want);
  unsetenv("DOCKER_CONTEXT");
  write_file("cfg/config.json", "{\"auths\":{}}");
  CHECK_STR(resolve(), want);
  /* a config.json that does not parse is skipped, as the CLI only warns */
  write_file("cfg/config.json", "{\"currentContext\": ");
  CHECK_STR(resolve(), want);
}

static void test_home_docker_without_docker_config(void) {
  setup();
  char home[300];
  snprintf(home, sizeof home, "%s/home", dir);
  const char *saved = getenv("HOME");
  char *keep = saved ? strdup(saved) : NULL;
  setenv("HOME", home, 1);
  unsetenv("DOCKER_CONFIG");
  write_file("home/.docker/config.json", "{\"currentContext\":\"colima\"}");
  write_file("home/.docker/contexts/meta/" COLIMA_ID "/meta.json",
             "{\"Name\":\"colima\",\"Endpoints\":{\"docker\":{\"Host\":\"unix:///tmp/bottle-test/home.sock\"}}}");
  CHECK_STR(resolve(), "/tmp/bottle-test/home.sock");
  if (keep) setenv("HOME", keep, 1);
  free(keep);
}

static void test_missing_context_is_an_error(void) {
  setup();
  setenv("DOCKER_CONTEXT", "nope", 1);
  const char *got = resolve();
  static const char want[] = "ERR ENOENT: docker: Docker context 'nope' (from DOCKER_CONTEXT) not found: cannot read ";
  CHECK(strncmp(got, want, sizeof want - 1) == 0, "%s", got);
  unsetenv("DOCKER_CONTEXT");
  write_file("cfg/config.json", "{\"currentContext\":\"gone\"}");
  got = resolve();
  CHECK(strstr(got, "Docker context 'gone' (from currentContext in config.json) not found") != NULL, "%s", got);
}

static void test_tcp_context_is_refused(void) {
  setup();
  meta(COLIMA_ID, "colima", "tcp://10.0.0.1:2376");
  const char *got = resolve();
  CHECK(strstr(got, "ERR EINVAL: ") == got, "%s", got);
  CHECK(strstr(got, "Docker context 'colima' (from currentContext in config.json) uses tcp://: only unix:// "
                    "sockets are supported") != NULL,
        "%s", got);
}

static void test_context_without_docker_endpoint(void) {
  setup();
  write_file("cfg/contexts/meta/" COLIMA_ID "/meta.json", "{\"Name\":\"colima\",\"Endpoints\":{}}");
  const char *got = resolve();
  CHECK(strstr(got, "ERR EINVAL: ") == got && strstr(got, "Docker context 'colima' (from currentContext in "
                                                          "config.json) has no docker endpoint"),
        "%s", got);
  write_file("cfg/contexts/meta/" COLIMA_ID "/meta.json", "{\"Name\":");
  got = resolve();
  CHECK(strstr(got, "ERR EINVAL: ") == got && strstr(got, "is not valid JSON"), "%s", got);
}

int main(void) {
  snprintf(dir, sizeof dir, "%s/context-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_current_context);
  RUN(test_docker_context_wins_over_config);
  RUN(test_docker_host_wins_over_contexts);
  RUN(test_default_context);
  RUN(test_home_docker_without_docker_config);
  RUN(test_missing_context_is_an_error);
  RUN(test_tcp_context_is_refused);
  RUN(test_context_without_docker_endpoint);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
  return tap_done();
}
