/* run.c: bottle-init's process supervision.
 *
 * Every daemon runs in its own process group (so a `sh -c` wrapper and what
 * it starts receive signals together) with stdout and stderr on pipes that
 * one poll() loop reads and prefixes. Signals reach the loop through a
 * self-pipe; the handlers do nothing else. SIGTERM/SIGINT are forwarded to
 * every daemon, then after the grace period whatever is left is SIGKILLed;
 * SIGHUP goes to egress and pipelock only (both reload their config on it:
 * egress its routes, pipelock its YAML, which its file watcher would miss
 * behind a single-file bind mount; git daemon would die of it). Every child that exits is reaped, including orphans that the
 * kernel re-parents to us as PID 1 (or as a subreaper when we are not). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "init.h"

struct daemon_proc {
  int idx;
  const char *name;
  pid_t pid;      /* > 0 while running */
  pid_t pgid;     /* its process group, kept after it is reaped */
  int fds[2];     /* read ends of its stdout and stderr; -1 once closed */
  struct linebuf lb[2];
  char prefix[32];
};

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;
  if (write(sig_pipe[1], &b, 1) < 0) { /* full pipe: the loop wakes anyway */
  }
  errno = saved;
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "[bottle-init] ");
  va_list ap;
  va_start(ap, fmt);
  /* One byte stays free for the newline. */
  vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = strlen(buf);
  buf[len++] = '\n';
  write_all(2, buf, len);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_flags(int fd, int nonblock) {
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return -1;
  if (nonblock) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
  }
  return 0;
}

static int make_pipe(int p[2], int nonblock_read) {
  if (pipe(p) < 0) return -1;
  if (set_flags(p[0], nonblock_read) < 0 || set_flags(p[1], 0) < 0) {
    close(p[0]);
    close(p[1]);
    return -1;
  }
  return 0;
}

/* A PID 1 may start with 0, 1 or 2 closed; pipes must not land there. */
static void ensure_std_fds(void) {
  for (int fd = 0; fd < 3; fd++) {
    if (fcntl(fd, F_GETFD) >= 0) continue;
    int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (n >= 0 && n != fd) {
      dup2(n, fd);
      close(n);
    }
  }
}

static void describe_status(int st, char *out, size_t outsz) {
  if (WIFEXITED(st))
    snprintf(out, outsz, "exited with status %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    snprintf(out, outsz, "killed by signal %d", WTERMSIG(st));
  else
    snprintf(out, outsz, "ended (wait status %d)", st);
}

static int spawn_daemon(struct daemon_proc *d, char *const *envp, char *const *caller_env) {
  struct init_cmd cmd;
  init_daemon_cmd(d->idx, caller_env, &cmd);
  int out[2], err[2];
  if (make_pipe(out, 1) < 0) return -1;
  if (make_pipe(err, 1) < 0) {
    close(out[0]);
    close(out[1]);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  int reset[] = {SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP};
  for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) sigaddset(&dflt, reset[i]);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dflt);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                    POSIX_SPAWN_SETPGROUP);
  pid_t pid;
  int rc = posix_spawnp(&pid, cmd.argv[0], &fa, &at, (char *const *)cmd.argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(out[0]);
    close(err[0]);
    say("cannot start %s (%s): %s", d->name, cmd.overridden ? "override command" : cmd.argv[0],
        strerror(rc));
    return -1;
  }
  d->pid = d->pgid = pid;
  d->fds[0] = out[0];
  d->fds[1] = err[0];
  say("started %s (pid %d)%s", d->name, (int)pid,
      cmd.overridden ? " from its BOTTLE_INIT_*_CMD override" : "");
  return 0;
}

static void pump(struct daemon_proc *d, int s) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(d->fds[s], buf, sizeof buf);
    if (n > 0) {
      linebuf_feed(&d->lb[s], s + 1, d->prefix, buf, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    /* EOF or a read error: the stream is over. */
    linebuf_flush(&d->lb[s], s + 1, d->prefix);
    close(d->fds[s]);
    d->fds[s] = -1;
    return;
  }
}

/* The daemon has been reaped: print what it left in its pipes, then let go
 * of them even if a stray grandchild still holds the write ends. */
static void finish_streams(struct daemon_proc *d) {
  for (int s = 0; s < 2; s++) {
    if (d->fds[s] < 0) continue;
    pump(d, s);
    if (d->fds[s] < 0) continue;
    linebuf_flush(&d->lb[s], s + 1, d->prefix);
    close(d->fds[s]);
    d->fds[s] = -1;
  }
}

static void signal_group(struct daemon_proc *d, int sig) {
  if (d->pgid <= 0) return;
  if (kill(-d->pgid, sig) < 0 && d->pid > 0) kill(d->pid, sig);
}

static const char *sig_name(int sig) {
  switch (sig) {
  case SIGTERM: return "SIGTERM";
  case SIGINT: return "SIGINT";
  case SIGHUP: return "SIGHUP";
  default: return "signal";
  }
}

