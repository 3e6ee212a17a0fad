/* The budget controller replayed on stage times recorded from the daemon
 * (tests/fixtures/budget-trace.csv: the shipped model on the sample clip, mean mode), with
 * the shipped model's own validation light confidences shown in 15-frame runs as the clip
 * shows each image. The real contention run (`make budget-check`, bench/budget/contention.sh)
 * depends on the machine's load; this test does not. It keeps that benchmark's claim
 * deterministically: every 100-frame window's mean latency stays within budget + 10%, on the
 * times as recorded and with the frames recorded under stress-ng made a further 1.4x dearer
 * (a cost step), where the threshold must also drop. Known limit: an instantaneous step of
 * 1.6x overspends one window by ~15% (the cost estimates lag the step; BUDGET_REPLAY_TRACE=1
 * prints every window). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "basisnet.h"
#include "budget.h"

#define TRACE "tests/fixtures/budget-trace.csv"
#define MODEL "models/fmnist-basisnet.bnm"
#define MAX_FRAMES 4096
#define RUN 15          /* frames per image in the sample clip */
#define WIN 100

typedef struct {
    double budget_ms;
    int n;
    double light_ms[MAX_FRAMES], spec_ms[MAX_FRAMES];  /* spec < 0: did not run */
    int stress[MAX_FRAMES];
} trace;

static void load_trace(trace *t)
{
    FILE *f = fopen(TRACE, "r");
    assert_non_null(f);
    char line[256];
    t->n = 0;
    t->budget_ms = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        if (sscanf(line, "budget_ms %lf", &t->budget_ms) == 1)
            continue;
        assert_true(t->n < MAX_FRAMES);
        assert_int_equal(sscanf(line, "%lf %lf %d", &t->light_ms[t->n], &t->spec_ms[t->n],
                                &t->stress[t->n]), 3);
        t->n++;
    }
    fclose(f);
    assert_true(t->budget_ms > 0);
    assert_true(t->n >= 10 * WIN);
}

/* Replays the trace with the stress-phase costs times k; returns the calm minus stress mean
 * window threshold and asserts every window within budget + 10%. */
static double replay(double k_stress)
{
    static trace t;
    load_trace(&t);
    bn_model *m = NULL;
    char err[512];
    assert_int_equal(bn_model_open(MODEL, &m, err, sizeof err), BN_OK);
    const bn_model_info *mi = bn_model_get_info(m);
    assert_true(mi->n_val_light_confidence > 100);

    budget_params p;
    budget_params_init(&p);
    p.mode = BUDGET_MEAN;
    p.latency_ms = t.budget_ms;
    p.min = 0.0;
    p.max = 1.0;
    p.window = 256;
    budget_ctl *b = NULL;
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_OK);
    budget_calibrate(b, mi->val_light_confidence, mi->n_val_light_confidence, 0, 0);

    uint64_t rs = 12345;    /* LCG: which validation confidence each 15-frame run shows */
    float conf = 0;
    double spec_hold = -1;  /* a frame the recording answered light costs what the last one cost */
    for (int i = 0; i < t.n && spec_hold < 0; i++)
        spec_hold = t.spec_ms[i];
    assert_true(spec_hold > 0);
    double win_sum = 0, thr_sum = 0, thr_calm = 0, thr_stress = 0;
    int calm_n = 0, stress_n = 0, windows = 0, over = 0;
    double worst = 0;
    for (int i = 0; i < t.n; i++) {
        if (i % RUN == 0) {
            rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
            conf = mi->val_light_confidence[(rs >> 33) % (uint64_t)mi->n_val_light_confidence];
        }
        if (t.spec_ms[i] >= 0)
            spec_hold = t.spec_ms[i];
        double k = t.stress[i] ? k_stress : 1.0;
        uint64_t ns_light = (uint64_t)(t.light_ms[i] * k * 1e6);
        uint64_t ns_spec = (uint64_t)(spec_hold * k * 1e6);
        float thr = budget_next_threshold(b);
        budget_decision d = budget_should_run_specialist(b, conf, ns_light);
        budget_observe(b, conf, ns_light, d.run ? ns_spec : 0, d.run);
        double ms = (double)(ns_light + (d.run ? ns_spec : 0)) / 1e6;
        win_sum += ms;
        thr_sum += thr;
        if ((i + 1) % WIN == 0) {
            double mean = win_sum / WIN, r = mean / t.budget_ms;
            worst = r > worst ? r : worst;
            over += r > 1.10;
            if (getenv("BUDGET_REPLAY_TRACE"))
                print_message("window %d: %.3fx\n", windows, r);
            windows++;
            /* the window's phase: whether most of it was under stress (start-up excluded) */
            int s = 0;
            for (int j = i + 1 - WIN; j <= i; j++)
                s += t.stress[j];
            if (i + 1 > WIN && s > WIN / 2) {
                thr_stress += thr_sum / WIN;
                stress_n++;
            } else if (i + 1 > WIN && s == 0) {
                thr_calm += thr_sum / WIN;
                calm_n++;
            }
            win_sum = thr_sum = 0;
        }
    }
    print_message("replay, stress costs x%.1f: %d windows, worst %.3fx budget, threshold calm %.3f -> stress %.3f\n",
                  k_stress, windows, worst, calm_n ? thr_calm / calm_n : 0, stress_n ? thr_stress / stress_n : 0);
    assert_int_equal(over, 0);
    assert_true(calm_n > 0 && stress_n > 0);
    budget_free(b);
    bn_model_close(m);
    return thr_calm / calm_n - thr_stress / stress_n;
}

static void test_replay_as_recorded(void **state)
{
    (void)state;
    replay(1.0);
}

static void test_replay_cost_step(void **state)
{
    (void)state;
    /* dearer frames: a lower threshold, so fewer reach the specialist */
    assert_true(replay(1.4) >= 0.05);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_as_recorded),
        cmocka_unit_test(test_replay_cost_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
