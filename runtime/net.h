/* net.h: TCP readiness and free ports. Pure C, no Lua.
 *
 * net.c owns the launcher's own sockets: waiting until a published port
 * really accepts connections, and picking a port nobody listens on. The
 * wait polls with short, growing pauses and gives up on a deadline or when
 * the caller's `pending_signal` reports a signal, so ^C is never stuck
 * behind it. */
#ifndef BOTTLE_NET_H
#define BOTTLE_NET_H

#include <stddef.h>

/* After a connect succeeds the connection is held this long by default: a
 * port forwarder (docker-proxy, a VM's port map) accepts at once and then
 * closes when nothing listens behind it, and that must not count as ready. */
#define NET_DEFAULT_HOLD_MS 100

enum net_status {
  NET_READY = 0,      /* a connection was accepted (and held; see hold_ms) */
  NET_TIMEOUT,        /* not ready before the deadline; see error */
  NET_RESOLVE_FAILED, /* the host name does not exist; see error */
  NET_INTERRUPTED     /* pending_signal reported a signal; see signal */
};

struct net_wait_spec {
  const char *host; /* name, numeric IPv4 or IPv6 (no brackets) */
  int port;         /* 1..65535 */
  int timeout_ms;   /* overall bound; 0 means a single attempt */
  int hold_ms;      /* keep the connection this long; the peer closing it
                       within that time means not ready; 0: no check */
  /* Polled while waiting; a non-zero signal number stops the wait. */
  int (*pending_signal)(void);
};

struct net_wait_result {
  enum net_status status;
  long elapsed_ms;
  int attempts;
  int signal;       /* for NET_INTERRUPTED */
  char error[256];  /* the last failure, e.g. "Connection refused" */
};

/* Returns 0 when ready, -1 otherwise (the reason is in res). */
int net_wait_tcp(const struct net_wait_spec *spec, struct net_wait_result *res);

/* Waits until a unix socket at path accepts a connection (closed at once),
 * with the same pauses, deadline and signal handling as net_wait_tcp.
 * Returns 0 when ready, -1 otherwise (NET_RESOLVE_FAILED: the path is too
 * long for a socket). */
int net_wait_unix(const char *path, int timeout_ms, int (*pending_signal)(void),
                  struct net_wait_result *res);

/* A TCP port that is free on host (NULL: 127.0.0.1) right now: bound to
 * port 0, read back, closed. Returns the port, or -1 with a message in err
 * and *code set to "ERESOLVE" or an errno name. Another process may take it
 * before the caller binds it. */
int net_free_port(const char *host, char *err, size_t errsz, const char **code);

#endif
