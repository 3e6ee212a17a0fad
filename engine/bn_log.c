/* Callback logging shared by the engine, the pipeline and the programs. */
#include "bn_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bn_log_fn log_fn;
static void *log_user;
static _Atomic int log_level = BN_LOG_INFO;

void bn_log_set_callback(bn_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void bn_log_set_level(bn_log_level level) { atomic_store(&log_level, (int)level); }
bn_log_level bn_log_get_level(void) { return (bn_log_level)atomic_load(&log_level); }

int bn_log_level_parse(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void bn_vlog(bn_log_level level, const char *module, const char *fmt, va_list ap)
{
    if ((int)level > atomic_load(&log_level) || !log_fn)
        return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    log_fn(level, module ? module : "-", msg, log_user);
}

void bn_log(bn_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bn_vlog(level, module, fmt, ap);
    va_end(ap);
}

/* journald sets JOURNAL_STREAM=dev:ino for the stream it reads; compare with stderr's. */
static int stderr_is_journal(void)
{
    static int cached = -1;
    if (cached >= 0)
        return cached;
    cached = 0;
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
        cached = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
    return cached;
}

/* Timestamps: wall-clock UTC ISO 8601 by default; BASISNET_LOG_CLOCK=monotonic prints seconds
 * since boot instead (for correlating with the kernel log). journald adds its own. Read on
 * every line: logging is not a hot path. */
static int log_clock_monotonic(void)
{
    const char *c = getenv("BASISNET_LOG_CLOCK");
    return c && strcmp(c, "monotonic") == 0;
}

void bn_log_stderr(bn_log_level level, const char *module, const char *msg, void *user)
{
    (void)user;
    static const int syslog_prio[] = {3, 4, 6, 7};
    static const char *const tags[] = {"E", "W", "I", "D"};
    char thread[16] = "";
    pthread_getname_np(pthread_self(), thread, sizeof thread);
    if (stderr_is_journal()) {
        fprintf(stderr, "<%d>%s[%s]: %s\n", syslog_prio[level], module, thread, msg);
        return;
    }
    struct timespec ts;
    char when[40];
    if (log_clock_monotonic()) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(when, sizeof when, "%6lld.%06ld", (long long)ts.tv_sec, ts.tv_nsec / 1000);
    } else {
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%06ldZ", ts.tv_nsec / 1000);
    }
    fprintf(stderr, "[%s] %s %s[%s]: %s\n", when, tags[level], module, thread, msg);
}
