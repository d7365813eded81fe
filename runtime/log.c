/* log.c: see log.h. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "secret.h"
#include "util.h"

static enum log_level current_level = LOG_INFO;
static int color_on = -1; /* -1: decide on first use */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t step_cond = PTHREAD_COND_INITIALIZER;
static pthread_t spinner_thread;
static int spinner_running; /* thread exists */
static int step_active;     /* a step line is on screen */
static int spinner_quit;
static char step_text[512];
static struct timespec step_started;

static int capturing;
static char *cap_buf;
static size_t cap_len, cap_cap;

static void cap_append(const char *s, size_t n) {
  if (cap_len + n + 1 > cap_cap) {
    size_t c = cap_cap ? cap_cap : 4096;
    while (c < cap_len + n + 1) c *= 2;
    char *b = realloc(cap_buf, c);
    if (!b) return;
    cap_buf = b;
    cap_cap = c;
  }
  memcpy(cap_buf + cap_len, s, n);
  cap_len += n;
  cap_buf[cap_len] = '\0';
}

void log_capture_begin(void) {
  capturing = 1;
  cap_len = 0;
  if (cap_buf) cap_buf[0] = '\0';
}

char *log_capture_end(size_t *len) {
  capturing = 0;
  char *out = cap_buf ? cap_buf : calloc(1, 1);
  if (len) *len = cap_buf ? cap_len : 0;
  cap_buf = NULL;
  cap_len = cap_cap = 0;
  return out;
}

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }
int log_is_tty(void) { return isatty(STDERR_FILENO); }

void log_set_color(int on) { color_on = on; }
int log_color(void) {
  if (color_on < 0) {
    const char *nc = getenv("NO_COLOR");
    color_on = log_is_tty() && !(nc && *nc);
  }
  return color_on;
}

static double elapsed_s(const struct timespec *since) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* Caller holds out_lock. */
static void draw_step(unsigned frame) {
  static const char *frames[] = {"|", "/", "-", "\\"};
  char line[700];
  int n = snprintf(line, sizeof line, "\r\033[K%s %s (%.1fs)", frames[frame % 4], step_text,
                   elapsed_s(&step_started));
  if (n > 0) write_all(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void *spin(void *arg) {
  (void)arg;
  unsigned frame = 0;
  pthread_mutex_lock(&out_lock);
  while (!spinner_quit) {
    if (step_active) draw_step(frame++);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 120 * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&step_cond, &out_lock, &until);
  }
  pthread_mutex_unlock(&out_lock);
  return NULL;
}

static void write_line(enum log_level level, const char *msg, size_t len, int plain);

void log_write(enum log_level level, const char *msg, size_t len) { write_line(level, msg, len, 0); }

void log_write_plain(enum log_level level, const char *msg, size_t len) { write_line(level, msg, len, 1); }

static void write_line(enum log_level level, const char *msg, size_t len, int plain) {
  if (level > current_level) return;
  size_t rlen = 0;
  char *red = secret_redact(msg, len, &rlen);
  if (!red) return;
  const char *prefix = "";
  const char *color = "";
  switch (level) {
  case LOG_ERROR: prefix = "error: "; color = "\033[31m"; break;
  case LOG_WARN: prefix = "warning: "; color = "\033[33m"; break;
  case LOG_TRACE: prefix = "+ "; color = "\033[2m"; break;
  default: break;
  }
  if (plain) prefix = "";
  if (capturing) {
    cap_append(prefix, strlen(prefix));
    cap_append(red, rlen);
    if (rlen == 0 || red[rlen - 1] != '\n') cap_append("\n", 1);
    free(red);
    return;
  }
  int use_color = log_color() && *color;
  pthread_mutex_lock(&out_lock);
  if (step_active) write_all(STDERR_FILENO, "\r\033[K", 4);
  if (use_color) write_all(STDERR_FILENO, color, strlen(color));
  write_all(STDERR_FILENO, prefix, strlen(prefix));
  write_all(STDERR_FILENO, red, rlen);
  if (use_color) write_all(STDERR_FILENO, "\033[0m", 4);
  if (rlen == 0 || red[rlen - 1] != '\n') write_all(STDERR_FILENO, "\n", 1);
  pthread_mutex_unlock(&out_lock);
  free(red);
}

void log_printf(enum log_level level, const char *fmt, ...) {
  if (level > current_level) return;
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  log_write(level, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void log_step_begin(const char *text) {
  if (capturing || current_level < LOG_INFO || !log_is_tty()) return;
  size_t rlen;
  char *red = secret_redact(text, strlen(text), &rlen);
  if (!red) return;
  pthread_mutex_lock(&out_lock);
  snprintf(step_text, sizeof step_text, "%s", red);
  clock_gettime(CLOCK_MONOTONIC, &step_started);
  step_active = 1;
  draw_step(0);
  if (!spinner_running) {
    spinner_quit = 0;
    if (pthread_create(&spinner_thread, NULL, spin, NULL) == 0) spinner_running = 1;
  }
  pthread_mutex_unlock(&out_lock);
  free(red);
}

void log_step_end(const char *final_line) {
  pthread_mutex_lock(&out_lock);
  int was = step_active;
  step_active = 0;
  if (was) write_all(STDERR_FILENO, "\r\033[K", 4);
  pthread_mutex_unlock(&out_lock);
  if (final_line) log_write(LOG_INFO, final_line, strlen(final_line));
}

void log_shutdown(void) {
  pthread_mutex_lock(&out_lock);
  int running = spinner_running;
  spinner_quit = 1;
  if (step_active) write_all(STDERR_FILENO, "\r\033[K", 4);
  step_active = 0;
  pthread_cond_broadcast(&step_cond);
  pthread_mutex_unlock(&out_lock);
  if (running) pthread_join(spinner_thread, NULL);
  spinner_running = 0;
}
