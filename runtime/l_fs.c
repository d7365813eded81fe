/* l_fs.c: rt.fs, the file primitives recipes need.
 *
 * Expected failures return nil, message, code (an errno name such as
 * "ENOENT"); misuse raises. Writes are atomic (temp file + rename) and
 * create files with the requested mode from the start, so a secret-bearing
 * file is never briefly world-readable; overwrite and append are the two
 * exceptions, for files a container sees through a single-file bind mount
 * (a rename would leave it the old inode) and for logs with several
 * writers. rm_rf never follows symlinks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "bindings.h"
#include "l_util.h"
#include "util.h"

static int fail(lua_State *L, const char *what, const char *path) {
  int e = errno;
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
  return lutil_fail(L, lua_tostring(L, -1), errno_name(e));
}

static mode_t opt_mode(lua_State *L, int idx, mode_t def) {
  lua_Integer m = luaL_optinteger(L, idx, def);
  if (m < 0 || m > 07777) luaL_argerror(L, idx, "mode out of range");
  return (mode_t)m;
}

static int mkdir_p(char *path, mode_t mode) {
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') path[--len] = '\0';
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0755) < 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(path, mode) < 0) {
    if (errno != EEXIST) return -1;
    struct stat st;
    if (stat(path, &st) < 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
      errno = ENOTDIR;
      return -1;
    }
  }
  return 0;
}

/* Closes fd (a failure path) and reports `e` as fail() does. */
static int fail_closing(lua_State *L, int fd, const char *what, const char *path, int e) {
  close(fd);
  errno = e;
  return fail(L, what, path);
}

/* mkdir_p(path [, mode=0755]): the last component gets `mode` (even when it
 * already exists, so a state dir is always 0700); parents get 0755. */
