/* proc.h: run a program and collect what it did. Pure C, no Lua.
 *
 * The child gets exactly the argv and environment given (no shell), runs in
 * its own process group unless interactive, and inherits no descriptor but
 * 0, 1 and 2. stdout and stderr are captured separately with poll(); stdin
 * is fed from memory. A timeout, or a signal the caller reports through
 * `pending_signal`, ends the whole process group. The caller owns the
 * result's buffers (proc_result_free). */
#ifndef BOTTLE_PROC_H
#define BOTTLE_PROC_H

#include <spawn.h>
#include <stddef.h>
#include <sys/types.h>

enum proc_status {
  PROC_EXITED = 0,     /* ran to the end; see code */
  PROC_NOT_FOUND,      /* program not found on PATH / not executable */
  PROC_SPAWN_FAILED,   /* posix_spawn or pipe failed; see error */
  PROC_TIMEOUT,        /* killed after timeout_ms */
  PROC_INTERRUPTED     /* stopped because pending_signal reported a signal */
};

struct proc_spec {
  const char *const *argv;   /* NULL-terminated; argv[0] is looked up on PATH */
  const char *const *envp;   /* NULL-terminated environment; NULL inherits ours */
  const char *input;         /* bytes for stdin; NULL means /dev/null */
  size_t input_len;
  int timeout_ms;            /* <= 0: no limit */
  int interactive;           /* share our terminal: no capture, same process group */
  size_t max_output;         /* per stream; 0 means 64 MiB; the rest is dropped */
  /* Polled while waiting; returns a signal number to stop the child, else 0. */
  int (*pending_signal)(void);
};

struct proc_result {
  enum proc_status status;
  int code;        /* exit code; 128+N when killed by signal N; -1 if it never ran */
  int error;       /* errno for PROC_SPAWN_FAILED */
  int signal;      /* the signal for PROC_INTERRUPTED */
  pid_t pid;
  char *out, *err; /* NUL-terminated captures (never NULL after proc_run) */
  size_t out_len, err_len;
  int truncated;   /* output went past max_output */
};

int proc_run(const struct proc_spec *spec, struct proc_result *res);
void proc_result_free(struct proc_result *res);

/* Resolves prog against PATH as found in envp (or our environment). Writes
 * the path to out and returns 0, or returns -1 (ENOENT/EACCES in errno). */
int proc_resolve(const char *prog, const char *const *envp, char *out, size_t outsz);

/* The spawn settings every child gets: default signal dispositions and an
 * empty mask, no inherited descriptor but 0-2, and (own_group) a process
 * group of its own; otherwise it shares ours and our terminal. */
void proc_spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, int own_group);

/* Exit status from waitpid decoded the way shells do: 128+N for signal N. */
int proc_decode_status(int wstatus);

#endif
