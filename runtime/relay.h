/* relay.h: unix socket -> TCP relays. Pure C, no Lua, no libraries.
 *
 * A guest reaches its bundle only through unix sockets in the launch's
 * state dir. Each route listens on one socket path and forwards
 * every connection to one TCP address. bottle-init serves the routes inside
 * the bundle (`bottle-init relay`, to the daemons' ports); bottle itself
 * serves them on the host (`bottle __relay`, to the bundle's published
 * loopback ports) where a socket in a bind mount cannot be reached from
 * the host. The caller owns the routes; relay.c owns the listening sockets
 * and every connection it accepts. */
#ifndef BOTTLE_RELAY_H
#define BOTTLE_RELAY_H

#include <signal.h>
#include <stddef.h>

struct relay_route {
  const char *path; /* the unix socket to create (an old socket there is replaced) */
  const char *host; /* numeric IPv4/IPv6 address to connect to */
  int port;
  int fd;           /* the listening socket, set by relay_listen */
};

/* Parses "PATH=HOST:PORT" (the last ':' separates the port; "[v6]:port"
 * works too). Points into spec, which it edits in place. Returns 0, or -1
 * with a message in err. */
int relay_parse(char *spec, struct relay_route *r, char *err, size_t errsz);

/* Creates the socket at r->path with mode 0600, owned by uid:gid when
 * uid >= 0, and listens. Returns 0, or -1 with a message in err (the path
 * is then left as it was, unless it was our own half-made socket). */
int relay_listen(struct relay_route *r, int uid, int gid, char *err, size_t errsz);

/* Serves the routes until *stop becomes non-zero (a signal handler sets
 * it), then closes every connection and listening socket and removes the
 * socket files. A connection whose TCP side cannot be reached is closed at
 * once. Returns 0, or -1 with a message in err on an unrecoverable error. */
int relay_serve(struct relay_route *routes, size_t n, volatile sig_atomic_t *stop, char *err,
                size_t errsz);

/* The command line both relay programs share:
 *   relay [--owner UID:GID] PATH=HOST:PORT...
 * Parses argv (without the program and subcommand words), listens on every
 * route and serves until SIGTERM, SIGINT or SIGHUP. Writes one-line errors
 * to stderr prefixed with `who`. Returns the exit status (0 after a signal,
 * 1 on failure, 2 on bad usage). */
int relay_main(const char *who, int argc, char **argv);

#endif