static int l_mkdir_p(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = opt_mode(L, 2, 0755);
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf) return luaL_argerror(L, 1, "path too long");
  strcpy(buf, path);
  if (mkdir_p(buf, mode) < 0 || chmod(path, mode) < 0) return fail(L, "mkdir", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* write(path, data [, mode=0644]) atomically. */
static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  mode_t mode = opt_mode(L, 3, 0644);
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp)
    return luaL_argerror(L, 1, "path too long");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777);
  if (fd < 0) return fail(L, "write", path);
  if (write_all(fd, data, len) < 0) {
    int e = errno;
    unlink(tmp);
    return fail_closing(L, fd, "write", path, e);
  }
  /* umask may have narrowed the mode; set exactly what was asked. */
  if (fchmod(fd, mode) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return fail(L, "write", path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* overwrite(path, data): replaces the contents of an existing regular file
 * in place, keeping its inode (and mode), so a single-file bind mount of it
 * sees the new contents. */
static int l_overwrite(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(L, "overwrite", path);
  struct stat st;
  int bad = fstat(fd, &st) < 0 ? errno : (S_ISREG(st.st_mode) ? 0 : EINVAL);
  if (bad) return fail_closing(L, fd, "overwrite", path, bad);
  if (ftruncate(fd, 0) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0)
    return fail_closing(L, fd, "overwrite", path, errno);
  if (close(fd) < 0) return fail(L, "overwrite", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* append(path, data [, mode]): one write(2) of data with O_APPEND (the file
 * is created with mode when missing), so lines appended by several
 * processes never interleave. A short write is an error (EIO): the caller
 * must not retry the tail, which would split its line. */
static int l_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  mode_t mode = opt_mode(L, 3, 0600);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode & 0777);
  if (fd < 0) return fail(L, "append", path);
  ssize_t w;
  do
    w = write(fd, data, len);
  while (w < 0 && errno == EINTR);
  if (w < 0 || (size_t)w != len) return fail_closing(L, fd, "append", path, w < 0 ? errno : EIO);
  if (close(fd) < 0) return fail(L, "append", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* lock(path [, timeout_ms = 10000]) -> handle: an exclusive flock(2) on
 * path (created 0600 when missing), for read-modify-write sequences that
 * several bottle processes may run at once. Waits in short steps so a
 * signal is noticed; nil, msg, "TIMEOUT" when the lock stays taken.
 * handle:unlock() (also __close and __gc) releases it; safe twice. */
#define LOCK_META "rt.fs.lock"

static int lock_release(lua_State *L) {
  int *fd = luaL_checkudata(L, 1, LOCK_META);
  if (*fd >= 0) {
    close(*fd); /* closing the descriptor drops the flock */
    *fd = -1;
  }
  return 0;
}

static int l_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer timeout = luaL_optinteger(L, 2, 10000);
  luaL_argcheck(L, timeout >= 0 && timeout <= 86400000, 2, "timeout_ms out of range");
  int *h = lua_newuserdatauv(L, sizeof *h, 0);
  *h = -1;
  luaL_setmetatable(L, LOCK_META);
  int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return fail(L, "lock", path);
  for (lua_Integer waited = 0;; waited += 20) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK && errno != EINTR) return fail_closing(L, fd, "lock", path, errno);
    if (waited >= timeout) {
      close(fd);
      lua_pushfstring(L, "lock %s: still taken after %d ms", path, (int)timeout);
      return lutil_fail(L, lua_tostring(L, -1), "TIMEOUT");
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  *h = fd;
  return 1;
}

static const char *file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

static const char *const read_fields[] = {"max", NULL};

/* read(path [, {max = bytes}]) -> contents | nil, msg, code.
 * With `max` the file is one bottle reads on a user's behalf (a manifest, a
 * prompt): it must be a regular file once links are resolved and at most
 * `max` bytes, and the read stops there. O_NONBLOCK keeps the open of a FIFO
 * from waiting for a writer; a device or a growing file cannot make the read
 * run unbounded. Codes: ENOTREG (names what it is), EFBIG. */
static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = -1;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lutil_check_fields(L, 2, "fs.read", read_fields);
    lua_getfield(L, 2, "max");
    int exact = 0;
    max = lua_tointegerx(L, -1, &exact);
    if (!exact || max < 0) return luaL_argerror(L, 2, "max must be a non-negative integer");
    lua_pop(L, 1);
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC | (max >= 0 ? O_NONBLOCK : 0));
  if (fd < 0) return fail(L, "read", path);
  if (max >= 0) {
    struct stat st;
    if (fstat(fd, &st) < 0) return fail_closing(L, fd, "read", path, errno);
    if (!S_ISREG(st.st_mode)) {
      close(fd);
      lua_pushnil(L);
      lua_pushfstring(L, "read %s: not a regular file (%s)", path, file_kind(st.st_mode));
      lua_pushliteral(L, "ENOTREG");
      return 3;
    }
    if (st.st_size > (off_t)max) {
      close(fd);
      lua_pushnil(L);
      lua_pushfstring(L, "read %s: too large (%I bytes; the limit is %I)", path, (lua_Integer)st.st_size, max);
      lua_pushliteral(L, "EFBIG");
      return 3;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) return fail_closing(L, fd, "read", path, errno);
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer total = 0;
  for (;;) {
    size_t want = LUAL_BUFFERSIZE;
    /* one byte past the cap tells a file that grew after fstat */
    if (max >= 0 && (lua_Integer)want > max + 1 - total) want = (size_t)(max + 1 - total);
    if (want == 0) break;
    char *dst = luaL_prepbuffer(&b);
    ssize_t r = read(fd, dst, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail_closing(L, fd, "read", path, errno);
    }
    if (r == 0) break;
    luaL_addsize(&b, (size_t)r);
    total += r;
  }
  close(fd);
  if (max >= 0 && total > max) {
    lua_pushnil(L);
    lua_pushfstring(L, "read %s: too large (it grew past the limit of %I bytes while being read)", path, max);
    lua_pushliteral(L, "EFBIG");
    return 3;
  }
  luaL_pushresult(&b);
  return 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  int r = (flag == FTW_DP) ? rmdir(path) : unlink(path);
  return (r < 0 && errno != ENOENT) ? -1 : 0;
}

/* rm_rf(path): removes a tree; a missing path is success. */
static int l_rm_rf(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (!*path || strcmp(path, "/") == 0) return luaL_argerror(L, 1, "refusing to remove this path");
  struct stat st;
  if (lstat(path, &st) < 0) {
    if (errno == ENOENT) {
      lua_pushboolean(L, 1);
      return 1;
    }
    return fail(L, "remove", path);
  }
  int r = S_ISDIR(st.st_mode) ? nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) : unlink(path);
  if (r < 0) return fail(L, "remove", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* tmpdir([prefix="bottle"]) -> a new 0700 directory under $TMPDIR or /tmp */
static int l_tmpdir(lua_State *L) {
  const char *prefix = luaL_optstring(L, 1, "bottle");
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s/%s.XXXXXX", base, prefix);
  if (!mkdtemp(buf)) return fail(L, "mkdtemp", buf);
  lua_pushstring(L, buf);
  return 1;
}

/* stat(path) -> {type=, mode=, size=, mtime=, uid=} | nil, msg, code (lstat) */
static int l_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (lstat(path, &st) < 0) return fail(L, "stat", path);
  lua_createtable(L, 0, 5);
  const char *type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : "other";
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, st.st_mode & 07777);
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_mtime);
  lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  lua_setfield(L, -2, "uid");
  return 1;
}

