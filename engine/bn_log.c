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

void bn_log_stderr(bn_log_level level, const char *module, const char *msg, void *user)
{
    (void)user;
    static const int syslog_prio[] = {3, 4, 6, 7};
    static const char *const tags[] = {"E", "W", "I", "D"};
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char thread[16] = "";
    pthread_getname_np(pthread_self(), thread, sizeof thread);
    if (stderr_is_journal())
        fprintf(stderr, "<%d>%s[%s]: %s\n", syslog_prio[level], module, thread, msg);
    else
        fprintf(stderr, "[%6lld.%06ld] %s %s[%s]: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000,
                tags[level], module, thread, msg);
}