static int grace_from_env(char *const *envp) {
  for (; envp && *envp; envp++) {
    if (strncmp(*envp, "BOTTLE_INIT_GRACE_MS=", 21) != 0) continue;
    char *end;
    long v = strtol(*envp + 21, &end, 10);
    if (*end || end == *envp + 21 || v < 0 || v > 600000) {
      say("ignoring BOTTLE_INIT_GRACE_MS (not a number of milliseconds in 0..600000)");
      return INIT_GRACE_MS;
    }
    return (int)v;
  }
  return INIT_GRACE_MS;
}

static int install_handlers(void) {
  if (make_pipe(sig_pipe, 1) < 0) return -1;
  int fl = fcntl(sig_pipe[1], F_GETFL);
  if (fl < 0 || fcntl(sig_pipe[1], F_SETFL, fl | O_NONBLOCK) < 0) return -1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (sigaction(sigs[i], &sa, NULL) < 0) return -1;
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static void restore_handlers(void) {
  int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
  for (int i = 0; i < 2; i++) {
    if (sig_pipe[i] >= 0) close(sig_pipe[i]);
    sig_pipe[i] = -1;
  }
}

static void usage(void) {
  static const char msg[] =
      "usage: bottle-init\n"
      "       bottle-init ready [--timeout-ms N] NAME[:PORT]...\n"
      "       bottle-init relay [--owner UID:GID] [PATH=HOST:PORT...]\n"
      "Starts the daemons named in BOTTLE_SIDECAR_DAEMONS (egress, pipelock, git-gate,\n"
      "supervise, relay); BOTTLE_INIT_<NAME>_CMD replaces one's command with a /bin/sh -c\n"
      "string. `ready` waits until the named daemons accept connections on 127.0.0.1.\n"
      "`relay` serves the guest's unix sockets (routes from BOTTLE_RELAY_ROUTES).\n";
  write_all(2, msg, sizeof msg - 1);
}

/* The running set: every daemon and where the shutdown stands. */
struct supervisor {
  struct daemon_proc ds[INIT_DAEMON_COUNT];
  int count, running, failed;
  int grace_ms;
  int stop_sig, killed; /* the first SIGTERM/SIGINT; SIGKILL sent */
  char *const *envp;    /* for the exit markers */
  int marks;            /* leave `<name>.exited` markers for `ready` */
  long long deadline;   /* of the grace period, once stopping */
};

static void start_all(struct supervisor *sv, const int *order, const struct init_env *env) {
  for (int i = 0; i < sv->count; i++) {
    struct daemon_proc *d = &sv->ds[i];
    d->idx = order[i];
    d->name = init_daemon_names[order[i]];
    d->fds[0] = d->fds[1] = -1;
    snprintf(d->prefix, sizeof d->prefix, "[%s] ", d->name);
    /* The egress copy keeps EGRESS_TOKEN_*; overrides are read from it too. */
    char *const *denv = d->idx == 0 ? env->egress : env->others;
    if (spawn_daemon(d, denv, env->egress) == 0) {
      sv->running++;
    } else {
      sv->failed = 1;
      if (sv->marks) init_mark_exited(sv->envp, d->name, "could not be started");
    }
  }
}

static int reloads_on_hup(int idx) {
  return strcmp(init_daemon_names[idx], "egress") == 0 || strcmp(init_daemon_names[idx], "pipelock") == 0;
}

static void on_init_signal(struct supervisor *sv, int sig) {
  if (sig == SIGHUP) {
    for (int i = 0; i < sv->count; i++)
      if (reloads_on_hup(sv->ds[i].idx) && sv->ds[i].pid > 0) {
        say("forwarding SIGHUP to %s", init_daemon_names[sv->ds[i].idx]);
        signal_group(&sv->ds[i], SIGHUP);
      }
  } else if ((sig == SIGTERM || sig == SIGINT) && !sv->stop_sig) {
    sv->stop_sig = sig;
    sv->deadline = now_ms() + sv->grace_ms;
    say("received %s: stopping daemons (grace %d ms)", sig_name(sig), sv->grace_ms);
    for (int i = 0; i < sv->count; i++)
      if (sv->ds[i].pid > 0) signal_group(&sv->ds[i], sig);
  } else if ((sig == SIGTERM || sig == SIGINT) && !sv->killed) {
    sv->deadline = now_ms(); /* asked twice: do not wait out the grace */
  }
}

/* Waits for output or a signal and handles what came. -1 when poll failed. */
static int wait_events(struct supervisor *sv) {
  struct pollfd pfd[1 + 2 * INIT_DAEMON_COUNT];
  struct {
    struct daemon_proc *d;
    int s;
  } who[1 + 2 * INIT_DAEMON_COUNT];
  int np = 0;
  pfd[np].fd = sig_pipe[0];
  pfd[np].events = POLLIN;
  who[np].d = NULL;
  np++;
  for (int i = 0; i < sv->count; i++)
    for (int s = 0; s < 2; s++)
      if (sv->ds[i].fds[s] >= 0) {
        pfd[np].fd = sv->ds[i].fds[s];
        pfd[np].events = POLLIN;
        who[np].d = &sv->ds[i];
        who[np].s = s;
        np++;
      }
  int timeout = -1;
  if (sv->stop_sig && !sv->killed) {
    long long left = sv->deadline - now_ms();
    timeout = left < 0 ? 0 : (int)left;
  }
  int r = poll(pfd, (nfds_t)np, timeout);
  if (r < 0 && errno != EINTR) {
    say("poll failed: %s", strerror(errno));
    return -1;
  }
  if (r <= 0) return 0;
  for (int k = 1; k < np; k++)
    if (pfd[k].revents && who[k].d->fds[who[k].s] == pfd[k].fd) pump(who[k].d, who[k].s);
  if (pfd[0].revents & POLLIN) {
    unsigned char sigs[64];
    ssize_t n;
    while ((n = read(sig_pipe[0], sigs, sizeof sigs)) > 0)
      for (ssize_t k = 0; k < n; k++) on_init_signal(sv, sigs[k]);
  }
  return 0;
}

/* Reaps on every pass: SIGCHLD signals coalesce, and orphans count too. */
static void reap(struct supervisor *sv) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (int i = 0; i < sv->count; i++) {
      struct daemon_proc *d = &sv->ds[i];
      if (d->pid != pid) continue;
      d->pid = 0;
      sv->running--;
      finish_streams(d);
      char what[64];
      describe_status(st, what, sizeof what);
      say("%s %s", d->name, what);
      if (sv->marks) init_mark_exited(sv->envp, d->name, what);
      if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) sv->failed = 1;
    }
  }
}