static int l_exists(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0);
  return 1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* list(dir) -> sorted entry names (no . and ..) | nil, msg, code */
static int l_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return fail(L, "list", path);
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  /* sort through a C array of the (table-anchored) strings */
  const char **v = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, -2, i + 1);
    v[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  qsort(v, (size_t)n, sizeof *v, cmp_str);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_chmod(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (chmod(path, opt_mode(L, 2, 0644)) < 0) return fail(L, "chmod", path);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_cwd(lua_State *L) {
  char buf[PATH_MAX];
  if (!getcwd(buf, sizeof buf)) return fail(L, "getcwd", ".");
  lua_pushstring(L, buf);
  return 1;
}

static int l_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[PATH_MAX];
  if (!realpath(path, buf)) return fail(L, "realpath", path);
  lua_pushstring(L, buf);
  return 1;
}

/* random_hex(nbytes) -> 2*nbytes lowercase hex chars from /dev/urandom
 * (slugs, temp names; not key material: rt.ca uses OpenSSL's RNG). */
static int l_random_hex(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1 || n > 64) return luaL_argerror(L, 1, "expected 1..64 bytes");
  unsigned char bytes[64];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(L, "open", "/dev/urandom");
  ssize_t got = read(fd, bytes, (size_t)n);
  close(fd);
  if (got != n) return fail(L, "read", "/dev/urandom");
  char hex[129];
  for (lua_Integer i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  lua_pushlstring(L, hex, (size_t)(2 * n));
  return 1;
}

/* rename(from, to): atomic within one file system. */
static int l_rename(lua_State *L) {
  const char *from = luaL_checkstring(L, 1);
  const char *to = luaL_checkstring(L, 2);
  if (rename(from, to) < 0) return fail(L, "rename", from);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg fs_funcs[] = {
    {"rename", l_rename},
    {"random_hex", l_random_hex},
    {"mkdir_p", l_mkdir_p},
    {"write", l_write},
    {"overwrite", l_overwrite},
    {"append", l_append},
    {"lock", l_lock},
    {"read", l_read},
    {"rm_rf", l_rm_rf},
    {"tmpdir", l_tmpdir},
    {"stat", l_stat},
    {"exists", l_exists},
    {"list", l_list},
    {"chmod", l_chmod},
    {"cwd", l_cwd},
    {"realpath", l_realpath},
    {NULL, NULL},
};

static const luaL_Reg lock_meta[] = {
    {"unlock", lock_release},
    {"__close", lock_release},
    {"__gc", lock_release},
    {NULL, NULL},
};

int luaopen_rt_fs(lua_State *L) {
  if (luaL_newmetatable(L, LOCK_META)) {
    luaL_setfuncs(L, lock_meta, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fs_funcs);
  return 1;
}
