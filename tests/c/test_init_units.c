/* Unit tests for bottle-init's pure parts (runtime/init/): the daemon list,
 * the commands, the environment split and wipe, the line prefixer. The
 * process side is in test_init_run.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "init.h"
#include "tap.h"

extern char **environ;

static void test_parse_trims_dedups_and_orders(void) {
  int order[INIT_DAEMON_COUNT], n = -1;
  char err[256] = "";
  CHECK_INT(init_parse_daemons(" supervise, egress ,,egress,git-gate , ", order, &n, err, sizeof err), 0);
  CHECK_INT(n, 3);
  CHECK_STR(init_daemon_names[order[0]], "egress");
  CHECK_STR(init_daemon_names[order[1]], "git-gate");
  CHECK_STR(init_daemon_names[order[2]], "supervise");
  CHECK_INT(init_parse_daemons("pipelock,egress,supervise,git-gate", order, &n, err, sizeof err), 0);
  CHECK_INT(n, 4);
  for (int i = 0; i < 4; i++) CHECK_INT(order[i], i);
}

static void test_parse_rejects_unknown_and_empty(void) {
  int order[INIT_DAEMON_COUNT], n;
  char err[256] = "";
  CHECK_INT(init_parse_daemons("egress, gitgate", order, &n, err, sizeof err), -1);
  CHECK(strstr(err, "'gitgate'") != NULL, "%s", err);
  CHECK(strstr(err, "egress, pipelock, git-gate, supervise") != NULL, "%s", err);
  err[0] = '\0';
  CHECK_INT(init_parse_daemons(" , ,", order, &n, err, sizeof err), -1);
  CHECK(strstr(err, "no daemon") != NULL, "%s", err);
  CHECK_INT(init_parse_daemons(NULL, order, &n, err, sizeof err), -1);
  /* A name is matched whole, never as a prefix. */
  CHECK_INT(init_parse_daemons("egres", order, &n, err, sizeof err), -1);
}

static void test_override_var_names(void) {
  char v[64];
  CHECK_INT(init_override_var("git-gate", v, sizeof v), 0);
  CHECK_STR(v, "BOTTLE_INIT_GIT_GATE_CMD");
  CHECK_INT(init_override_var("egress", v, sizeof v), 0);
  CHECK_STR(v, "BOTTLE_INIT_EGRESS_CMD");
  CHECK_INT(init_override_var("supervise", v, 10), -1);
}

static void join_argv(const struct init_cmd *c, char *out, size_t n) {
  out[0] = '\0';
  for (int i = 0; c->argv[i]; i++) {
    if (i) strncat(out, " ", n - strlen(out) - 1);
    strncat(out, c->argv[i], n - strlen(out) - 1);
  }
}

static void test_default_and_override_commands(void) {
  char *envp[] = {"PATH=/bin", "BOTTLE_INIT_GIT_GATE_CMD=echo hi; sleep 1", "BOTTLE_INIT_EGRESS_CMD=",
                  NULL};
  struct init_cmd c;
  char s[256];
  init_daemon_cmd(0, envp, &c);
  join_argv(&c, s, sizeof s);
  CHECK_STR(s, "/opt/bottle/egress/run"); /* an empty override is no override */
  init_daemon_cmd(1, envp, &c);
  join_argv(&c, s, sizeof s);
  CHECK_STR(s, "pipelock run --config /etc/pipelock.yaml --listen 0.0.0.0:8888");
  init_daemon_cmd(2, envp, &c);
  CHECK_INT(c.overridden, 1);
  CHECK_STR(c.argv[0], "/bin/sh");
  CHECK_STR(c.argv[1], "-c");
  CHECK_STR(c.argv[2], "echo hi; sleep 1");
  CHECK(c.argv[3] == NULL, "argv not terminated");
  init_daemon_cmd(3, envp, &c);
  join_argv(&c, s, sizeof s);
  CHECK_STR(s, "/opt/bottle/supervise/run");
  char *none[] = {NULL};
  init_daemon_cmd(2, none, &c);
  join_argv(&c, s, sizeof s);
  CHECK_STR(s, "/bin/sh /etc/bottle/git-gate/entrypoint.sh");
}

static int vec_has(char **v, const char *s) {
  for (; v && *v; v++)
    if (strcmp(*v, s) == 0) return 1;
  return 0;
}

