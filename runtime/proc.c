/* proc.c: see proc.h. */
#ifdef __linux__
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np */
#endif
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

#define DEFAULT_MAX_OUTPUT ((size_t)64 << 20)
#define STOP_GRACE_MS 2000      /* SIGTERM to SIGKILL for an interrupted child */
#define INTERACTIVE_WAIT_MS 2000 /* let a terminal signal reach the child first */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int proc_decode_status(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return -1;
}

static const char *env_lookup(const char *const *envp, const char *name) {
  size_t n = strlen(name);
  for (; envp && *envp; envp++)
    if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=') return *envp + n + 1;
  return NULL;
}

static int is_executable_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int proc_resolve(const char *prog, const char *const *envp, char *out, size_t outsz) {
  if (!prog || !*prog) {
    errno = ENOENT;
    return -1;
  }
  if (strchr(prog, '/')) {
    if (!is_executable_file(prog)) {
      if (errno != EACCES) errno = ENOENT;
      return -1;
    }
    if (strlen(prog) >= outsz) {
      errno = ENAMETOOLONG;
      return -1;
    }
    strcpy(out, prog);
    return 0;
  }
  const char *path = envp ? env_lookup(envp, "PATH") : NULL;
  if (!path) path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    const char *colon = strchr(path, ':');
    size_t dlen = colon ? (size_t)(colon - path) : strlen(path);
    const char *dir = dlen ? path : ".";
    if (dlen == 0) dlen = 1;
    if (dlen + 1 + strlen(prog) < outsz) {
      memcpy(out, dir, dlen);
      out[dlen] = '/';
      strcpy(out + dlen + 1, prog);
      if (is_executable_file(out)) return 0;
    }
    if (!colon) break;
    path = colon + 1;
  }
  errno = ENOENT;
  return -1;
}

static int set_cloexec_nonblock(int fd, int nonblock) {
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) return -1;
  if (nonblock) {
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
  }
  return 0;
}

static int make_pipe(int p[2]) {
  if (pipe(p) < 0) return -1;
  if (set_cloexec_nonblock(p[0], 0) < 0 || set_cloexec_nonblock(p[1], 0) < 0) {
    close(p[0]);
    close(p[1]);
    return -1;
  }
  return 0;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Sends sig to the child's process group (or just the child when it shares
 * ours). */
static void signal_child(pid_t pid, int own_group, int sig) {
  if (own_group) kill(-pid, sig);
  else kill(pid, sig);
}

/* Waits up to ms for pid; returns 1 and fills *wstatus when it exited. */
static int wait_for(pid_t pid, int *wstatus, int ms) {
  long long until = now_ms() + ms;
  int delay = 1;
  for (;;) {
    pid_t r = waitpid(pid, wstatus, WNOHANG);
    if (r == pid) return 1;
    if (r < 0 && errno != EINTR) return 1; /* already reaped elsewhere */
    if (ms >= 0 && now_ms() >= until) return 0;
    poll(NULL, 0, delay);
    if (delay < 50) delay *= 2;
  }
}

/* Reads what fd has now (all of it when `all`, else one chunk) into b;
 * closes fd at end of stream. */
static void drain(int *fd, struct buf *b, int all) {
  char chunk[16384];
  do {
    ssize_t r = read(*fd, chunk, sizeof chunk);
    if (r > 0) {
      buf_addn(b, chunk, (size_t)r);
    } else {
      if (r == 0 || (errno != EAGAIN && errno != EINTR)) close_fd(fd);
      return;
    }
  } while (all);
}

/* One run's child and its pipes ([0] read end, [1] write end). */
struct child {
  int in_p[2], out_p[2], err_p[2];
  struct buf out, err;
  pid_t pid;
  size_t in_off;
  int wstatus, exited;
};

void proc_spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, int own_group) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  /* Belt and braces: descriptors opened without O_CLOEXEC elsewhere in the
   * process (Lua's io library) must not leak into children. */
  posix_spawn_file_actions_addclosefrom_np(fa, 3);
#endif
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  if (own_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(attr, 0);
  }
#ifdef POSIX_SPAWN_CLOEXEC_DEFAULT
  flags |= POSIX_SPAWN_CLOEXEC_DEFAULT; /* macOS: same effect as closefrom */
  if (!own_group) {
    posix_spawn_file_actions_addinherit_np(fa, 0);
    posix_spawn_file_actions_addinherit_np(fa, 1);
    posix_spawn_file_actions_addinherit_np(fa, 2);
  }
