/* pidinfo.h: which program a pid runs, portably. Pure C, no Lua.
 *
 * `bottle ls` and `cleanup` decide whether a launch's owner still runs from
 * the pid in its metadata.json; a bare kill(pid, 0) says yes for a pid the
 * system has since given to another program. The program is the file name
 * of the process's executable: /proc/<pid>/exe on Linux (/proc/<pid>/comm
 * when the link is not ours to read), proc_pidpath() on macOS (then
 * sysctl's p_comm). Elsewhere only kill(pid, 0) is known and the answer is
 * PID_UNKNOWN for a live pid. */
#ifndef BOTTLE_PIDINFO_H
#define BOTTLE_PIDINFO_H

#include <stddef.h>
#include <sys/types.h>

enum pid_state {
  PID_GONE,    /* no such process, or one that has exited (a zombie) */
  PID_OTHER,   /* alive, running another program */
  PID_RUNS,    /* alive, running the program asked about */
  PID_UNKNOWN  /* alive, but what it runs cannot be told here */
};

/* The file name (no directory) of pid's executable into out. 0, or -1 with
 * errno: ESRCH (no such process, or a zombie), EACCES or ENOSYS (alive, but
 * this system does not say), ENAMETOOLONG. */
int pid_program(pid_t pid, char *out, size_t outsz);

/* Whether pid is a live process running the program `name` (a file name;
 * names the kernel truncates, such as Linux's 15-byte comm, match on the
 * kept prefix). pid <= 0 is PID_GONE. */
enum pid_state pid_runs(pid_t pid, const char *name);

/* pid_runs for bottle itself: the program is named "bottle", or has the
 * name this process's own executable has (an install under another name). */
enum pid_state pid_runs_bottle(pid_t pid);

#endif
