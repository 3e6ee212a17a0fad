/* A persistent worker pool for one session: bn_pool_run calls fn(ctx, part, nparts) once for
 * each part 0..nparts-1, on the caller or a parked worker (whichever claims it first), and
 * returns when all parts are done; bn_pool_start runs parts 1.. on the workers while the
 * caller goes on. Workers
 * spin briefly between jobs, then sleep on a condition variable (idle cores cost no CPU
 * time). A pool of 1 thread runs everything on the caller. */
#ifndef BN_POOL_H
#define BN_POOL_H

typedef struct bn_pool bn_pool;
typedef void (*bn_pool_fn)(void *ctx, int part, int nparts);

/* One iteration of a spin-wait loop (the pause hint on x86). */
static inline void bn_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* NULL on failure (then callers run single-threaded). threads <= 1 gives a 1-thread pool. */
bn_pool *bn_pool_new(int threads);
void bn_pool_free(bn_pool *p);
int bn_pool_threads(const bn_pool *p);
/* Runs fn on min(parts, threads) parts; parts <= 1 (or p == NULL) runs fn(ctx, 0, 1) inline. */
void bn_pool_run(bn_pool *p, int parts, bn_pool_fn fn, void *ctx);

/* Starts parts 1..min(parts, threads)-1 of fn on the workers and returns at once (part 0 is
 * not run: the caller does other work meanwhile; one worker may run several parts). Returns 0, starting nothing, when the
 * pool has no workers or parts < 2. Until bn_pool_wait returns (or bn_pool_busy reads 0)
 * the caller must not start or run another job. */
int bn_pool_start(bn_pool *p, int parts, bn_pool_fn fn, void *ctx);
/* 1 while a started job's parts are still running. */
int bn_pool_busy(const bn_pool *p);
/* Waits until the started job's parts are done. */
void bn_pool_wait(bn_pool *p);
/* on: the workers stay awake (spinning) until hold is turned off, and sleeping ones are woken
 * now, so that the jobs of an inference about to run do not each wait for a wake-up (the
 * session holds its pool through each stage); off: they spin for the usual time after
 * their last job and then sleep. */
void bn_pool_hold(bn_pool *p, int on);

#endif
