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

static void *make_mutex(void)
{
    pthread_mutex_t *p = malloc(sizeof *p);
    if (!p)
        die("malloc", 12);
    pthread_mutex_init(p, NULL);
    return p;
}

static void free_mutex(void *p)
{
    pthread_mutex_destroy(p);
    free(p);
}

static void *make_cond(void)
{
    pthread_cond_t *p = malloc(sizeof *p);
    if (!p)
        die("malloc", 12);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC); /* g_cond_wait_until's clock */
    pthread_cond_init(p, &a);
    pthread_condattr_destroy(&a);
    return p;
}

static void free_cond(void *p)
{
    pthread_cond_destroy(p);
    free(p);
}

/* The pthread object behind *slot, made on first use; two threads racing to make it keep
 * the first one stored. */
static void *lazy(gpointer *slot, void *(*make)(void), void (*unmake)(void *))
{
    void *p = g_atomic_pointer_get(slot);
    if (p)
        return p;
    p = make();
    if (!g_atomic_pointer_compare_and_exchange(slot, NULL, p)) {
        unmake(p);
        p = g_atomic_pointer_get(slot);
    }
    return p;
}

#define mutex_of(m) ((pthread_mutex_t *)lazy(&(m)->p, make_mutex, free_mutex))
#define cond_of(c) ((pthread_cond_t *)lazy(&(c)->p, make_cond, free_cond))

void bn_tsan_mutex_init(GMutex *m)
{
    m->p = make_mutex();
}

static void clear_slot(gpointer *slot, void (*unmake)(void *))
{
    if (*slot)
        unmake(*slot);
    *slot = NULL;
}

void bn_tsan_mutex_clear(GMutex *m)
{
    clear_slot(&m->p, free_mutex);
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
    c->p = make_cond();
}

void bn_tsan_cond_clear(GCond *c)
{
    clear_slot(&c->p, free_cond);
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
