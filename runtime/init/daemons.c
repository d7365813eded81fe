/* daemons.c: what bottle-init runs and with which environment.
 *
 * The daemon names, their canonical start order and default commands are
 * the contract in docs/bundle.md. Token slots (EGRESS_TOKEN_*) are handed to
 * egress only; every other daemon gets an environment without them, and the
 * values are wiped from our own environment block because unsetenv() only
 * edits the environ array, not the bytes /proc/<pid>/environ reads. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"

const char *const init_daemon_names[INIT_DAEMON_COUNT] = {"egress", "pipelock", "git-gate",
                                                          "supervise", "relay"};

static const char *const default_argv[INIT_DAEMON_COUNT][8] = {
    {"/opt/bottle/egress/run", NULL},
    {"pipelock", "run", "--config", "/etc/pipelock.yaml", "--listen", "0.0.0.0:8888", NULL},
    {"/bin/sh", "/etc/bottle/git-gate/entrypoint.sh", NULL},
    {"/opt/bottle/supervise/run", NULL},
    {"bottle-init", "relay", NULL},
};

static const char token_prefix[] = "EGRESS_TOKEN_";

static int lookup(const char *name, size_t len) {
  for (int i = 0; i < INIT_DAEMON_COUNT; i++)
    if (strlen(init_daemon_names[i]) == len && memcmp(init_daemon_names[i], name, len) == 0)
      return i;
  return -1;
}

int init_parse_daemons(const char *list, int order[INIT_DAEMON_COUNT], int *count, char *err,
                       size_t errsz) {
  int wanted[INIT_DAEMON_COUNT] = {0};
  const char *p = list ? list : "";
  *count = 0;
  while (*p) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *a = p, *b = end;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if (b > a) {
      int idx = lookup(a, (size_t)(b - a));
      if (idx < 0) {
        snprintf(err, errsz,
                 "unknown daemon '%.*s' in BOTTLE_SIDECAR_DAEMONS (known: egress, pipelock, "
                 "git-gate, supervise, relay)",
                 (int)(b - a > 64 ? 64 : b - a), a);
        return -1;
      }
      wanted[idx] = 1;
    }
    p = *end ? end + 1 : end;
  }
  for (int i = 0; i < INIT_DAEMON_COUNT; i++)
    if (wanted[i]) order[(*count)++] = i;
  if (*count == 0) {
    snprintf(err, errsz,
             "BOTTLE_SIDECAR_DAEMONS names no daemon (known: egress, pipelock, git-gate, "
             "supervise, relay)");
    return -1;
  }
  return 0;
}

int init_override_var(const char *name, char *out, size_t outsz) {
  int n = snprintf(out, outsz, "BOTTLE_INIT_%s_CMD", name);
  if (n < 0 || (size_t)n >= outsz) return -1;
  for (char *c = out + strlen("BOTTLE_INIT_"); *c; c++) {
    if (*c == '-')
      *c = '_';
    else
      *c = (char)toupper((unsigned char)*c);
  }
  return 0;
}

static const char *env_lookup(char *const *envp, const char *name) {
  size_t n = strlen(name);
  for (; envp && *envp; envp++)
    if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=') return *envp + n + 1;
  return NULL;
}

void init_daemon_cmd(int idx, char *const *envp, struct init_cmd *cmd) {
  memset(cmd, 0, sizeof *cmd);
  char var[64];
  const char *over = NULL;
  if (init_override_var(init_daemon_names[idx], var, sizeof var) == 0)
    over = env_lookup(envp, var);
  if (over && *over) {
    cmd->argv[0] = "/bin/sh";
    cmd->argv[1] = "-c";
    cmd->argv[2] = over;
    cmd->overridden = 1;
    return;
  }
  for (int i = 0; default_argv[idx][i]; i++) cmd->argv[i] = default_argv[idx][i];
}

int init_is_token_entry(const char *entry) {
  return strncmp(entry, token_prefix, sizeof token_prefix - 1) == 0 && strchr(entry, '=') != NULL;
}

static void free_vec(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) {
    /* Entries may be token values: do not leave them in freed memory. */
    memset(*p, 0, strlen(*p));
    free(*p);
  }
  free(v);
}

int init_env_split(char *const *envp, struct init_env *env) {
  size_t n = 0;
  while (envp && envp[n]) n++;
  env->egress = calloc(n + 1, sizeof *env->egress);
  env->others = calloc(n + 1, sizeof *env->others);
  if (!env->egress || !env->others) goto oom;
  size_t ne = 0, no = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(env->egress[ne] = strdup(envp[i]))) goto oom;
    ne++;
    if (init_is_token_entry(envp[i])) continue;
    if (!(env->others[no] = strdup(envp[i]))) goto oom;
    no++;
  }
  return 0;
oom:
  init_env_free(env);
  return -1;
}

void init_env_free(struct init_env *env) {
  free_vec(env->egress);
  free_vec(env->others);
  env->egress = env->others = NULL;
}

int init_env_wipe_tokens(char **envp) {
  int wiped = 0;
  for (; envp && *envp; envp++) {
    if (!init_is_token_entry(*envp)) continue;
    char *value = strchr(*envp, '=') + 1;
    /* Volatile so the stores are not optimised away as dead. */
    volatile char *v = value;
    size_t len = strlen(value);
    for (size_t i = 0; i < len; i++) v[i] = '\0';
    wiped++;
  }
  return wiped;
}
