/* Per-client queue drop semantics (oldest dropped, never the message being written, loss
 * reported once in the next message), the count of unread replies, and the stats histograms
 * / Prometheus rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outqueue.h"
#include "stats.h"

static pub_msg *msg(int n)
{
    char line[64];
    int len = snprintf(line, sizeof line, "{\"type\":\"label\",\"seq\":%d}\n", n);
    return pub_msg_new(MSG_LABEL, line, (size_t)len);
}

/* Pops one whole message as a string. */
static char *pop(outqueue *q)
{
    static char out[256];
    size_t len;
    const char *p = outqueue_peek(q, &len);
    if (!p)
        return NULL;
    assert_true(len < sizeof out);
    memcpy(out, p, len);
    out[len] = '\0';
    outqueue_consume(q, len);
    return out;
}

static void test_fifo_within_capacity(void **state)
{
    (void)state;
    outqueue q;
    assert_true(outqueue_init(&q, 4));
    assert_true(outqueue_empty(&q));
    for (int i = 1; i <= 4; i++) {
        pub_msg *m = msg(i);
        outqueue_push(&q, m);
        pub_msg_unref(m);
    }
    assert_int_equal(outqueue_count(&q), 4);
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":1}\n");
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":2}\n");
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":3}\n");
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":4}\n");
    assert_null(pop(&q));
    assert_true(outqueue_empty(&q));
    assert_int_equal(q.lost_total, 0);
    outqueue_destroy(&q);
    assert_false(outqueue_init(&q, 0));
}

static void test_drop_oldest_and_report(void **state)
{
    (void)state;
    outqueue q;
    assert_true(outqueue_init(&q, 3));
    for (int i = 1; i <= 10; i++) {
        pub_msg *m = msg(i);
        outqueue_push(&q, m);
        pub_msg_unref(m);
    }
    assert_int_equal(q.lost_total, 7);
    /* the survivors are the newest three; the first carries the loss, once */
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":8,\"lost\":7}\n");
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":9}\n");
    pub_msg *m = msg(11);
    outqueue_push(&q, m);
    pub_msg_unref(m);
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":10}\n");
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":11}\n");
    assert_null(pop(&q));
    outqueue_destroy(&q);
}

static void test_partial_write_is_never_dropped(void **state)
{
    (void)state;
    outqueue q;
    assert_true(outqueue_init(&q, 2));
    pub_msg *m = msg(1);
    outqueue_push(&q, m);
    pub_msg_unref(m);
    size_t len;
    const char *p = outqueue_peek(&q, &len);
    assert_non_null(p);
    outqueue_consume(&q, 5);     /* socket took 5 bytes */
    for (int i = 2; i <= 6; i++) {
        m = msg(i);
        outqueue_push(&q, m);
        pub_msg_unref(m);
    }
    /* the rest of message 1 comes first, byte-exact */
    p = outqueue_peek(&q, &len);
    assert_int_equal(len, strlen("{\"type\":\"label\",\"seq\":1}\n") - 5);
    assert_memory_equal(p, "{\"type\":\"label\",\"seq\":1}\n" + 5, len);
    outqueue_consume(&q, len);
    assert_int_equal(q.lost_total, 3);  /* 2, 3, 4 */
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":5,\"lost\":3}\n");
    assert_string_equal(pop(&q), "{\"type\":\"label\",\"seq\":6}\n");
    outqueue_destroy(&q);
}

/* replies and reply_bytes follow what is queued and unwritten: pushes, partial writes, a
 * "lost" splice into a reply, and replies dropped as the oldest */
