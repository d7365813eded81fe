/* secret.h: the process-wide registry of secret values.
 *
 * Values registered here (tokens, prompt answers, forwarded host env values)
 * are replaced by `***` in every trace, log line and error message the
 * runtime prints. The registry owns private copies of the values and wipes
 * them on secret_clear(). */
#ifndef BOTTLE_SECRET_H
#define BOTTLE_SECRET_H

#include <stddef.h>

/* Registers a value; empty values are ignored. Returns 0, or -1 on OOM. */
int secret_add(const char *value, size_t len);
/* Number of registered values. */
size_t secret_count(void);
/* Returns a malloc'd copy of s with every registered value replaced by
 * "***" (longest values first, so overlapping secrets are fully hidden).
 * Returns NULL only on OOM. */
char *secret_redact(const char *s, size_t len, size_t *out_len);
/* True when s contains any registered value. */
int secret_contains(const char *s, size_t len);
/* Forgets (and wipes) every value. */
void secret_clear(void);

#endif
