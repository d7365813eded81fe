/* log.h: everything bottle prints to stderr goes through here.
 *
 * Every message is redacted against the secret registry (secret.h) before it
 * is written. On a terminal a step can show a spinner line that a background
 * thread animates while the main thread is blocked in a primitive; other log
 * lines are printed above it. */
#ifndef BOTTLE_LOG_H
#define BOTTLE_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_TRACE = 3 };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Colour is used only when stderr is a terminal and NO_COLOR is unset. */
void log_set_color(int on);
int log_color(void);
int log_is_tty(void);

/* Writes one message (a trailing newline is added when missing) if level is
 * enabled. Prefixes: "error: ", "warning: ", none, "+ ". */
void log_write(enum log_level level, const char *msg, size_t len);
/* Same, without the level's prefix (continuation lines: a stderr tail). */
void log_write_plain(enum log_level level, const char *msg, size_t len);
void log_printf(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Spinner for a running step; a no-op when stderr is not a terminal or the
 * level is below INFO. log_step_end prints the final line. */
void log_step_begin(const char *text);
void log_step_end(const char *final_line);
/* Capture mode (scenario tests): while on, log_write appends the redacted
 * text to a buffer instead of writing it, and steps draw no spinner.
 * log_capture_end returns the malloc'd text (caller frees) and turns it off. */
void log_capture_begin(void);
char *log_capture_end(size_t *len);

/* Stops the animation thread (idempotent); called before exit. */
void log_shutdown(void);

#endif
