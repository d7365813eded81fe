/* bgproc.h: a program that runs beside bottle until bottle stops it (a host
 * relay for a launch's lifetime). Pure C, no Lua.
 *
 * proc.h runs a program to its end and collects its output; this starts one
 * in the background in its own process group, with stdin from /dev/null and
 * stdout and stderr appended to a log file, and later stops it: SIGTERM to
 * the group, a grace period, SIGKILL, reaped. The caller owns the pid until
 * proc_bg_stop (or a wait that saw it exit) reaps it. */
#ifndef BOTTLE_BGPROC_H
#define BOTTLE_BGPROC_H

#include <stddef.h>
#include <sys/types.h>

struct proc_bg_spec {
  const char *const *argv;  /* NULL-terminated; argv[0] is looked up on PATH */
  const char *const *envp;  /* NULL inherits ours */
  const char *log_path;     /* stdout + stderr appended here (0600); NULL: /dev/null */
};

/* Starts the program. Returns 0 and sets *pid, or -1 with errno set
 * (ENOENT/EACCES when it cannot be found or run). */
int proc_bg_start(const struct proc_bg_spec *spec, pid_t *pid);

/* Waits up to timeout_ms (0: just looks, < 0: forever) for the program to
 * exit. Returns 1 and sets *code (128+N for signal N) when it did (it is
 * reaped), 0 while it still runs. */
int proc_bg_wait(pid_t pid, int timeout_ms, int *code);

/* Stops the program's process group: SIGTERM, up to grace_ms, SIGKILL.
 * Returns its exit code (128+N for signal N). */
int proc_bg_stop(pid_t pid, int grace_ms);

/* The path of the running executable (for `bottle __relay`). Returns 0, or
 * -1 when the platform cannot tell. */
int proc_self_exe(char *out, size_t outsz);

#endif