#endif
  posix_spawnattr_setflags(attr, flags);
  sigset_t none, deflt;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(attr, &none);
  sigemptyset(&deflt);
  sigaddset(&deflt, SIGPIPE);
  sigaddset(&deflt, SIGINT);
  sigaddset(&deflt, SIGTERM);
  sigaddset(&deflt, SIGHUP);
  sigaddset(&deflt, SIGQUIT);
  sigaddset(&deflt, SIGCHLD);
  posix_spawnattr_setsigdefault(attr, &deflt);
}

/* Spawns the child with its streams wired and a clean signal state. 0, or
 * -1 with *error set. */
static int spawn_child(const struct proc_spec *spec, const char *path, const char *const *envp, struct child *c,
                       int *error) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);

  int ok = 1;
  if (!spec->interactive) {
    if (make_pipe(c->out_p) < 0 || make_pipe(c->err_p) < 0 || (spec->input && make_pipe(c->in_p) < 0)) ok = 0;
    if (ok && spec->input) posix_spawn_file_actions_adddup2(&fa, c->in_p[0], 0);
    else if (ok) posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (ok) {
      posix_spawn_file_actions_adddup2(&fa, c->out_p[1], 1);
      posix_spawn_file_actions_adddup2(&fa, c->err_p[1], 2);
    }
  }
  if (ok) proc_spawn_setup(&fa, &attr, !spec->interactive);

  int rc = ok ? posix_spawn(&c->pid, path, &fa, &attr, (char *const *)spec->argv, (char *const *)envp) : errno;
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close_fd(&c->in_p[0]);
  close_fd(&c->out_p[1]);
  close_fd(&c->err_p[1]);
  if (!ok || rc != 0) {
    *error = ok ? rc : errno;
    return -1;
  }
  return 0;
}

/* Waits up to `wait` ms for the pipes, then feeds stdin and collects what
 * the child wrote. With no pipe open it only sleeps. */
static void pump_pipes(const struct proc_spec *spec, struct child *c, int wait) {
  struct pollfd pfd[3];
  int n = 0, io = -1, oo = -1, eo = -1;
  if (c->in_p[1] >= 0) { pfd[n].fd = c->in_p[1]; pfd[n].events = POLLOUT; io = n++; }
  if (c->out_p[0] >= 0) { pfd[n].fd = c->out_p[0]; pfd[n].events = POLLIN; oo = n++; }
  if (c->err_p[0] >= 0) { pfd[n].fd = c->err_p[0]; pfd[n].events = POLLIN; eo = n++; }
  int pr = poll(n ? pfd : NULL, (nfds_t)n, wait);
  if (pr <= 0) return; /* timeout or EINTR: the caller re-checks */
  if (io >= 0 && pfd[io].revents) {
    if (pfd[io].revents & (POLLERR | POLLHUP)) {
      close_fd(&c->in_p[1]); /* the child stopped reading */
    } else {
      ssize_t w = write(c->in_p[1], spec->input + c->in_off, spec->input_len - c->in_off);
      if (w > 0) c->in_off += (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR) close_fd(&c->in_p[1]);
      if (c->in_off >= spec->input_len) close_fd(&c->in_p[1]);
    }
  }
  if (oo >= 0 && pfd[oo].revents) drain(&c->out_p[0], &c->out, 0);
  if (eo >= 0 && pfd[eo].revents) drain(&c->err_p[0], &c->err, 0);
}

/* Feeds stdin and collects output until the child exits, a signal is
 * pending or the deadline passes (res->status says which). Output still in
 * the pipes is drained afterwards; a grandchild that keeps them open (a
 * daemon started in the background) does not hold us up. */
