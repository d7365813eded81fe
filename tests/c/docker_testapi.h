/* docker_testapi.h: engine calls only the C tests need (see
 * docker_testapi.c). Errors as in runtime/docker.h. */
#ifndef BOTTLE_DOCKER_TESTAPI_H
#define BOTTLE_DOCKER_TESTAPI_H

#include "docker.h"

/* Imports a root filesystem tarball as repo:tag, applying Dockerfile
 * `changes` (e.g. "USER node"). Returns the image id. */
char *docker_image_import(struct docker *d, const char *tar_path, const char *repo, const char *tag,
                          const char *const *changes);
/* Missing: success. */
int docker_image_remove(struct docker *d, const char *ref, int force);

#endif
