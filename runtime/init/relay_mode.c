/* relay_mode.c: `bottle-init relay`, the bundle's side of the guest's
 * sockets (docs/bundle.md).
 *
 * bottle-init starts it as the daemon `relay` (its default command is
 * `bottle-init relay`), after the others. Without arguments the routes come
 * from the environment bottle gives the bundle:
 *   BOTTLE_RELAY_ROUTES  "PATH=HOST:PORT ..." (space separated)
 *   BOTTLE_RELAY_OWNER   "UID:GID" of the user who runs bottle, so the
 *                        sockets (0600) in the bind-mounted state dir are
 *                        that user's, not root's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../relay.h"
#include "init.h"

static const char *env_get(char *const *envp, const char *name) {
  size_t n = strlen(name);
  for (; envp && *envp; envp++)
    if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=') return *envp + n + 1;
  return NULL;
}

int init_relay(int argc, char **argv, char *const *envp) {
  if (argc > 0) return relay_main("bottle-init relay", argc, argv);
  const char *routes = env_get(envp, "BOTTLE_RELAY_ROUTES");
  const char *owner = env_get(envp, "BOTTLE_RELAY_OWNER");
  if (!routes || !*routes) {
    fprintf(stderr, "bottle-init relay: BOTTLE_RELAY_ROUTES is empty; nothing to serve\n");
    return 2;
  }
  char *copy = strdup(routes);
  char **args = calloc(strlen(routes) / 2 + 4, sizeof *args);
  if (!copy || !args) {
    free(copy);
    free(args);
    return 1;
  }
  int n = 0;
  if (owner && *owner) {
    args[n++] = "--owner";
    args[n++] = (char *)owner;
  }
  for (char *tok = strtok(copy, " \t\n"); tok; tok = strtok(NULL, " \t\n")) args[n++] = tok;
  int rc = relay_main("bottle-init relay", n, args);
  free(args);
  free(copy);
  return rc;
}
