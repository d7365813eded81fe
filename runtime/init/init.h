/* init.h: bottle-init, the sidecar bundle's PID 1 (plain C, no Lua).
 *
 * daemons.c owns what runs: the daemon table (names in canonical start
 * order, default commands, BOTTLE_INIT_<NAME>_CMD overrides), parsing of
 * BOTTLE_SIDECAR_DAEMONS, and the environment split that keeps
 * EGRESS_TOKEN_* for egress alone and wipes the values from our own
 * environment block. ready.c owns the `ready` mode bottle checks the
 * daemons with. prefix.c owns the `[name] ` line prefixing of daemon
 * output. run.c owns the process side: spawning, the poll loop, signal
 * forwarding, the grace period, reaping. main.c only calls init_main(). */
#ifndef BOTTLE_INIT_H
#define BOTTLE_INIT_H

#include <stddef.h>

#include "util.h" /* write_all */

enum { INIT_DAEMON_COUNT = 5 };

/* Canonical order: egress, pipelock, git-gate, supervise, relay (the
 * guest's sockets, started last so the daemons it forwards to start first). */
extern const char *const init_daemon_names[INIT_DAEMON_COUNT];

/* Parses a comma separated daemon list (spaces trimmed, empty items ignored,
 * duplicates collapsed). On success fills order[] with table indices in
 * canonical order, stores their number in *count and returns 0. On an
 * unknown name or an empty list writes a one-line message to err and
 * returns -1. */
int init_parse_daemons(const char *list, int order[INIT_DAEMON_COUNT], int *count, char *err,
                       size_t errsz);

/* "git-gate" -> "BOTTLE_INIT_GIT_GATE_CMD". Returns 0, or -1 if it does not fit. */
int init_override_var(const char *name, char *out, size_t outsz);

/* The argv that starts daemon idx: the `/bin/sh -c` override when envp
 * holds a non-empty BOTTLE_INIT_<NAME>_CMD, else the built-in command.
 * Points into static storage or into envp's strings; valid while they are. */
struct init_cmd {
  const char *argv[8];
  int overridden;
};
void init_daemon_cmd(int idx, char *const *envp, struct init_cmd *cmd);

/* True for an EGRESS_TOKEN_* entry ("NAME=value"). */
int init_is_token_entry(const char *entry);

/* Two private, NULL-terminated copies of envp: `egress` keeps everything,
 * `others` lacks every EGRESS_TOKEN_* entry. Returns 0, or -1 on OOM. */
struct init_env {
  char **egress;
  char **others;
};
int init_env_split(char *const *envp, struct init_env *env);
void init_env_free(struct init_env *env);

/* Overwrites, in place, the value bytes of every EGRESS_TOKEN_* string in
 * envp (the process's original block, which /proc/<pid>/environ shows).
 * Returns how many values were wiped. */
int init_env_wipe_tokens(char **envp);

/* Accumulates one daemon stream and writes it out line by line, each line
 * as a single write of "<prefix><line>\n". A line longer than
 * PREFIX_LINE_MAX is cut there. */
enum { PREFIX_LINE_MAX = 64 * 1024 };
struct linebuf {
  struct buf b; /* the pending partial line */
};
void linebuf_feed(struct linebuf *lb, int fd, const char *prefix, const char *data, size_t n);
/* Writes a pending partial line (with a newline added). */
void linebuf_flush(struct linebuf *lb, int fd, const char *prefix);
void linebuf_free(struct linebuf *lb);

/* The TCP port daemon idx listens on inside the bundle: EGRESS_PORT,
 * GIT_GATE_PORT, SUPERVISE_PORT from envp when set, else 9099, 8888, 9418,
 * 9100. -1 for a bad idx. */
int init_daemon_port(int idx, char *const *envp);

/* Where bottle-init as PID 1 leaves one `<name>.exited` file per daemon
 * that ended (holding "exited with status N" or "killed by signal N"), so
 * `ready` fails at once for a daemon that is gone: $BOTTLE_INIT_STATE_DIR,
 * default INIT_STATE_DIR. */
#define INIT_STATE_DIR "/run/bottle-init"
const char *init_state_dir(char *const *envp);
/* Creates the state dir and removes markers a previous run left. */
void init_state_reset(char *const *envp);
void init_mark_exited(char *const *envp, const char *name, const char *what);

/* `bottle-init ready [--timeout-ms N] NAME[:PORT]...` (argv[0] is "ready"):
 * waits, within one deadline (default 30 s), until 127.0.0.1:<port> of each
 * named daemon accepts a TCP connection. Returns 0 (one line on stdout
 * naming them), 1 naming on stdout the first that never accepted, 2 on bad
 * arguments. ready.c. */
int init_ready_main(int argc, char **argv, char **envp);

/* Default grace period between the forwarded signal and SIGKILL. */
enum { INIT_GRACE_MS = 8000 };

/* `bottle-init relay [ARGS]`: relay.h's relay_main with ARGS, or with the
 * routes and owner from BOTTLE_RELAY_ROUTES / BOTTLE_RELAY_OWNER in envp
 * when there are none (relay_mode.c). Returns the exit status. */
int init_relay(int argc, char **argv, char *const *envp);

/* The whole program: reads BOTTLE_SIDECAR_DAEMONS and the overrides from
 * envp, starts the daemons and supervises them until they are all gone.
 * envp must be the process's own environment (it is wiped in place).
 * Returns the exit status: 0 when every daemon exited 0, 1 otherwise, 2 on
 * bad input, 128+N after a shutdown by signal N. */
int init_main(int argc, char **argv, char **envp);

#endif
