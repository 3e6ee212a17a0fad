/* Logging through a callback the program installs. Libraries (engine, pipeline) only call
 * bn_log(); with no callback installed their messages are discarded. Programs install
 * bn_log_stderr (or their own) once at start-up. */
#ifndef BN_LOG_H
#define BN_LOG_H

#include <stdarg.h>

typedef enum { BN_LOG_ERROR = 0, BN_LOG_WARN, BN_LOG_INFO, BN_LOG_DEBUG } bn_log_level;

typedef void (*bn_log_fn)(bn_log_level level, const char *module, const char *msg, void *user);

/* Install the sink (NULL: discard). Not thread-safe against concurrent bn_log calls:
 * call at start-up before threads exist. */
void bn_log_set_callback(bn_log_fn fn, void *user);
/* Messages above this level are dropped before formatting. Default BN_LOG_INFO. */
void bn_log_set_level(bn_log_level level);
bn_log_level bn_log_get_level(void);
/* Parse "error|warn|info|debug"; returns -1 when unknown. */
int bn_log_level_parse(const char *s);

void bn_log(bn_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void bn_vlog(bn_log_level level, const char *module, const char *fmt, va_list ap);

/* Ready-made sink: one line per message on stderr,
 *   [2026-12-06T23:26:28.362637Z] W engine[infer]: message
 * with the wall-clock time in UTC (BASISNET_LOG_CLOCK=monotonic: CLOCK_MONOTONIC seconds
 * instead); the name in brackets is the thread name. When stderr is the journal
 * ($JOURNAL_STREAM matches stderr) the line is "<N>engine[infer]: message": journald adds
 * the time and files the syslog level N. */
void bn_log_stderr(bn_log_level level, const char *module, const char *msg, void *user);

#define BN_LOGE(mod, ...) bn_log(BN_LOG_ERROR, mod, __VA_ARGS__)
#define BN_LOGW(mod, ...) bn_log(BN_LOG_WARN, mod, __VA_ARGS__)
#define BN_LOGI(mod, ...) bn_log(BN_LOG_INFO, mod, __VA_ARGS__)
#define BN_LOGD(mod, ...) bn_log(BN_LOG_DEBUG, mod, __VA_ARGS__)

#endif
