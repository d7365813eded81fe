/* docker_testapi.c: engine calls only the C tests need (building and
 * removing the test image), made on the transport in
 * runtime/docker_http.h like the ones in runtime/docker.c. */
#include "docker_testapi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docker_http.h"

char *docker_image_import(struct docker *d, const char *tar_path, const char *repo, const char *tag,
                          const char *const *changes) {
  static const char op[] = "image import";
  dh_begin(d);
  int fd = open(tar_path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return dh_fail_code(d, errno_name(e), "%s: cannot open %s: %s", op, tar_path, strerror(e)), NULL;
  }
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return dh_oom(d, op), NULL;
  }
  struct buf p = {0};
  buf_adds(&p, "/images/create?fromSrc=-");
  if (repo) {
    buf_adds(&p, "&repo=");
    buf_add_escaped(&p, repo, NULL);
  }
  if (tag) {
    buf_adds(&p, "&tag=");
    buf_add_escaped(&p, tag, NULL);
  }
  for (; changes && *changes; changes++) {
    buf_adds(&p, "&changes=");
    buf_add_escaped(&p, *changes, NULL);
  }
  char *path = buf_take(&p, NULL);
  if (!path) {
    fclose(f);
    return dh_oom(d, op), NULL;
  }
  struct dh_request rq = {.op = op, .method = "POST", .path = path, .upload = f,
                       .upload_len = (long long)st.st_size, .timeout_ms = 600000};
  struct buf resp = {0};
  long status = dh_send(d, &rq, &resp);
  fclose(f);
  free(path);
  if (status < 0) {
    buf_free(&resp);
    return NULL;
  }
  if (status != 200) {
    dh_engine_fail(d, op, status, &resp);
    buf_free(&resp);
    return NULL;
  }
  /* The answer is a stream of JSON progress objects; a failure after the
   * upload started arrives as {"error": "..."} inside a 200 answer. */
  char *id = NULL;
  const char *s = resp.p ? resp.p : "", *end = s + resp.len;
  while (s < end) {
    const char *parse_end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, (size_t)(end - s), &parse_end, 0);
    if (!j) break;
    const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
    const char *stat_s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status"));
    if (err) {
      dh_fail(d, 500, "%s: %s", op, err);
      cJSON_Delete(j);
      free(id);
      buf_free(&resp);
      return NULL;
    }
    if (stat_s && strncmp(stat_s, "sha256:", 7) == 0) {
      free(id);
      id = strdup(stat_s);
    }
    cJSON_Delete(j);
    s = parse_end;
    while (s < end && (*s == '\n' || *s == '\r' || *s == ' ')) s++;
  }
  buf_free(&resp);
  if (!id) dh_fail(d, 200, "%s: the Docker engine's reply has no image id", op);
  return id;
}

int docker_image_remove(struct docker *d, const char *ref, int force) {
  dh_begin(d);
  char *path = dh_make_path("/images/", ref, "/:@", force ? "?force=1" : "");
  if (!path) return dh_oom(d, "image remove");
  struct dh_request rq = {.op = "image remove", .method = "DELETE", .path = path};
  static const long ok[] = {200, 404, 0};
  long st = dh_call(d, &rq, ok, NULL);
  free(path);
  return st < 0 ? -1 : 0;
}