static void kill_after_grace(struct supervisor *sv) {
  if (!sv->stop_sig || sv->killed || now_ms() < sv->deadline) return;
  sv->killed = 1;
  for (int i = 0; i < sv->count; i++)
    if (sv->ds[i].pid > 0) {
      say("%s still running after the grace period: sending SIGKILL", sv->ds[i].name);
      signal_group(&sv->ds[i], SIGKILL);
    }
}

static void release_all(struct supervisor *sv) {
  if (sv->stop_sig && getpid() == 1) {
    /* What a daemon left behind in its process group goes too. Only as PID
     * 1, where every process group in sight is ours: elsewhere a reaped
     * leader's group ID could by now belong to a stranger. */
    for (int i = 0; i < sv->count; i++) signal_group(&sv->ds[i], SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
  }
  for (int i = 0; i < sv->count; i++) {
    finish_streams(&sv->ds[i]);
    linebuf_free(&sv->ds[i].lb[0]);
    linebuf_free(&sv->ds[i].lb[1]);
  }
}

int init_main(int argc, char **argv, char **envp) {
  if (argc > 1 && strcmp(argv[1], "relay") == 0) return init_relay(argc - 2, argv + 2, envp);
  if (argc > 1 && strcmp(argv[1], "ready") == 0) return init_ready_main(argc - 1, argv + 1, envp);
  if (argc > 1) {
    usage();
    return 2;
  }
  ensure_std_fds();

  const char *list = NULL;
  for (char **e = envp; e && *e; e++)
    if (strncmp(*e, "BOTTLE_SIDECAR_DAEMONS=", 23) == 0) list = *e + 23;
  struct supervisor sv;
  memset(&sv, 0, sizeof sv);
  int order[INIT_DAEMON_COUNT];
  char err[256];
  if (init_parse_daemons(list, order, &sv.count, err, sizeof err) < 0) {
    say("%s", err);
    return 2;
  }
  sv.grace_ms = grace_from_env(envp);

  struct init_env env;
  if (init_env_split(envp, &env) < 0) {
    say("out of memory");
    return 1;
  }
  init_env_wipe_tokens(envp);

#ifdef __linux__
  /* Outside a PID namespace, become the reaper of our orphans anyway so
   * bottle-init behaves (and can be tested) the same way. */
  if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#endif
  if (install_handlers() < 0) {
    say("cannot set up signal handling: %s", strerror(errno));
    init_env_free(&env);
    restore_handlers();
    return 1;
  }

  /* Exit markers for `bottle-init ready`: as PID 1 (the bundle), or where
   * the caller asked for them; never in a stranger's /run otherwise. */
  sv.envp = envp;
  sv.marks = getpid() == 1;
  for (char **e = envp; e && *e; e++)
    if (strncmp(*e, "BOTTLE_INIT_STATE_DIR=", 22) == 0) sv.marks = 1;
  if (sv.marks) init_state_reset(envp);

  start_all(&sv, order, &env);
  while (sv.running > 0) {
    if (wait_events(&sv) < 0) break;
    reap(&sv);
    kill_after_grace(&sv);
  }
  release_all(&sv);
  init_env_free(&env);
  restore_handlers();
  if (sv.stop_sig) return 128 + sv.stop_sig;
  return sv.failed ? 1 : 0;
}
