/* pthread-based GMutex and GCond for the ThreadSanitizer build (see glib_tsan.h): each
 * object keeps a pointer to its pthread object in GMutex.p / GCond.p, created at init or,
 * for a zero-initialised one, at first use (as GLib's own pthread fallback does). */
#include "tests/tsan/glib_tsan.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(const char *what, int rc)
{
    fprintf(stderr, "glib_tsan: %s: %s\n", what, strerror(rc));
    abort();
}

static pthread_mutex_t *mutex_of(GMutex *m)
{
    pthread_mutex_t *p = g_atomic_pointer_get(&m->p);
    if (p)
        return p;
    p = malloc(sizeof *p);
    if (!p)
        die("malloc", 12);
    pthread_mutex_init(p, NULL);
    if (!g_atomic_pointer_compare_and_exchange(&m->p, NULL, p)) {
        pthread_mutex_destroy(p);
        free(p);
        p = g_atomic_pointer_get(&m->p);
    }
    return p;
}

static pthread_cond_t *cond_of(GCond *c)
{
    pthread_cond_t *p = g_atomic_pointer_get(&c->p);
    if (p)
        return p;
    p = malloc(sizeof *p);
    if (!p)
        die("malloc", 12);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC); /* g_cond_wait_until's clock */
    pthread_cond_init(p, &a);
    pthread_condattr_destroy(&a);
    if (!g_atomic_pointer_compare_and_exchange(&c->p, NULL, p)) {
        pthread_cond_destroy(p);
        free(p);
        p = g_atomic_pointer_get(&c->p);
    }
    return p;
}

void bn_tsan_mutex_init(GMutex *m)
{
    m->p = NULL;
    (void)mutex_of(m);
}

void bn_tsan_mutex_clear(GMutex *m)
{
    pthread_mutex_t *p = m->p;
    if (p) {
        pthread_mutex_destroy(p);
        free(p);
    }
    m->p = NULL;
}

void bn_tsan_mutex_lock(GMutex *m)
{
    int rc = pthread_mutex_lock(mutex_of(m));
    if (rc)
        die("pthread_mutex_lock", rc);
}

void bn_tsan_mutex_unlock(GMutex *m)
{
    int rc = pthread_mutex_unlock(mutex_of(m));
    if (rc)
        die("pthread_mutex_unlock", rc);
}

gboolean bn_tsan_mutex_trylock(GMutex *m)
{
    return pthread_mutex_trylock(mutex_of(m)) == 0;
}

void bn_tsan_cond_init(GCond *c)
{
    c->p = NULL;
    (void)cond_of(c);
}

void bn_tsan_cond_clear(GCond *c)
{
    pthread_cond_t *p = c->p;
    if (p) {
        pthread_cond_destroy(p);
        free(p);
    }
    c->p = NULL;
}

void bn_tsan_cond_wait(GCond *c, GMutex *m)
{
    int rc = pthread_cond_wait(cond_of(c), mutex_of(m));
    if (rc)
        die("pthread_cond_wait", rc);
}

gboolean bn_tsan_cond_wait_until(GCond *c, GMutex *m, gint64 end_time)
{
    /* end_time is g_get_monotonic_time()'s: CLOCK_MONOTONIC in microseconds */
    struct timespec ts = {.tv_sec = end_time / 1000000, .tv_nsec = (end_time % 1000000) * 1000};
    int rc = pthread_cond_timedwait(cond_of(c), mutex_of(m), &ts);
    return rc == 0;
}

void bn_tsan_cond_signal(GCond *c)
{
    pthread_cond_signal(cond_of(c));
}

void bn_tsan_cond_broadcast(GCond *c)
{
    pthread_cond_broadcast(cond_of(c));
}