static void supervise(const struct proc_spec *spec, struct child *c, struct proc_result *res) {
  long long deadline = spec->timeout_ms > 0 ? now_ms() + spec->timeout_ms : 0;
  if (c->in_p[1] >= 0) {
    set_cloexec_nonblock(c->in_p[1], 1);
    if (spec->input_len == 0) close_fd(&c->in_p[1]);
  }
  if (c->out_p[0] >= 0) set_cloexec_nonblock(c->out_p[0], 1);
  if (c->err_p[0] >= 0) set_cloexec_nonblock(c->err_p[0], 1);

  int delay = 1;
  while (!c->exited) {
    int sig = spec->pending_signal ? spec->pending_signal() : 0;
    if (sig) {
      res->status = PROC_INTERRUPTED;
      res->signal = sig;
      break;
    }
    if (deadline && now_ms() >= deadline) {
      res->status = PROC_TIMEOUT;
      break;
    }
    pid_t r = waitpid(c->pid, &c->wstatus, WNOHANG);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
      c->exited = 1;
      break;
    }
    /* With open pipes poll wakes on output; otherwise (interactive, or the
     * child closed its streams) back off gently while it runs. */
    int any = c->in_p[1] >= 0 || c->out_p[0] >= 0 || c->err_p[0] >= 0;
    int wait = any ? 100 : delay;
    if (!any && delay < 50) delay *= 2;
    if (deadline) {
      long long left = deadline - now_ms();
      if (left < wait) wait = left > 0 ? (int)left : 0;
    }
    pump_pipes(spec, c, wait);
  }
  close_fd(&c->in_p[1]);
}

/* After a timeout or a signal: stops the child (and its group), then reaps
 * it and drains what is left in the pipes. */
static void finish_child(const struct proc_spec *spec, struct child *c, struct proc_result *res) {
  int own_group = !spec->interactive;
  if (res->status == PROC_TIMEOUT) {
    signal_child(c->pid, own_group, SIGKILL);
  } else if (res->status == PROC_INTERRUPTED) {
    if (spec->interactive) {
      /* A terminal ^C already reached the child; give it a moment to end on
       * its own before forwarding (a kill(1) to bottle never reaches it). */
      if (!wait_for(c->pid, &c->wstatus, INTERACTIVE_WAIT_MS)) {
        kill(c->pid, res->signal);
        if (!wait_for(c->pid, &c->wstatus, STOP_GRACE_MS)) kill(c->pid, SIGKILL);
        else c->exited = 1;
      } else {
        c->exited = 1;
      }
    } else {
      signal_child(c->pid, 1, SIGTERM);
      if (!wait_for(c->pid, &c->wstatus, STOP_GRACE_MS)) signal_child(c->pid, 1, SIGKILL);
      else c->exited = 1;
    }
  }
  if (!c->exited) wait_for(c->pid, &c->wstatus, -1);
  if (c->out_p[0] >= 0) drain(&c->out_p[0], &c->out, 1);
  if (c->err_p[0] >= 0) drain(&c->err_p[0], &c->err, 1);
  /* Grandchildren that outlived the child still belong to its group. */
  if (own_group && res->status != PROC_EXITED) kill(-c->pid, SIGKILL);
  res->code = proc_decode_status(c->wstatus);
}

int proc_run(const struct proc_spec *spec, struct proc_result *res) {
  memset(res, 0, sizeof *res);
  res->code = -1;
  res->pid = -1;
  struct child c = {.in_p = {-1, -1}, .out_p = {-1, -1}, .err_p = {-1, -1}, .pid = -1};
  c.out.max = c.err.max = spec->max_output ? spec->max_output : DEFAULT_MAX_OUTPUT;
  const char *const *envp = spec->envp ? spec->envp : (const char *const *)environ;

  char path[PATH_MAX];
  if (proc_resolve(spec->argv[0], envp, path, sizeof path) < 0) {
    res->status = PROC_NOT_FOUND;
    res->error = errno;
  } else if (spawn_child(spec, path, envp, &c, &res->error) < 0) {
    res->status = PROC_SPAWN_FAILED;
  } else {
    res->pid = c.pid;
    supervise(spec, &c, res);
    finish_child(spec, &c, res);
  }
  for (int i = 0; i < 2; i++) {
    close_fd(&c.in_p[i]);
    close_fd(&c.out_p[i]);
    close_fd(&c.err_p[i]);
  }
  res->truncated = c.out.truncated || c.err.truncated;
  res->out = buf_take(&c.out, &res->out_len);
  res->err = buf_take(&c.err, &res->err_len);
  return res->status == PROC_EXITED ? 0 : -1;
}

void proc_result_free(struct proc_result *res) {
  free(res->out);
  free(res->err);
  res->out = res->err = NULL;
}
