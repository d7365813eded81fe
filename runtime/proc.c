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

int proc_run(const struct proc_spec *spec, struct proc_result *res) {
  memset(res, 0, sizeof *res);
  res->code = -1;
  res->pid = -1;
  struct buf out = {0}, err = {0};
  out.max = err.max = spec->max_output ? spec->max_output : DEFAULT_MAX_OUTPUT;
  int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
  const char *const *envp = spec->envp ? spec->envp : (const char *const *)environ;

  char path[PATH_MAX];
  if (proc_resolve(spec->argv[0], envp, path, sizeof path) < 0) {
    res->status = PROC_NOT_FOUND;
    res->error = errno;
    goto finish;
  }

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);

  int ok = 1;
  if (!spec->interactive) {
    if (make_pipe(out_p) < 0 || make_pipe(err_p) < 0 || (spec->input && make_pipe(in_p) < 0)) ok = 0;
    if (ok && spec->input) posix_spawn_file_actions_adddup2(&fa, in_p[0], 0);
    else if (ok) posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (ok) {
      posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
      posix_spawn_file_actions_adddup2(&fa, err_p[1], 2);
    }
  }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  /* Belt and braces: descriptors opened without O_CLOEXEC elsewhere in the
   * process (Lua's io library) must not leak into children. */
  if (ok) posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif

  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  if (!spec->interactive) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
#ifdef POSIX_SPAWN_CLOEXEC_DEFAULT
  flags |= POSIX_SPAWN_CLOEXEC_DEFAULT; /* macOS: same effect as closefrom */
  if (spec->interactive) {
    posix_spawn_file_actions_addinherit_np(&fa, 0);
    posix_spawn_file_actions_addinherit_np(&fa, 1);
    posix_spawn_file_actions_addinherit_np(&fa, 2);
  }
#endif
  posix_spawnattr_setflags(&attr, flags);
  sigset_t none, deflt;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&deflt);
  sigaddset(&deflt, SIGPIPE);
  sigaddset(&deflt, SIGINT);
  sigaddset(&deflt, SIGTERM);
  sigaddset(&deflt, SIGHUP);
  sigaddset(&deflt, SIGQUIT);
  sigaddset(&deflt, SIGCHLD);
  posix_spawnattr_setsigdefault(&attr, &deflt);

  pid_t pid = -1;
  int rc = ok ? posix_spawn(&pid, path, &fa, &attr, (char *const *)spec->argv, (char *const *)envp) : errno;
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close_fd(&in_p[0]);
  close_fd(&out_p[1]);
  close_fd(&err_p[1]);
  if (!ok || rc != 0) {
    res->status = PROC_SPAWN_FAILED;
    res->error = ok ? rc : errno;
    goto finish;
  }
  res->pid = pid;

  long long deadline = spec->timeout_ms > 0 ? now_ms() + spec->timeout_ms : 0;
  int own_group = !spec->interactive;
  int wstatus = 0, exited = 0;
  size_t in_off = 0;

  if (in_p[1] >= 0) {
    set_cloexec_nonblock(in_p[1], 1);
    if (spec->input_len == 0) close_fd(&in_p[1]);
  }
  if (out_p[0] >= 0) set_cloexec_nonblock(out_p[0], 1);
  if (err_p[0] >= 0) set_cloexec_nonblock(err_p[0], 1);

  /* Feed stdin and collect output until the child exits. Output still in
   * the pipes is drained afterwards; a grandchild that keeps them open
   * (a daemon started in the background) does not hold us up. */
  int delay = 1;
  while (!exited) {
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
    pid_t r = waitpid(pid, &wstatus, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      exited = 1;
      break;
    }
    struct pollfd pfd[3];
    int n = 0, io = -1, oo = -1, eo = -1;
    if (in_p[1] >= 0) { pfd[n].fd = in_p[1]; pfd[n].events = POLLOUT; io = n++; }
    if (out_p[0] >= 0) { pfd[n].fd = out_p[0]; pfd[n].events = POLLIN; oo = n++; }
    if (err_p[0] >= 0) { pfd[n].fd = err_p[0]; pfd[n].events = POLLIN; eo = n++; }
    /* With open pipes poll wakes on output; otherwise (interactive, or the
     * child closed its streams) back off gently while it runs. */
    int wait = n ? 100 : delay;
    if (!n && delay < 50) delay *= 2;
    if (deadline) {
      long long left = deadline - now_ms();
      if (left < wait) wait = left > 0 ? (int)left : 0;
    }
    int pr = poll(n ? pfd : NULL, (nfds_t)n, wait);
    if (pr <= 0) continue; /* timeout or EINTR: re-check signal, deadline, exit */
    if (io >= 0 && pfd[io].revents) {
      if (pfd[io].revents & (POLLERR | POLLHUP)) {
        close_fd(&in_p[1]); /* the child stopped reading */
      } else {
        ssize_t w = write(in_p[1], spec->input + in_off, spec->input_len - in_off);
        if (w > 0) in_off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR) close_fd(&in_p[1]);
        if (in_off >= spec->input_len) close_fd(&in_p[1]);
      }
    }
    if (oo >= 0 && pfd[oo].revents) drain(&out_p[0], &out, 0);
    if (eo >= 0 && pfd[eo].revents) drain(&err_p[0], &err, 0);
  }
  close_fd(&in_p[1]);

  if (res->status == PROC_TIMEOUT) {
    signal_child(pid, own_group, SIGKILL);
  } else if (res->status == PROC_INTERRUPTED) {
    if (spec->interactive) {
      /* A terminal ^C already reached the child; give it a moment to end on
       * its own before forwarding (a kill(1) to bottle never reaches it). */
      if (!wait_for(pid, &wstatus, INTERACTIVE_WAIT_MS)) {
        kill(pid, res->signal);
        if (!wait_for(pid, &wstatus, STOP_GRACE_MS)) kill(pid, SIGKILL);
        else exited = 1;
      } else {
        exited = 1;
      }
    } else {
      signal_child(pid, 1, SIGTERM);
      if (!wait_for(pid, &wstatus, STOP_GRACE_MS)) signal_child(pid, 1, SIGKILL);
      else exited = 1;
    }
  }
  if (!exited) wait_for(pid, &wstatus, -1);
  if (out_p[0] >= 0) drain(&out_p[0], &out, 1);
  if (err_p[0] >= 0) drain(&err_p[0], &err, 1);
  /* Grandchildren that outlived the child still belong to its group. */
  if (own_group && res->status != PROC_EXITED) kill(-pid, SIGKILL);
  res->code = proc_decode_status(wstatus);

finish:
  close_fd(&in_p[0]);
  close_fd(&in_p[1]);
  close_fd(&out_p[0]);
  close_fd(&out_p[1]);
  close_fd(&err_p[0]);
  close_fd(&err_p[1]);
  res->truncated = out.truncated || err.truncated;
  res->out = buf_take(&out, &res->out_len);
  res->err = buf_take(&err, &res->err_len);
  return res->status == PROC_EXITED ? 0 : -1;
}

void proc_result_free(struct proc_result *res) {
  free(res->out);
  free(res->err);
  res->out = res->err = NULL;
}