static void test_reply_accounting(void **state)
{
    (void)state;
    outqueue q;
    assert_true(outqueue_init(&q, 3));
    const char *r = "{\"type\":\"reply\",\"ok\":true}\n";
    size_t rl = strlen(r);
    pub_msg *rep = pub_msg_new(MSG_REPLY, r, rl), *lab = msg(1);
    outqueue_push(&q, rep);
    outqueue_push(&q, lab);
    outqueue_push(&q, rep);
    assert_int_equal(q.replies, 2);
    assert_int_equal(q.reply_bytes, 2 * rl);
    size_t len;
    assert_non_null(outqueue_peek(&q, &len));   /* the first reply is being written */
    outqueue_consume(&q, 4);
    assert_int_equal(q.replies, 2);
    assert_int_equal(q.reply_bytes, 2 * rl - 4);
    outqueue_consume(&q, len - 4);
    assert_int_equal(q.replies, 1);
    assert_int_equal(q.reply_bytes, rl);
    /* the queue is full again: the label (oldest) and then the queued reply are dropped */
    outqueue_push(&q, lab);
    outqueue_push(&q, lab);
    assert_int_equal(q.replies, 1);
    outqueue_push(&q, lab);
    assert_int_equal(q.replies, 0);
    assert_int_equal(q.reply_bytes, 0);
    outqueue_destroy(&q);
    /* a reply that carries "lost": its longer length is what is counted */
    assert_true(outqueue_init(&q, 1));
    outqueue_push(&q, rep);
    outqueue_push(&q, rep);
    assert_int_equal(q.replies, 1);
    const char *p = outqueue_peek(&q, &len);
    assert_non_null(p);
    assert_int_equal(len, rl + strlen(",\"lost\":1"));
    assert_int_equal(q.reply_bytes, len);
    outqueue_consume(&q, len);
    assert_int_equal(q.replies, 0);
    assert_int_equal(q.reply_bytes, 0);
    pub_msg_unref(rep);
    pub_msg_unref(lab);
    outqueue_destroy(&q);
}

static void test_shared_message_refcount(void **state)
{
    (void)state;
    outqueue a, b;
    assert_true(outqueue_init(&a, 1));
    assert_true(outqueue_init(&b, 1));
    pub_msg *m = msg(1);
    outqueue_push(&a, m);
    outqueue_push(&b, m);
    assert_int_equal(m->refs, 3);
    pub_msg *m2 = msg(2);
    outqueue_push(&a, m2);       /* a drops m */
    assert_int_equal(m->refs, 2);
    /* b's copy is untouched by a's loss */
    assert_string_equal(pop(&b), "{\"type\":\"label\",\"seq\":1}\n");
    assert_int_equal(m->refs, 1);
    assert_string_equal(pop(&a), "{\"type\":\"label\",\"seq\":2,\"lost\":1}\n");
    pub_msg_unref(m);
    pub_msg_unref(m2);
    outqueue_destroy(&a);
    outqueue_destroy(&b);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    latency_hist h = {0};
    latency_hist_observe(&h, 0.1);      /* on the bound: le=0.1 */
    latency_hist_observe(&h, 0.11);     /* next bucket */
    latency_hist_observe(&h, 1e9);      /* +Inf */
    latency_hist_observe(&h, -5);       /* clamped to 0 */
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 1);
    assert_int_equal(h.counts[STATS_NBUCKETS], 1);
    assert_int_equal(h.n, 4);
    assert_float_equal(h.max_ms, 1e9, 0);
    for (int i = 1; i < STATS_NBUCKETS; i++)
        assert_true(stats_bucket_bound_ms(i) > stats_bucket_bound_ms(i - 1));
}

