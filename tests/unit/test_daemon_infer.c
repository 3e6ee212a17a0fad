/* The inference thread's result queue: when nobody drains it, results are dropped, but every
 * frame stays accounted for. The real thread runs on the real engine (the random fixture
 * model); the capture is a stub defined here (the linker then leaves pipeline/capture.o out),
 * so the frames, their source drops and the failures are exactly known. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "budget.h"
#include "infer.h"

#define TINY "tests/fixtures/random-tiny.bnm"
#define MAX_FRAMES 512

/* ---- the capture stub: frames 1..n, frame i preceded by drops[i] source drops --------- */
static struct {
    int n, next;
    uint64_t drops[MAX_FRAMES + 1];
    bool bad[MAX_FRAMES + 1];   /* a frame the engine refuses (stride too small) */
    uint8_t *pixels;
    int width, height, channels;
} cap;

bn_status capture_pull(capture *c, capture_frame *fr, int timeout_ms)
{
    (void)c;
    (void)timeout_ms;
    memset(fr, 0, sizeof *fr);
    if (g_atomic_int_get(&cap.next) >= cap.n) {
        g_usleep(1000); /* as a real pull waits for a frame */
        return BN_ERR_TIMEOUT;
    }
    int i = g_atomic_int_add(&cap.next, 1) + 1;
    fr->data = cap.pixels;
    fr->width = cap.width;
    fr->height = cap.height;
    fr->channels = cap.channels;
    fr->stride = cap.bad[i] ? 1 : (size_t)cap.width * (size_t)cap.channels;
    fr->seq = (uint64_t)i;
    fr->dropped = cap.drops[i];
    return BN_OK;
}

void capture_release(capture *c, capture_frame *fr)
{
    (void)c;
    memset(fr, 0, sizeof *fr);
}

/* Frames the source delivered up to and including pulled frame i. */
static uint64_t delivered_through(int i)
{
    uint64_t n = 0;
    for (int k = 1; k <= i; k++)
        n += 1 + cap.drops[k];
    return n;
}

typedef struct {
    bn_model *model;
    bn_session *session;
} engine;

static int setup(void **state)
{
    engine *e = calloc(1, sizeof *e);
    char err[512];
    assert_int_equal(bn_model_open(TINY, &e->model, err, sizeof err), BN_OK);
    assert_int_equal(bn_session_new(e->model, (bn_session_params){.threads = 1}, &e->session, err,
                                    sizeof err),
                     BN_OK);
    const bn_model_info *mi = bn_model_get_info(e->model);
    memset(&cap, 0, sizeof cap);
    cap.width = mi->width;
    cap.height = mi->height;
    cap.channels = mi->channels;
    cap.pixels = calloc((size_t)mi->width * mi->height * mi->channels, 1);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    engine *e = *state;
    bn_session_free(e->session);
    bn_model_close(e->model);
    free(cap.pixels);
    free(e);
    return 0;
}

/* Runs the thread over every stub frame with nobody draining (a stalled event loop), then
 * drains the queue; returns how many results came out into out[]. */
static int run_undrained(engine *e, int queue, infer_result *out, uint64_t *results_dropped)
{
    budget_params bp;
    budget_params_init(&bp);
    bp.mode = BUDGET_OFF;
    budget_ctl *b = NULL;
    char err[256];
    assert_int_equal(budget_new(&bp, &b, err, sizeof err), BN_OK);
    infer_params ip = {.cap = (capture *)&cap, .session = e->session, .budget = b, .queue = queue};
    infer *in = NULL;
    assert_int_equal(infer_start(&ip, &in, err, sizeof err), BN_OK);
    /* once the last frame is pulled, stopping (a join) lets the thread push its result */
    for (int waited = 0; g_atomic_int_get(&cap.next) < cap.n && waited < 30000; waited++)
        g_usleep(1000);
    assert_int_equal(g_atomic_int_get(&cap.next), cap.n);  /* pulled every frame within 30 s */
    infer_stop(in);
    bool eos;
    int n = 0;
    for (int k; (k = infer_drain(in, out + n, MAX_FRAMES - n, &eos)) > 0;)
        n += k;
    *results_dropped = infer_results_dropped(in);
    infer_free(in);
    return n;
}

/* The label invariant of docs/protocol.md: for the k-th result (its label's seq k), k plus
 * the dropped counts of results 1..k equals the frames the source delivered up to that
 * result's frame. */
static void assert_every_frame_accounted(const infer_result *r, int n)
{
    uint64_t accounted = 0;
    for (int k = 0; k < n; k++) {
        accounted += 1 + r[k].dropped;
        uint64_t want = delivered_through((int)r[k].frame_seq);
        if (accounted != want)
            fail_msg("result %d (frame %llu): seq + dropped_frames = %llu, frames delivered %llu",
                     k + 1, (unsigned long long)r[k].frame_seq, (unsigned long long)accounted,
                     (unsigned long long)want);
    }
}

static void test_full_queue_drops_are_counted_in_the_next_result(void **state)
{
    engine *e = *state;
    cap.n = 300;
    for (int i = 1; i <= cap.n; i++)
        cap.drops[i] = (uint64_t)(i % 4);   /* source drops too, carried by every result */
    static infer_result out[MAX_FRAMES];
    uint64_t dropped = 0;
    int n = run_undrained(e, 8, out, &dropped);
    assert_int_equal(n, 8);                 /* the queue kept the newest 8 */
    assert_int_equal(dropped, cap.n - 8);
    assert_int_equal(out[n - 1].frame_seq, cap.n);
    assert_every_frame_accounted(out, n);
    /* the first result out stands for every frame before it */
    assert_int_equal(1 + out[0].dropped, delivered_through((int)out[0].frame_seq));
}

static void test_one_slot_queue(void **state)
{
    engine *e = *state;
    cap.n = 50;
    for (int i = 1; i <= cap.n; i++)
        cap.drops[i] = i == 7 ? 5 : 0;
    static infer_result out[MAX_FRAMES];
    uint64_t dropped = 0;
    int n = run_undrained(e, 1, out, &dropped);
    assert_int_equal(n, 1);
    assert_int_equal(dropped, cap.n - 1);
    assert_int_equal(out[0].dropped, delivered_through(cap.n) - 1);
}

static void test_frames_the_engine_failed_on_are_counted(void **state)
{
    engine *e = *state;
    cap.n = 40;
    for (int i = 1; i <= cap.n; i++) {
        cap.drops[i] = i % 3 == 0 ? 2 : 0;
        cap.bad[i] = i % 5 == 0 || (i >= 30 && i <= 33);
    }
    cap.bad[cap.n] = false;
    static infer_result out[MAX_FRAMES];
    uint64_t dropped = 0;
    int n = run_undrained(e, 64, out, &dropped);
    assert_int_equal(dropped, 0);
    int bad = 0;
    for (int i = 1; i <= cap.n; i++)
        bad += cap.bad[i];
    assert_int_equal(n, cap.n - bad);
    assert_every_frame_accounted(out, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_queue_drops_are_counted_in_the_next_result,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_slot_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_the_engine_failed_on_are_counted, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
