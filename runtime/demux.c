/* demux.c: see demux.h. */
#include "demux.h"

#include <stdlib.h>
#include <string.h>

void demux_init(struct demux *m, int raw) {
  memset(m, 0, sizeof *m);
  m->raw = raw;
}

int demux_feed(struct demux *m, const void *data, size_t n) {
  const unsigned char *p = data;
  if (m->raw) return buf_addn(&m->out, p, n);
  while (n > 0) {
    if (m->left == 0) {
      size_t want = DEMUX_HEADER_SIZE - m->hdr_have;
      size_t take = want < n ? want : n;
      memcpy(m->hdr + m->hdr_have, p, take);
      m->hdr_have += take;
      p += take;
      n -= take;
      if (m->hdr_have < DEMUX_HEADER_SIZE) break;
      m->hdr_have = 0;
      m->stream = m->hdr[0];
      m->left = (size_t)m->hdr[4] << 24 | (size_t)m->hdr[5] << 16 | (size_t)m->hdr[6] << 8 | m->hdr[7];
      continue;
    }
    size_t take = m->left < n ? m->left : n;
    buf_addn(m->stream >= 2 ? &m->err : &m->out, p, take);
    m->left -= take;
    p += take;
    n -= take;
  }
  return m->out.oom || m->err.oom ? -1 : 0;
}

int demux_partial(const struct demux *m) { return m->hdr_have > 0 || m->left > 0; }

int demux_finish(struct demux *m, char **out, size_t *out_len, char **err, size_t *err_len) {
  int bad = m->out.oom || m->err.oom;
  char *o = buf_take(&m->out, out_len);
  char *e = buf_take(&m->err, err_len);
  int raw = m->raw;
  demux_init(m, raw);
  if (bad || !o || !e) {
    free(o);
    free(e);
    *out = *err = NULL;
    *out_len = *err_len = 0;
    return -1;
  }
  *out = o;
  *err = e;
  return 0;
}

void demux_free(struct demux *m) {
  buf_free(&m->out);
  buf_free(&m->err);
  demux_init(m, m->raw);
}