static void test_stats_frames_and_quantiles(void **state)
{
    (void)state;
    daemon_stats *s = malloc(sizeof *s);
    stats_init(s);
    for (int i = 1; i <= 100; i++)
        stats_observe_frame(s, i % 4 == 0 ? 1 : 0, i == 50, 1.0, i % 4 == 0 ? 0.5 : 0,
                            i % 4 == 0 ? 3.0 : 0, (double)i, 10.0);
    assert_int_equal(s->classified, 100);
    assert_int_equal(s->specialist, 25);
    assert_int_equal(s->deadline, 1);
    assert_float_equal(stats_exit_share(s), 0.75, 1e-12);
    assert_int_equal(s->hist[LAT_SPECIALIST].n, 25);
    assert_int_equal(s->hist[LAT_LIGHT].n, 100);
    assert_float_equal(stats_recent_quantile(s, 0.5), 50, 0);
    assert_float_equal(stats_recent_quantile(s, 0.99), 99, 0);
    assert_float_equal(stats_recent_quantile(s, 1.0), 100, 0);
    /* 300 frames the gate reused: not classified, no stage latency, a share of 3/4 */
    for (int i = 0; i < 300; i++) {
        stats_observe_gate(s, GATE_CLOSED, 0.004);
        stats_observe_reuse(s, 2.0);
    }
    /* and the gate's verdicts on the classified frames: why each one ran the engine */
    for (int i = 0; i < 100; i++)
        stats_observe_gate(s, i < 3 ? GATE_OPEN_START : i < 40 ? GATE_OPEN_AREA
                               : i < 60 ? GATE_OPEN_CONFIRM : GATE_OPEN_UNSURE, 0.004);
    json_t *verdicts = stats_gate_verdicts_json(s);
    assert_int_equal(json_object_size(verdicts), GATE_VERDICTS);
    assert_int_equal(json_integer_value(json_object_get(verdicts, "closed")), 300);
    assert_int_equal(json_integer_value(json_object_get(verdicts, "start")), 3);
    assert_int_equal(json_integer_value(json_object_get(verdicts, "area")), 37);
    assert_int_equal(json_integer_value(json_object_get(verdicts, "confirm")), 20);
    assert_int_equal(json_integer_value(json_object_get(verdicts, "unsure")), 40);
    assert_int_equal(json_integer_value(json_object_get(verdicts, "refresh")), 0);
    assert_int_equal(s->classified, 100);
    assert_int_equal(s->gate_reused, 300);
    assert_int_equal(stats_frames_published(s), 400);
    assert_float_equal(stats_gate_reused_share(s), 0.75, 1e-12);
    assert_int_equal(s->hist[LAT_LIGHT].n, 100);
    assert_int_equal(s->hist[LAT_TOTAL].n, 100);
    assert_int_equal(s->hist[LAT_GATE].n, 400);
    assert_int_equal(s->hist[LAT_CAPTURE_TO_PUBLISH].n, 400);
    assert_float_equal(stats_exit_share(s), 0.75, 1e-12);
    s->synth_layers = 40;
    s->synth_reused = 10;
    assert_float_equal(stats_synth_reused_share(s), 0.25, 1e-12);

    /* Prometheus rendering of a stats object built the way the daemon builds it */
    json_t *st = json_pack("{s:s, s:{s:I, s:I, s:I, s:I, s:f}, s:{s:I, s:b}, s:f, s:o}", "camera", "door\"1",
                           "frames", "classified", (json_int_t)100, "light", (json_int_t)75,
                           "specialist", (json_int_t)25, "gate_reused", (json_int_t)300,
                           "gate_reused_share", 0.75, "source", "frames_in", (json_int_t)120,
                           "up", 1,
                           "exit_share", 0.75, "latency_ms", stats_latency_json(s));
    json_object_set_new(st, "gate", json_pack("{s:s, s:o}", "mode", "auto", "verdicts", verdicts));
    char *txt = stats_to_prometheus(st);
    assert_non_null(txt);
    assert_non_null(strstr(txt, "# TYPE basisnetd_frames_classified_total counter\n"
                                "basisnetd_frames_classified_total{camera=\"door\\\"1\"} 100\n"));
    assert_non_null(strstr(txt, "basisnetd_frames_in_total{camera=\"door\\\"1\"} 120\n"));
    assert_non_null(strstr(txt, "basisnetd_exit_share{camera=\"door\\\"1\"} 0.75\n"));
    assert_non_null(strstr(txt, "basisnetd_source_up{camera=\"door\\\"1\"} 1\n")); /* bool */
    assert_non_null(strstr(txt, "# TYPE basisnetd_latency_seconds histogram\n"));
    /* cumulative: 100 light samples of 1 ms are all at or below le=0.001 s */
    assert_non_null(strstr(txt, "basisnetd_latency_seconds_bucket{camera=\"door\\\"1\",stage=\"light\",le=\"0.001\"} 100\n"));
    assert_non_null(strstr(txt, "basisnetd_latency_seconds_bucket{camera=\"door\\\"1\",stage=\"light\",le=\"+Inf\"} 100\n"));
    assert_non_null(strstr(txt, "basisnetd_latency_seconds_count{camera=\"door\\\"1\",stage=\"specialist\"} 25\n"));
    /* total latencies 1..100 ms: 10 at or below 10 ms, 50 at or below 50 ms */
    assert_non_null(strstr(txt, "stage=\"total\",le=\"0.01\"} 10\n"));
    assert_non_null(strstr(txt, "stage=\"total\",le=\"0.05\"} 50\n"));
    assert_non_null(strstr(txt, "# TYPE basisnetd_gate_reused_total counter\n"
                                "basisnetd_gate_reused_total{camera=\"door\\\"1\"} 300\n"));
    assert_non_null(strstr(txt, "basisnetd_gate_reused_share{camera=\"door\\\"1\"} 0.75\n"));
    assert_non_null(strstr(txt, "basisnetd_latency_seconds_count{camera=\"door\\\"1\",stage=\"gate\"} 400\n"));
    assert_non_null(strstr(txt, "# TYPE basisnetd_gate_decisions_total counter\n"
                                "basisnetd_gate_decisions_total{camera=\"door\\\"1\",verdict=\"closed\"} 300\n"));
    assert_non_null(strstr(txt, "basisnetd_gate_decisions_total{camera=\"door\\\"1\",verdict=\"unsure\"} 40\n"));
    assert_non_null(strstr(txt, "basisnetd_gate_decisions_total{camera=\"door\\\"1\",verdict=\"confirm\"} 20\n"));
    assert_non_null(strstr(txt, "basisnetd_gate_decisions_total{camera=\"door\\\"1\",verdict=\"refresh\"} 0\n"));
    assert_null(strstr(txt, "basisnetd_frames_per_second"));  /* absent members are skipped */
    assert_null(strstr(txt, "basisnetd_stable_label"));
    free(txt);

    /* Prometheus conventions: no float noise, seconds, the budget left out while it is off
     * (a 0 would read as a budget of nothing), names as labels of a gauge of 1 */
    json_object_set_new(st, "threshold", json_real(0.0472));
    json_object_set_new(st, "fps", json_real(29.97));
    json_object_set_new(st, "stable", json_string("Ankle \"boot\""));
    json_object_set_new(st, "budget", json_pack("{s:s, s:f, s:f}", "mode", "off", "latency_ms",
                                                50.0, "mean_ms", 0.123));
    txt = stats_to_prometheus(st);
    assert_non_null(strstr(txt, "basisnetd_threshold{camera=\"door\\\"1\"} 0.0472\n"));
    assert_non_null(strstr(txt, "basisnetd_frames_per_second{camera=\"door\\\"1\"} 29.97\n"));
    assert_non_null(strstr(txt, "basisnetd_stable_label{camera=\"door\\\"1\",label=\"Ankle \\\"boot\\\"\"} 1\n"));
    assert_non_null(strstr(txt, "basisnetd_budget_mode{camera=\"door\\\"1\",mode=\"off\"} 1\n"));
    assert_null(strstr(txt, "basisnetd_budget_seconds"));
    assert_null(strstr(txt, "basisnetd_budget_mean_seconds"));
    assert_null(strstr(txt, "99999"));  /* no %.17g noise anywhere */
    assert_null(strstr(txt, "00000000"));
    free(txt);
    json_object_set_new(json_object_get(st, "budget"), "mode", json_string("mean"));
    txt = stats_to_prometheus(st);
    assert_non_null(strstr(txt, "# TYPE basisnetd_budget_seconds gauge\n"
                                "basisnetd_budget_seconds{camera=\"door\\\"1\"} 0.05\n"));
    assert_non_null(strstr(txt, "basisnetd_budget_mean_seconds{camera=\"door\\\"1\"} 0.000123\n"));
    free(txt);
    json_decref(st);
    assert_null(stats_to_prometheus(NULL));
    json_t *empty = json_object();
    assert_null(stats_to_prometheus(empty));
    json_decref(empty);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_within_capacity),
        cmocka_unit_test(test_drop_oldest_and_report),
        cmocka_unit_test(test_partial_write_is_never_dropped),
        cmocka_unit_test(test_reply_accounting),
        cmocka_unit_test(test_shared_message_refcount),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_stats_frames_and_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