static void test_env_split_and_wipe(void) {
  char t0[] = "EGRESS_TOKEN_0=abc123", t1[] = "EGRESS_TOKEN_12=", other[] = "EGRESS_PORT=9099",
       path[] = "PATH=/bin";
  char *envp[] = {path, t0, other, t1, NULL};
  struct init_env env;
  CHECK_INT(init_env_split(envp, &env), 0);
  CHECK(vec_has(env.egress, "EGRESS_TOKEN_0=abc123"), "egress lacks the token");
  CHECK(vec_has(env.egress, "EGRESS_TOKEN_12="), "egress lacks the empty slot");
  CHECK(vec_has(env.egress, "PATH=/bin") && vec_has(env.egress, "EGRESS_PORT=9099"), "egress env");
  CHECK(!vec_has(env.others, "EGRESS_TOKEN_0=abc123"), "others got the token");
  CHECK(!vec_has(env.others, "EGRESS_TOKEN_12="), "others got a slot");
  CHECK(vec_has(env.others, "PATH=/bin") && vec_has(env.others, "EGRESS_PORT=9099"), "others env");
  CHECK_INT(init_env_wipe_tokens(envp), 2);
  CHECK(memcmp(t0, "EGRESS_TOKEN_0=\0\0\0\0\0\0", sizeof t0) == 0, "value not wiped in place");
  CHECK_STR(path, "PATH=/bin");
  CHECK_STR(other, "EGRESS_PORT=9099");
  /* The copies survive the wipe of the originals. */
  CHECK(vec_has(env.egress, "EGRESS_TOKEN_0=abc123"), "copy was wiped too");
  init_env_free(&env);
}

static char *slurp_fd(int fd) {
  lseek(fd, 0, SEEK_SET);
  static char buf[8192];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  buf[n < 0 ? 0 : n] = '\0';
  return buf;
}

static void test_linebuf_prefixes_whole_lines(void) {
  char tmpl[] = "/tmp/bottle-init-test-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) SKIP("mkstemp: %s", strerror(errno));
  unlink(tmpl);
  struct linebuf lb = {0};
  linebuf_feed(&lb, fd, "[x] ", "one\ntw", 6);
  linebuf_feed(&lb, fd, "[x] ", "o\n\nthr", 6);
  CHECK_STR(slurp_fd(fd), "[x] one\n[x] two\n[x] \n");
  lseek(fd, 0, SEEK_END);
  linebuf_flush(&lb, fd, "[x] ");
  CHECK_STR(slurp_fd(fd), "[x] one\n[x] two\n[x] \n[x] thr\n");
  linebuf_free(&lb);
  close(fd);
}

static void test_linebuf_cuts_endless_lines(void) {
  char tmpl[] = "/tmp/bottle-init-test-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) SKIP("mkstemp: %s", strerror(errno));
  unlink(tmpl);
  size_t n = PREFIX_LINE_MAX + 10;
  char *big = malloc(n);
  memset(big, 'a', n);
  struct linebuf lb = {0};
  linebuf_feed(&lb, fd, "[y] ", big, n);
  linebuf_feed(&lb, fd, "[y] ", "\n", 1);
  free(big);
  linebuf_free(&lb);
  off_t size = lseek(fd, 0, SEEK_END);
  CHECK_INT(size, 2 * 4 + PREFIX_LINE_MAX + 10 + 2);
  char head[5] = {0}, mid[6] = {0};
  CHECK_INT(pread(fd, head, 4, 0), 4);
  CHECK_STR(head, "[y] ");
  CHECK_INT(pread(fd, mid, 5, 4 + PREFIX_LINE_MAX), 5);
  CHECK_STR(mid, "\n[y] ");
  close(fd);
}

static void test_rejects_arguments(void) {
  const char *argv[] = {"bottle-init", "--frobnicate", NULL};
  int fd = dup(2);
  int devnull = open("/dev/null", O_WRONLY);
  dup2(devnull, 2);
  int rc = init_main(2, (char **)argv, environ);
  dup2(fd, 2);
  close(fd);
  close(devnull);
  CHECK_INT(rc, 2);
}

int main(void) {
  RUN(test_parse_trims_dedups_and_orders);
  RUN(test_parse_rejects_unknown_and_empty);
  RUN(test_override_var_names);
  RUN(test_default_and_override_commands);
  RUN(test_env_split_and_wipe);
  RUN(test_linebuf_prefixes_whole_lines);
  RUN(test_linebuf_cuts_endless_lines);
  RUN(test_rejects_arguments);
  return tap_done();
}
