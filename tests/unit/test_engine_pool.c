/* The session worker pool: every part of every job runs exactly once, on the caller or a worker,
 * whether the workers are spinning between jobs, asleep after an idle pause or held awake,
 * and a job started in the background is busy until its parts are done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "pool.h"

typedef struct {
    atomic_int ran[8];
    atomic_int calls;
    pthread_t who[8];
    int nparts_seen[8];
} job;

static void count(void *ctx, int part, int nparts)
{
    job *j = ctx;
    atomic_fetch_add(&j->ran[part], 1);
    atomic_fetch_add(&j->calls, 1);
    j->who[part] = pthread_self();
    j->nparts_seen[part] = nparts;
}

static void run_and_check(bn_pool *p, int parts, int threads)
{
    job j;
    memset(&j, 0, sizeof j);
    bn_pool_run(p, parts, count, &j);
    int want = parts < 1 ? 1 : parts > threads ? threads : parts;
    assert_int_equal(atomic_load(&j.calls), want);
    for (int i = 0; i < want; i++) {
        assert_int_equal(atomic_load(&j.ran[i]), 1);
        assert_int_equal(j.nparts_seen[i], want);
    }
    for (int i = want; i < 8; i++)
        assert_int_equal(atomic_load(&j.ran[i]), 0);
}

/* A part that takes about 100 us, so that a spinning worker has time to claim one. */
static void slow_count(void *ctx, int part, int nparts)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 100000);
    count(ctx, part, nparts);
}

/* Parts go to whoever claims them: over many jobs both the caller and a worker run parts
 * (a worker that is late leaves its part to the caller instead of making it wait). */
static void test_claimed_by_both(void **state)
{
    (void)state;
    bn_pool *p = bn_pool_new(2);
    assert_non_null(p);
    int by_caller = 0, by_worker = 0;
    for (int it = 0; it < 20000 && !(by_caller && by_worker); it++) {
        job j;
        memset(&j, 0, sizeof j);
        bn_pool_run(p, 2, slow_count, &j);
        assert_int_equal(atomic_load(&j.calls), 2);
        for (int i = 0; i < 2; i++) {
            if (pthread_equal(j.who[i], pthread_self()))
                by_caller++;
            else
                by_worker++;
        }
    }
    assert_true(by_caller > 0);
    assert_true(by_worker > 0);
    bn_pool_free(p);
}

static void test_parts_once(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 3; threads++) {
        bn_pool *p = bn_pool_new(threads);
        assert_non_null(p);
        assert_int_equal(bn_pool_threads(p), threads);
        for (int it = 0; it < 2000; it++)
            run_and_check(p, 1 + it % 4, threads);
        bn_pool_free(p);
    }
}

static void test_after_sleep(void **state)
{
    (void)state;
    bn_pool *p = bn_pool_new(2);
    assert_non_null(p);
    for (int round = 0; round < 3; round++) {
        struct timespec nap = {0, 120 * 1000 * 1000}; /* past the spin: workers are asleep */
        nanosleep(&nap, NULL);
        run_and_check(p, 2, 2);
    }
    bn_pool_free(p); /* joins sleeping workers */
}

/* A started job runs parts 1.. on the workers while the caller goes on: the job is busy
 * until its parts are done (here: until the caller lets them finish), then not; the caller
 * never runs part 0 of it; runs that follow reach the same workers. */
typedef struct {
    atomic_int go, ran[4], calls;
    pthread_t who[4];
} held_job;

static void held(void *ctx, int part, int nparts)
{
    (void)nparts;
    held_job *j = ctx;
    while (!atomic_load(&j->go))
        ;
    j->who[part] = pthread_self();
    atomic_fetch_add(&j->ran[part], 1);
    atomic_fetch_add(&j->calls, 1);
}

static void test_start_wait(void **state)
{
    (void)state;
    for (int threads = 2; threads <= 3; threads++) {
        bn_pool *p = bn_pool_new(threads);
        assert_non_null(p);
        for (int it = 0; it < 200; it++) {
            held_job j;
            memset(&j, 0, sizeof j);
            const int parts = 2 + it % 3, want = parts > threads ? threads : parts;
            assert_int_equal(bn_pool_start(p, parts, held, &j), 1);
            assert_true(bn_pool_busy(p)); /* the parts wait for go */
            atomic_store(&j.go, 1);
            bn_pool_wait(p);
            assert_false(bn_pool_busy(p));
            assert_int_equal(atomic_load(&j.ran[0]), 0);
            assert_int_equal(atomic_load(&j.calls), want - 1);
            for (int i = 1; i < want; i++) {
                assert_int_equal(atomic_load(&j.ran[i]), 1);
                assert_false(pthread_equal(j.who[i], pthread_self()));
            }
            run_and_check(p, threads, threads);
        }
        bn_pool_free(p);
    }
    /* no workers: nothing starts, nothing is busy */
    bn_pool *one = bn_pool_new(1);
    held_job j;
    memset(&j, 0, sizeof j);
    assert_int_equal(bn_pool_start(one, 2, held, &j), 0);
    assert_int_equal(bn_pool_start(NULL, 2, held, &j), 0);
    assert_false(bn_pool_busy(one));
    assert_false(bn_pool_busy(NULL));
    bn_pool_wait(one);
    bn_pool_wait(NULL);
    assert_int_equal(atomic_load(&j.calls), 0);
    bn_pool_free(one);
}

/* Holding the pool keeps its workers awake past the spin time and wakes sleeping ones; jobs
 * run the same held or not, hold toggles race with workers going to sleep without losing a
 * job, and a held pool frees (its workers exit). */
static void test_hold(void **state)
{
    (void)state;
    struct timespec nap = {0, 300 * 1000 * 1000}, blink = {0, 200 * 1000}; /* past / about the spin */
    for (int threads = 2; threads <= 3; threads++) {
        bn_pool *p = bn_pool_new(threads);
        assert_non_null(p);
        nanosleep(&nap, NULL); /* workers asleep */
        bn_pool_hold(p, 1);    /* wakes them */
        nanosleep(&nap, NULL); /* held: still awake */
        run_and_check(p, threads, threads);
        bn_pool_hold(p, 0);
        nanosleep(&nap, NULL);
        run_and_check(p, threads, threads);
        for (int it = 0; it < 300; it++) {
            bn_pool_hold(p, it & 1);
            if (it % 7 == 0)
                nanosleep(&blink, NULL);
            run_and_check(p, 1 + it % threads, threads);
        }
        bn_pool_hold(p, 1);
        bn_pool_free(p);
    }
    bn_pool_hold(NULL, 1);
    bn_pool *one = bn_pool_new(1);
    bn_pool_hold(one, 1);
    run_and_check(one, 2, 1);
    bn_pool_free(one);
}

static void test_null_pool(void **state)
{
    (void)state;
    run_and_check(NULL, 3, 1); /* runs inline as one part */
    bn_pool_free(NULL);
    assert_int_equal(bn_pool_threads(NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_once),
        cmocka_unit_test(test_after_sleep),
        cmocka_unit_test(test_claimed_by_both),
        cmocka_unit_test(test_start_wait),
        cmocka_unit_test(test_hold),
        cmocka_unit_test(test_null_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
