/* pidinfo.c: see pidinfo.h. */
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE 1 /* proc_pidpath and sysctl's types under _XOPEN_SOURCE */
#endif
#include "pidinfo.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __APPLE__
#include <libproc.h>
#include <sys/param.h>
#include <sys/proc.h>
#include <sys/sysctl.h>
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static int put_base(const char *path, char *out, size_t outsz) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t n = strlen(base);
  if (n == 0) {
    errno = ENOSYS;
    return -1;
  }
  if (n >= outsz) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(out, base, n + 1);
  return 0;
}

/* kill(pid, 0) alone: alive or not, nothing about the program. */
static int no_program(pid_t pid) {
  errno = (kill(pid, 0) == 0 || errno == EPERM) ? ENOSYS : ESRCH;
  return -1;
}

#if defined(__linux__)

/* The state letter in /proc/<pid>/stat ('Z' for a zombie), 0 if unreadable. */
static char proc_state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *paren = strrchr(buf, ')'); /* comm may hold spaces and parens */
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

static int read_comm(pid_t pid, char *out, size_t outsz) {
  char path[64], buf[64];
  snprintf(path, sizeof path, "/proc/%ld/comm", (long)pid);
  FILE *f = fopen(path, "re");
  if (!f) {
    errno = ESRCH;
    return -1;
  }
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  buf[strcspn(buf, "\n")] = '\0';
  return put_base(buf, out, outsz);
}

int pid_program(pid_t pid, char *out, size_t outsz) {
  if (pid <= 0) {
    errno = ESRCH;
    return -1;
  }
  struct stat st;
  if (stat("/proc/self/exe", &st) != 0) return no_program(pid); /* no /proc */
  char link[64], path[PATH_MAX + 16];
  snprintf(link, sizeof link, "/proc/%ld/exe", (long)pid);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n >= 0) {
    path[n] = '\0';
    /* the binary was replaced or removed while it runs (a rebuild) */
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof deleted - 1;
    if ((size_t)n > dl && strcmp(path + n - dl, deleted) == 0) path[n - dl] = '\0';
    return put_base(path, out, outsz);
  }
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%ld", (long)pid);
  if (stat(dir, &st) != 0) {
    errno = ESRCH;
    return -1;
  }
  char state = proc_state(pid);
  if (state == 'Z' || state == 'X') {
    errno = ESRCH;
    return -1;
  }
  /* Another user's process (EACCES), or a kernel thread (ENOENT, no exe):
   * comm is readable by everyone. */
  return read_comm(pid, out, outsz);
}

#elif defined(__APPLE__)

int pid_program(pid_t pid, char *out, size_t outsz) {
  if (pid <= 0) {
    errno = ESRCH;
    return -1;
  }
  char path[PROC_PIDPATHINFO_MAXSIZE];
  struct kinfo_proc kp;
  size_t len = sizeof kp;
  int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_PID, (int)pid};
  memset(&kp, 0, sizeof kp);
  if (sysctl(mib, 4, &kp, &len, NULL, 0) != 0) return no_program(pid);
  if (len == 0 || kp.kp_proc.p_stat == SZOMB) {
    errno = ESRCH;
    return -1;
  }
  if (proc_pidpath(pid, path, sizeof path) > 0) return put_base(path, out, outsz);
  /* proc_pidpath refuses some processes; p_comm is the first MAXCOMLEN
   * bytes of the executable's name. */
  char comm[MAXCOMLEN + 1];
  memcpy(comm, kp.kp_proc.p_comm, MAXCOMLEN);
  comm[MAXCOMLEN] = '\0';
  return put_base(comm, out, outsz);
}

#else

int pid_program(pid_t pid, char *out, size_t outsz) {
  (void)out, (void)outsz;
  if (pid <= 0) {
    errno = ESRCH;
    return -1;
  }
  return no_program(pid);
}

#endif

/* Kernels keep a truncated name where the full path is not readable (Linux
 * comm: 15 bytes; macOS p_comm: 16): a got of exactly that length matches a
 * longer name with the same prefix. */
static int same_program(const char *got, const char *want) {
  if (strcmp(got, want) == 0) return 1;
  size_t g = strlen(got);
  return (g == 15 || g == 16) && strlen(want) > g && strncmp(got, want, g) == 0;
}

enum pid_state pid_runs(pid_t pid, const char *name) {
  char got[256];
  if (pid_program(pid, got, sizeof got) != 0) return errno == ESRCH ? PID_GONE : PID_UNKNOWN;
  return same_program(got, name) ? PID_RUNS : PID_OTHER;
}

enum pid_state pid_runs_bottle(pid_t pid) {
  char got[256], self[256];
  if (pid_program(pid, got, sizeof got) != 0) return errno == ESRCH ? PID_GONE : PID_UNKNOWN;
  if (same_program(got, "bottle")) return PID_RUNS;
  if (pid_program(getpid(), self, sizeof self) == 0 && same_program(got, self)) return PID_RUNS;
  return PID_OTHER;
}
