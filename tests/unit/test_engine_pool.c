/* The session worker pool: every part of every job runs exactly once, on distinct threads,
 * whether the workers are spinning between jobs or asleep after an idle pause. */
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
        for (int k = 0; k < i; k++)
            assert_false(pthread_equal(j.who[i], j.who[k]));
    }
    assert_true(pthread_equal(j.who[0], pthread_self())); /* the caller runs part 0 */
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
        cmocka_unit_test(test_null_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
