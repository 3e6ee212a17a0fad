/* Session worker pool (pool.h). The caller publishes a job (fn, ctx, parts), bumps the atomic
 * generation (which carries the job's number and part count), and then it and the workers
 * claim the parts one by one from an atomic claim word and run them, each part counting
 * down `pending`, which the caller waits on (bn_pool_start leaves the claiming to the
 * workers, from part 1, and bn_pool_wait waits). Claiming instead of a fixed part per
 * thread matters when another process holds a core: the caller then runs the parts a
 * worker has not been scheduled to claim, instead of waiting a time slice for it. Between
 * jobs a worker spins on the generation for up to SPIN_NS (the layers of one inference
 * follow each other within microseconds; the gaps where only the caller works, such as
 * squeeze-excite and the head's matrix-vector products, last up to ~0.2 ms; waking a
 * sleeping worker took 37-46 us here, on a VM) and then sleeps on a condition variable, so
 * an idle pool costs no CPU time. `sleepers` tells the caller whether a
 * wake-up is needed; both sides use sequentially consistent atomics, so a worker going to
 * sleep either sees the new generation or is counted in `sleepers` before the caller looks
 * (and the same for `hold`). While the pool is held (bn_pool_hold) the workers do not sleep. */
#include "pool.h"

#include "engine_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SPIN_NS 200000u

struct bn_pool {
    int threads; /* including the caller */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_ulong gen;   /* job word: (job number << 16) | parts of that job */
    atomic_ulong claim; /* (job number << 16) | next part to claim */
    atomic_int sleepers, pending, stop, hold;
    unsigned long jobs;   /* jobs published (caller only) */
    bn_pool_fn fn;
    void *ctx;
};

/* Returns the next generation after `seen`: spins, without a time limit while the pool is
 * held (bn_pool_hold), then sleeps until a job or a hold comes. */
static unsigned long wait_job(struct bn_pool *p, unsigned long seen)
{
    for (;;) {
        uint64_t t0 = bn_now_ns();
        for (int i = 0;; i++) {
            unsigned long g = atomic_load(&p->gen);
            if (g != seen)
                return g;
            bn_cpu_relax();
            if ((i & 63) == 63) {
                if (atomic_load(&p->hold))
                    t0 = bn_now_ns();
                else if (bn_now_ns() - t0 > SPIN_NS)
                    break;
            }
        }
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->sleepers, 1);
        unsigned long g;
        while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->hold))
            pthread_cond_wait(&p->wake, &p->mu);
        atomic_fetch_sub(&p->sleepers, 1);
        pthread_mutex_unlock(&p->mu);
        if (g != seen)
            return g;
    }
}

void bn_pool_hold(bn_pool *p, int on)
{
    if (!p || p->threads < 2)
        return;
    atomic_store(&p->hold, on ? 1 : 0);
    if (on && atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Claims the parts of job `job` one by one (the claim word carries the job number, so a
 * claim for a job that is over fails) and runs them, until none is left. */
static void run_parts(bn_pool *p, unsigned long job, int parts)
{
    for (;;) {
        unsigned long c = atomic_load(&p->claim);
        if ((c >> 16) != job || (int)(c & 0xffff) >= parts)
            return;
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1))
            continue;
        p->fn(p->ctx, (int)(c & 0xffff), parts); /* fn, ctx: this job's until its parts are done */
        atomic_fetch_sub(&p->pending, 1);
    }
}

static void *worker_main(void *arg)
{
    struct bn_pool *p = arg;
    unsigned long seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (atomic_load(&p->stop))
            break;
        /* the job number and part count come with the generation they belong to: a worker
         * scheduled late claims nothing of a later job under an earlier job's count */
        run_parts(p, seen >> 16, (int)(seen & 0xffff));
    }
    return NULL;
}

static void publish(bn_pool *p, int parts)
{
    p->jobs++;
    atomic_store(&p->gen, (p->jobs << 16) | (unsigned long)parts);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

bn_pool *bn_pool_new(int threads)
{
    bn_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = 1;
    if (threads <= 1)
        return p;
    p->tid = calloc((size_t)threads, sizeof *p->tid);
    if (!p->tid || pthread_mutex_init(&p->mu, NULL)) {
        free(p->tid), free(p);
        return NULL;
    }
    pthread_cond_init(&p->wake, NULL);
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&p->tid[i], NULL, worker_main, p))
            break; /* fewer workers: the pool still works with those that started */
        p->threads = i + 1;
    }
    return p;
}

void bn_pool_free(bn_pool *p)
{
    if (!p)
        return;
    if (p->tid) {
        atomic_store(&p->stop, 1);
        publish(p, 0);
        for (int i = 1; i < p->threads; i++)
            pthread_join(p->tid[i], NULL);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
    }
    free(p->tid);
    free(p);
}

int bn_pool_threads(const bn_pool *p) { return p ? p->threads : 1; }

/* Parts in [2, threads] (callers clamp): publishes the job, its parts first.. to claim. */
static void start(bn_pool *p, int parts, int first, bn_pool_fn fn, void *ctx)
{
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, parts - first);
    atomic_store(&p->claim, ((p->jobs + 1) << 16) | (unsigned long)first);
    publish(p, parts);
}

void bn_pool_wait(bn_pool *p)
{
    if (!p)
        return;
    for (int i = 0; atomic_load(&p->pending) > 0; i++) {
        bn_cpu_relax();
        if ((i & 1023) == 1023)
            sched_yield(); /* a worker was descheduled: let it run */
    }
}

int bn_pool_busy(const bn_pool *p) { return p && atomic_load(&p->pending) > 0; }

int bn_pool_start(bn_pool *p, int parts, bn_pool_fn fn, void *ctx)
{
    if (!p || p->threads < 2 || parts < 2)
        return 0;
    if (parts > p->threads)
        parts = p->threads;
    start(p, parts, 1, fn, ctx);
    return 1;
}

void bn_pool_run(bn_pool *p, int parts, bn_pool_fn fn, void *ctx)
{
    if (!p || parts > p->threads)
        parts = p ? p->threads : 1;
    if (parts <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    start(p, parts, 0, fn, ctx);
    run_parts(p, p->jobs, parts); /* the caller claims parts too: a worker that is not
                                   * scheduled yet delays only a part it has claimed */
    bn_pool_wait(p);
}
