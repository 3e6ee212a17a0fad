/* Deterministic simulation tests of the budget controller: synthetic light-confidence
 * distributions and stage-cost models with seeded noise, no clock. Set BUDGET_SIM_TRACE=1
 * to print per-scenario figures (used for docs/budget.md). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "budget.h"
#include "bn_log.h"

/* ---- seeded randomness ------------------------------------------------------------ */

typedef struct { uint64_t s; } rng;

static uint64_t rng_next(rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0; }

static double rng_gauss(rng *r)
{
    return sqrt(-2.0 * log(rng_unit(r))) * cos(6.283185307179586 * rng_unit(r));
}

/* ---- synthetic distributions and cost models ------------------------------------- */

typedef enum { CONF_BETA3, CONF_BETA8, CONF_MIXTURE } conf_kind;

/* Light-model max-softmax confidence for a 10-class model: at least 0.1. */
static float draw_conf(rng *r, conf_kind k)
{
    double u = rng_unit(r);
    switch (k) {
    case CONF_BETA3: /* Beta(3,1) shape: mostly confident, long low tail */
        return (float)(0.1 + 0.9 * pow(u, 1.0 / 3.0));
    case CONF_BETA8: /* Beta(8,1): a well-trained light model, mass piled near 1 */
        return (float)(0.1 + 0.9 * pow(u, 1.0 / 8.0));
    case CONF_MIXTURE: /* 70% easy frames near 1, 30% hard frames spread out */
        if (rng_unit(r) < 0.7)
            return (float)(0.9 + 0.1 * pow(u, 0.25));
        return (float)(0.2 + 0.7 * u);
    }
    return 0.5f;
}

typedef struct {
    conf_kind conf;
    double light_ms, spec_ms;  /* mean costs; spec = synthesis + specialist */
    double noise;              /* lognormal sigma of per-frame costs */
    int slowdown_at;           /* frame from which both costs double (0: never) */
    double budget_ms;
    budget_mode mode;
    double min, max;
    int window;
    int frames;
    uint64_t seed;
    bool calibrate;            /* start from validation confidences and true costs */
    int hold;                  /* each confidence repeats for this many frames (video of
                                  still scenes, like the sample clip); 0 or 1: independent */
    int horizon;               /* 0: the default (100); -1: no horizon guard */
} scenario;

typedef struct {
    double *lat_ms;            /* per frame, light + spec */
    double *thr;               /* threshold used for the frame */
    double *pred_ms;           /* deadline: predicted total when the specialist ran, else 0 */
    unsigned char *ran;
    int deadline_exits;
    budget_stats final;
} trace;

static void trace_free(trace *t)
{
    free(t->lat_ms);
    free(t->thr);
    free(t->pred_ms);
    free(t->ran);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double cost(rng *r, double mean_ms, double noise)
{
    return mean_ms * exp(noise * rng_gauss(r) - 0.5 * noise * noise); /* mean-preserving */
}

static void run_scenario(const scenario *sc, trace *t)
{
    budget_params p;
    budget_params_init(&p);
    p.mode = sc->mode;
    p.latency_ms = sc->budget_ms;
    p.min = sc->min;
    p.max = sc->max;
    p.window = sc->window ? sc->window : 256;
    if (sc->horizon)
        p.horizon = sc->horizon < 0 ? 0 : sc->horizon;
    p.fixed_threshold = 0.75;
    budget_ctl *b = NULL;
    char err[128];
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_OK);

    rng r = {sc->seed};
    if (sc->calibrate) {
        enum { NVAL = 2000 };
        float *val = malloc(NVAL * sizeof *val);
        rng rv = {sc->seed ^ 0xabcdef};
        for (int i = 0; i < NVAL; i++)
            val[i] = draw_conf(&rv, sc->conf);
        qsort(val, NVAL, sizeof *val, cmp_float);
        budget_calibrate(b, val, NVAL, (uint64_t)(sc->light_ms * 1e6), (uint64_t)(sc->spec_ms * 1e6));
        free(val);
    }

    int n = sc->frames;
    t->lat_ms = calloc((size_t)n, sizeof(double));
    t->thr = calloc((size_t)n, sizeof(double));
    t->pred_ms = calloc((size_t)n, sizeof(double));
    t->ran = calloc((size_t)n, 1);
    t->deadline_exits = 0;
    float held = 0.0f;
    for (int i = 0; i < n; i++) {
        double slow = (sc->slowdown_at && i >= sc->slowdown_at) ? 2.0 : 1.0;
        float thr = budget_next_threshold(b);
        if (sc->hold <= 1 || i % sc->hold == 0)
            held = draw_conf(&r, sc->conf);
        float conf = held;
        double l = cost(&r, sc->light_ms * slow, sc->noise);
        double s = cost(&r, sc->spec_ms * slow, sc->noise);
        budget_decision d = budget_should_run_specialist(b, conf, (uint64_t)(l * 1e6));
        if (d.reason == BUDGET_EXIT_DEADLINE)
            t->deadline_exits++;
        assert_int_equal(d.run, d.reason == BUDGET_RUN_SPECIALIST);
        budget_observe(b, conf, (uint64_t)(l * 1e6), d.run ? (uint64_t)(s * 1e6) : 0, d.run);
        t->thr[i] = thr;
        t->lat_ms[i] = l + (d.run ? s : 0.0);
        t->ran[i] = d.run;
        t->pred_ms[i] = d.run ? d.predicted_total_ms : 0.0;
    }
    budget_get_stats(b, &t->final);
    budget_free(b);
}

static double mean_of(const double *v, int from, int to)
{
    double s = 0;
    for (int i = from; i < to; i++)
        s += v[i];
    return s / (to - from);
}

static double var_of(const double *v, int from, int to)
{
    double m = mean_of(v, from, to), s = 0;
    for (int i = from; i < to; i++)
        s += (v[i] - m) * (v[i] - m);
    return s / (to - from);
}

static bool trace_on(void) { return getenv("BUDGET_SIM_TRACE") != NULL; }

/* Trailing windows of W frames, ending every 25 frames from `from` to `to`: the worst
 * relative error of the window mean against the budget. */
static double worst_window_error(const trace *t, double budget, int W, int from, int to)
{
    double worst = 0;
    for (int end = from; end <= to; end += 25) {
        double e = fabs(mean_of(t->lat_ms, end - W, end) / budget - 1.0);
        if (e > worst)
            worst = e;
    }
    return worst;
}

#define WIN 200 /* trailing window the mean latency is judged over */

/* Consecutive blocks of W frames from `from`: the largest excess of a block's mean over the
 * budget (negative when every block is under it). */
static double worst_block_excess(const trace *t, double budget, int W, int from, int to)
{
    double worst = -1.0;
    for (int s = from; s + W <= to; s += W) {
        double e = mean_of(t->lat_ms, s, s + W) / budget - 1.0;
        if (e > worst)
            worst = e;
    }
    return worst;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_rejects_bad_params(void **state)
{
    (void)state;
    budget_params p;
    budget_ctl *b = (budget_ctl *)0x1;
    char err[128] = "";
    budget_params_init(&p);
    p.min = 0.9;
    p.max = 0.5;
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_ERR_INVALID_ARG);
    assert_null(b);
    assert_non_null(strstr(err, "min 0.9 > max 0.5"));

    budget_params_init(&p);
    p.latency_ms = 0;
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "latency_ms"));
    p.mode = BUDGET_OFF; /* no budget needed without control */
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_OK);
    budget_free(b);

    budget_params_init(&p);
    p.window = 0;
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "window"));
    p.window = 1; /* the config accepts 1: degenerate but valid */
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_OK);
    for (int i = 0; i < 20; i++) {
        float thr = budget_next_threshold(b);
        assert_true(thr >= p.min && thr <= p.max);
        budget_observe(b, 0.5f + 0.02f * i, 1000000, i % 2 ? 3000000 : 0, i % 2);
    }
    budget_free(b);

    budget_params_init(&p);
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_OK);
    assert_int_equal(budget_set_latency(b, -1), BN_ERR_INVALID_ARG);
    assert_int_equal(budget_set_latency(b, NAN), BN_ERR_INVALID_ARG);
    budget_free(b);
}

static void test_off_mode_returns_fixed_threshold(void **state)
{
    (void)state;
    scenario sc = {.conf = CONF_BETA3, .light_ms = 2, .spec_ms = 6, .noise = 0.1,
                   .budget_ms = 1, .mode = BUDGET_OFF, .min = 0, .max = 1,
                   .frames = 500, .seed = 1};
    trace t;
    run_scenario(&sc, &t);
    for (int i = 0; i < sc.frames; i++)
        assert_float_equal(t.thr[i], 0.75, 1e-6);
    /* the specialist ran exactly for frames below the fixed threshold, budget ignored */
    assert_true(mean_of(t.lat_ms, 0, sc.frames) > 2 * sc.budget_ms);
    trace_free(&t);
}

/* With costs known exactly and a uniform window, the threshold is the quantile that sends
 * f = (B - t_light) / t_spec to the specialist. */
static void test_threshold_is_budget_quantile(void **state)
{
    (void)state;
    budget_params p;
    budget_params_init(&p);
    p.window = 100;
    p.latency_ms = 3.0; /* t_light 1, t_spec 4: f = 0.5 */
    budget_ctl *b;
    assert_int_equal(budget_new(&p, &b, NULL, 0), BN_OK);
    float val[100];
    for (int i = 0; i < 100; i++)
        val[i] = (float)(i + 0.5) / 100.0f;
    budget_calibrate(b, val, 100, 1000000, 4000000);
    assert_float_equal(budget_next_threshold(b), 0.5, 0.011);
    budget_stats st;
    budget_get_stats(b, &st);
    assert_float_equal(st.target_spec_share, 0.5, 1e-9);
    assert_float_equal(st.t_light_ms, 1.0, 1e-9);
    assert_float_equal(st.t_spec_ms, 4.0, 1e-9);
    /* a larger budget allows a larger share: f = (4 - 1) / 4 */
    assert_int_equal(budget_set_latency(b, 4.0), BN_OK);
    assert_float_equal(budget_next_threshold(b), 0.75, 0.011);
    /* budget below light + nothing: threshold at min */
    assert_int_equal(budget_set_latency(b, 1.0), BN_OK);
    assert_float_equal(budget_next_threshold(b), 0.0, 1e-6);
    budget_free(b);
}

static const conf_kind CONF_KINDS[] = {CONF_BETA3, CONF_BETA8, CONF_MIXTURE};

/* Mean latency within +-5% of the budget over trailing windows, from frame 200 on; no
 * calibration (worst start); several seeds and distributions. */
static void test_mean_mode_converges(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        for (uint64_t seed = 1; seed <= 5; seed++) {
            scenario sc = {.conf = CONF_KINDS[k], .light_ms = 2, .spec_ms = 6, .noise = 0.15,
                           .budget_ms = 5, .mode = BUDGET_MEAN, .min = 0, .max = 1,
                           .frames = 1200, .seed = seed};
            trace t;
            run_scenario(&sc, &t);
            double worst = worst_window_error(&t, sc.budget_ms, WIN, 200 + WIN, sc.frames);
            double tv = sqrt(var_of(t.thr, 400, sc.frames));
            if (trace_on())
                printf("converge conf=%zu seed=%llu: worst %d-frame window error %.2f%%, "
                       "threshold sd %.4f, spec share %.3f\n", k, (unsigned long long)seed, WIN,
                       100 * worst, tv, 1 - t.final.exit_share);
            assert_true(worst < 0.05);
            trace_free(&t);
        }
    }
}

/* Video of still scenes: each confidence repeats for 15 frames (the sample clip holds each
 * image for 15), so a 100-frame window holds only ~7 independent scenes, and a streak of
 * hard scenes overspends it whatever the threshold. The horizon guard (100 frames) caps
 * every such window; without it (horizon -1, printed for comparison) the worst block
 * was 10-20% over. Bounds measured, not wished (docs/budget.md, Limits). */
static void test_correlated_frames(void **state)
{
    (void)state;
    for (int guard = 0; guard <= 1; guard++) {
        for (size_t k = 0; k < 3; k++) {
            for (uint64_t seed = 1; seed <= 10; seed++) {
                scenario sc = {.conf = CONF_KINDS[k], .light_ms = 2, .spec_ms = 6, .noise = 0.15,
                               .budget_ms = 5, .mode = BUDGET_MEAN, .min = 0, .max = 1,
                               .frames = 3000, .seed = seed, .calibrate = true, .hold = 15,
                               .horizon = guard ? 100 : -1};
                trace t;
                run_scenario(&sc, &t);
                double worst100 = worst_block_excess(&t, sc.budget_ms, 100, 0, sc.frames);
                double worst200 = worst_window_error(&t, sc.budget_ms, WIN, 400, sc.frames);
                double longrun = mean_of(t.lat_ms, 400, sc.frames) / sc.budget_ms - 1;
                int spec = 0;
                for (int i = 400; i < sc.frames; i++)
                    spec += t.ran[i];
                if (trace_on())
                    printf("held x15 guard=%d conf=%zu seed=%llu: worst 100-block %+.2f%%, worst "
                           "200-window |err| %.2f%%, long run %+.2f%%, specialist share %.3f, "
                           "threshold sd %.3f, horizon exits %llu\n", guard, k,
                           (unsigned long long)seed, 100 * worst100, 100 * worst200, 100 * longrun,
                           spec / 2600.0, sqrt(var_of(t.thr, 400, sc.frames)),
                           (unsigned long long)t.final.horizon_exits);
                if (guard) {
                    /* measured: +4.2..+5.4% and -1.8..-3.1% over these 30 runs */
                    assert_true(worst100 < 0.07);
                    assert_true(longrun < 0 && longrun > -0.04);
                } else {
                    assert_true(fabs(longrun) < 0.02);
                    assert_int_equal((int)t.final.horizon_exits, 0);
                }
                trace_free(&t);
            }
        }
    }
}

/* The horizon guard on hand-made numbers: horizon 4, budget 5 ms (cap 4 x 5 x 1.05 = 21 ms).
 * Two frames that ran the specialist at 9 ms leave no room for a third (18 + 9 > 21); once
 * they have left the horizon there is room again, and a horizon exit is reported as such. */
static void test_horizon_guard_direct(void **state)
{
    (void)state;
    budget_params p;
    budget_params_init(&p);
    p.latency_ms = 5;
    p.min = 0.5;
    p.max = 1.0;
    p.horizon = 4;
    budget_ctl *b = NULL;
    assert_int_equal(budget_new(&p, &b, NULL, 0), BN_OK);
    budget_calibrate(b, NULL, 0, 1000000, 8000000);
    for (int i = 0; i < 2; i++) {
        budget_next_threshold(b);
        budget_decision d = budget_should_run_specialist(b, 0.1f, 1000000);
        assert_true(d.run);
        budget_observe(b, 0.1f, 1000000, 8000000, true);
    }
    budget_next_threshold(b);
    budget_decision d = budget_should_run_specialist(b, 0.1f, 1000000);
    assert_false(d.run);
    assert_int_equal(d.reason, BUDGET_EXIT_HORIZON);
    assert_string_equal(budget_reason_name(d.reason), "horizon");
    budget_observe(b, 0.1f, 1000000, 0, false);
    for (int i = 0; i < 3; i++) { /* light answers: the 9 ms frames leave the horizon */
        budget_next_threshold(b);
        budget_should_run_specialist(b, 0.99f, 1000000);
        budget_observe(b, 0.99f, 1000000, 0, false);
    }
    budget_next_threshold(b);
    d = budget_should_run_specialist(b, 0.1f, 1000000);
    assert_true(d.run); /* 3 x 1 ms + 1 + 8 = 12 ms <= 21 ms */
    budget_stats st;
    budget_get_stats(b, &st);
    assert_int_equal((int)st.horizon_exits, 1);
    assert_int_equal((int)st.deadline_exits, 0);
    budget_free(b);

    /* horizon 0 switches the guard off: the same start runs the specialist every time */
    p.horizon = 0;
    assert_int_equal(budget_new(&p, &b, NULL, 0), BN_OK);
    budget_calibrate(b, NULL, 0, 1000000, 8000000);
    for (int i = 0; i < 6; i++) {
        budget_next_threshold(b);
        assert_true(budget_should_run_specialist(b, 0.1f, 1000000).run);
        budget_observe(b, 0.1f, 1000000, 8000000, true);
    }
    budget_free(b);
    p.horizon = -1;
    char err[128] = "";
    assert_int_equal(budget_new(&p, &b, err, sizeof err), BN_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "horizon"));
}

/* Once settled the threshold stays put: its standard deviation is small against the
 * span of the confidence distribution, and frame-to-frame moves are tiny. */
static void test_no_oscillation(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        scenario sc = {.conf = CONF_KINDS[k], .light_ms = 2, .spec_ms = 6, .noise = 0.15,
                       .budget_ms = 5, .mode = BUDGET_MEAN, .min = 0, .max = 1,
                       .frames = 2000, .seed = 7};
        trace t;
        run_scenario(&sc, &t);
        double sd = sqrt(var_of(t.thr, 400, sc.frames));
        double step = 0;
        for (int i = 401; i < sc.frames; i++)
            step = fmax(step, fabs(t.thr[i] - t.thr[i - 1]));
        /* the share that threshold sd corresponds to: the spread of the share sent */
        double lo = 0, hi = 0;
        for (int i = 400; i < sc.frames; i++)
            if (t.ran[i]) hi++; else lo++;
        if (trace_on())
            printf("oscillation conf=%zu: threshold sd %.4f, max step %.4f, spec share %.3f\n",
                   k, sd, step, hi / (lo + hi));
        assert_true(sd < 0.1);
        trace_free(&t);
    }
}

/* Both stages become 2x slower at frame 1000: the controller sends fewer frames to the
 * specialist and the trailing mean is back within +-5% 100 frames later. */
static void test_recovers_from_slowdown(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        for (uint64_t seed = 1; seed <= 5; seed++) {
            scenario sc = {.conf = CONF_KINDS[k], .light_ms = 2, .spec_ms = 6, .noise = 0.15,
                           .budget_ms = 6, .mode = BUDGET_MEAN, .min = 0, .max = 1,
                           .frames = 2000, .slowdown_at = 1000, .seed = seed, .calibrate = true};
            trace t;
            run_scenario(&sc, &t);
            /* window of W frames starting 100 frames after the change, then every later one */
            double worst = worst_window_error(&t, sc.budget_ms, WIN, 1100 + WIN, sc.frames);
            double before = mean_of(t.thr, 800, 1000), after = mean_of(t.thr, 1200, 2000);
            double first = mean_of(t.lat_ms, 1000, 1100);
            if (trace_on())
                printf("slowdown conf=%zu seed=%llu: worst window error after +100: %.2f%%, "
                       "threshold %.3f -> %.3f, mean of first 100 slow frames %.2f ms\n", k,
                       (unsigned long long)seed, 100 * worst, before, after, first);
            assert_true(worst < 0.05);
            assert_true(after < before - 0.02);
            trace_free(&t);
        }
    }
}

/* The threshold never leaves [min, max]; a generous budget pins it at max, a tight one
 * at min. */
static void test_respects_min_max(void **state)
{
    (void)state;
    const double budgets[] = {1.0, 5.0, 100.0};
    for (int i = 0; i < 3; i++) {
        scenario sc = {.conf = CONF_BETA3, .light_ms = 2, .spec_ms = 6, .noise = 0.15,
                       .budget_ms = budgets[i], .mode = BUDGET_MEAN, .min = 0.55,
                       .max = 0.8, .frames = 800, .seed = 3};
        trace t;
        run_scenario(&sc, &t);
        for (int f = 0; f < sc.frames; f++) {
            assert_true(t.thr[f] >= 0.55 - 1e-6);
            assert_true(t.thr[f] <= 0.8 + 1e-6);
        }
        if (i == 0)
            assert_float_equal(t.thr[sc.frames - 1], 0.55, 1e-6);
        if (i == 2)
            assert_float_equal(t.thr[sc.frames - 1], 0.8, 1e-6);
        trace_free(&t);
    }
}

/* Deadline mode: every frame that ran the specialist was predicted to fit; frames are
 * gated when the time left cannot hold the specialist; the share of frames over the budget
 * is small (noise beyond the margin only). */
static void test_deadline_mode(void **state)
{
    (void)state;
    scenario sc = {.conf = CONF_BETA3, .light_ms = 2, .spec_ms = 6, .noise = 0.15,
                   .budget_ms = 11, .mode = BUDGET_DEADLINE, .min = 0, .max = 0.9,
                   .frames = 2000, .slowdown_at = 1000, .seed = 11, .calibrate = true};
    trace t;
    run_scenario(&sc, &t);
    int ran_fast = 0, ran_slow = 0, over = 0;
    for (int i = 0; i < sc.frames; i++) {
        if (t.ran[i])
            assert_true(t.pred_ms[i] <= sc.budget_ms + 1e-9);
        if (t.ran[i])
            *(i < 1000 ? &ran_fast : &ran_slow) += 1;
        over += t.lat_ms[i] > sc.budget_ms;
    }
    if (trace_on())
        printf("deadline: ran %d/1000 before the slowdown, %d/1000 after, %d deadline exits, "
               "%d frames over budget\n", ran_fast, ran_slow, t.deadline_exits, over);
    /* 2 + 6 (+ margin) fits in 11 before the slowdown; 4 + 12 never fits after it */
    assert_true(ran_fast > 200);
    assert_true(ran_slow < 20);
    assert_true(t.deadline_exits > 200);
    assert_int_equal((int)t.final.deadline_exits, t.deadline_exits);
    assert_true(over < ran_fast / 10);
    trace_free(&t);
}

/* Uncalibrated, the default cost guess with its wide margin predicts no fit; the probe
 * (one run after a window without any) measures the real cost and unlocks the specialist. */
static void test_deadline_probe_unlocks(void **state)
{
    (void)state;
    scenario sc = {.conf = CONF_BETA3, .light_ms = 2, .spec_ms = 6, .noise = 0.15,
                   .budget_ms = 11, .mode = BUDGET_DEADLINE, .min = 0, .max = 0.9,
                   .frames = 1000, .seed = 12};
    trace t;
    run_scenario(&sc, &t);
    int early = 0, late = 0;
    for (int i = 0; i < sc.frames; i++) {
        if (t.ran[i])
            assert_true(t.pred_ms[i] <= sc.budget_ms + 1e-9);
        if (i < 250)
            early += t.ran[i];
        else if (i >= 400)
            late += t.ran[i];
    }
    if (trace_on())
        printf("deadline probe: ran %d of the first 250 frames, %d of frames 400-999\n", early, late);
    assert_int_equal(early, 0);
    assert_true(late > 300);
    trace_free(&t);
}

static void test_deadline_reason_direct(void **state)
{
    (void)state;
    budget_params p;
    budget_params_init(&p);
    p.mode = BUDGET_DEADLINE;
    p.latency_ms = 10;
    p.max = 0.9;
    budget_ctl *b;
    assert_int_equal(budget_new(&p, &b, NULL, 0), BN_OK);
    budget_calibrate(b, NULL, 0, 2000000, 5000000);
    assert_float_equal(budget_next_threshold(b), 0.9, 1e-6);
    budget_decision d = budget_should_run_specialist(b, 0.95f, 2000000);
    assert_false(d.run);
    assert_string_equal(budget_reason_name(d.reason), "threshold");
    d = budget_should_run_specialist(b, 0.5f, 2000000);
    assert_true(d.run);
    assert_string_equal(budget_reason_name(d.reason), "specialist");
    assert_true(d.predicted_total_ms > 7.0 && d.predicted_total_ms <= 10.0);
    d = budget_should_run_specialist(b, 0.5f, 6000000); /* 4 ms left for a 5 ms stage */
    assert_false(d.run);
    assert_string_equal(budget_reason_name(d.reason), "deadline");
    budget_free(b);
}

typedef struct { int warns; char msg[256]; } log_sink;

static void sink_fn(bn_log_level level, const char *module, const char *msg, void *user)
{
    log_sink *s = user;
    if (level == BN_LOG_WARN && strcmp(module, "budget") == 0) {
        s->warns++;
        snprintf(s->msg, sizeof s->msg, "%s", msg);
    }
}

/* The light model alone over budget: flagged with the numbers, logged once, threshold at
 * min; raising the budget live clears it. */
static void test_unattainable_flagged(void **state)
{
    (void)state;
    log_sink sink = {0};
    bn_log_set_callback(sink_fn, &sink);
    budget_params p;
    budget_params_init(&p);
    p.latency_ms = 3;
    p.min = 0.2;
    budget_ctl *b;
    assert_int_equal(budget_new(&p, &b, NULL, 0), BN_OK);
    rng r = {5};
    for (int i = 0; i < 300; i++) {
        float thr = budget_next_threshold(b);
        if (i > 20)
            assert_float_equal(thr, 0.2, 1e-6);
        float c = draw_conf(&r, CONF_BETA3);
        budget_decision d = budget_should_run_specialist(b, c, 4000000);
        budget_observe(b, c, (uint64_t)(cost(&r, 4.0, 0.1) * 1e6), d.run ? 8000000 : 0, d.run);
    }
    budget_stats st;
    budget_get_stats(b, &st);
    assert_true(st.unattainable);
    assert_float_equal(st.budget_ms, 3.0, 1e-9);
    assert_float_equal(st.t_light_ms, 4.0, 0.4);
    assert_int_equal(sink.warns, 1);
    assert_non_null(strstr(sink.msg, "unattainable"));
    assert_int_equal(budget_set_latency(b, 20), BN_OK);
    budget_next_threshold(b);
    budget_get_stats(b, &st);
    assert_false(st.unattainable);
    bn_log_set_callback(NULL, NULL);
    budget_free(b);
}

/* Calibrated from validation confidences and cost guesses, the first 100 frames already
 * hold the budget; uncalibrated, the controller starts at min and spends less. */
static void test_calibration_first_frames(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        scenario sc = {.conf = CONF_MIXTURE, .light_ms = 2, .spec_ms = 6, .noise = 0.15,
                       .budget_ms = 4, .mode = BUDGET_MEAN, .min = 0, .max = 1,
                       .frames = 100, .seed = seed, .calibrate = true};
        trace t;
        run_scenario(&sc, &t);
        double m = mean_of(t.lat_ms, 0, 100);
        if (trace_on())
            printf("calibrated seed=%llu: mean of the first 100 frames %.2f ms (budget %.1f)\n",
                   (unsigned long long)seed, m, sc.budget_ms);
        assert_true(fabs(m / sc.budget_ms - 1) < 0.10);
        assert_true(t.thr[0] > 0.5); /* not the uncalibrated start at min */
        trace_free(&t);
    }
}

/* budget_set_latency mid-run: the controller follows the new budget. */
static void test_live_budget_change(void **state)
{
    (void)state;
    budget_params p;
    budget_params_init(&p);
    p.latency_ms = 4;
    budget_ctl *b;
    assert_int_equal(budget_new(&p, &b, NULL, 0), BN_OK);
    rng r = {9};
    double lat[1600];
    for (int i = 0; i < 1600; i++) {
        if (i == 800)
            assert_int_equal(budget_set_latency(b, 6.5), BN_OK);
        budget_next_threshold(b);
        float c = draw_conf(&r, CONF_BETA3);
        double l = cost(&r, 2, 0.15), s = cost(&r, 6, 0.15);
        budget_decision d = budget_should_run_specialist(b, c, (uint64_t)(l * 1e6));
        budget_observe(b, c, (uint64_t)(l * 1e6), d.run ? (uint64_t)(s * 1e6) : 0, d.run);
        lat[i] = l + (d.run ? s : 0);
    }
    assert_true(fabs(mean_of(lat, 600, 800) / 4.0 - 1) < 0.05);
    assert_true(fabs(mean_of(lat, 1100, 1300) / 6.5 - 1) < 0.05);
    assert_true(fabs(mean_of(lat, 1400, 1600) / 6.5 - 1) < 0.05);
    budget_stats st;
    budget_get_stats(b, &st);
    assert_float_equal(st.budget_ms, 6.5, 1e-9);
    assert_true(fabs(st.mean_ms / 6.5 - 1) < 0.05);
    assert_true(st.p99_ms > st.mean_ms);
    assert_int_equal(st.window_frames, 256);
    assert_true(st.exit_share > 0.05 && st.exit_share < 0.95);
    budget_free(b);
}

/* One frame preempted for 100x its cost (seen on a shared machine): the controller does not
 * call the budget unattainable and does not starve the specialist for long. */
static void test_single_outlier_frame(void **state)
{
    (void)state;
    budget_params p;
    budget_params_init(&p);
    p.latency_ms = 5;
    budget_ctl *b;
    assert_int_equal(budget_new(&p, &b, NULL, 0), BN_OK);
    rng r = {21};
    double thr[900];
    int at_min_after = 0;
    for (int i = 0; i < 900; i++) {
        thr[i] = budget_next_threshold(b);
        float c = draw_conf(&r, CONF_BETA3);
        double l = cost(&r, 2, 0.15), s = cost(&r, 6, 0.15);
        if (i == 600)
            l *= 100; /* 200 ms */
        budget_decision d = budget_should_run_specialist(b, c, (uint64_t)(l * 1e6));
        budget_observe(b, c, (uint64_t)(l * 1e6), d.run ? (uint64_t)(s * 1e6) : 0, d.run);
        budget_stats st;
        budget_get_stats(b, &st);
        assert_false(st.unattainable);
        if (i > 600 && thr[i] <= 0.0)
            at_min_after++;
    }
    double before = mean_of(thr, 400, 600), after = mean_of(thr, 620, 900);
    if (trace_on())
        printf("outlier: threshold %.3f before, %.3f from 20 frames after; %d frames at min\n",
               before, after, at_min_after);
    assert_true(at_min_after < 10);
    assert_true(fabs(after - before) < 0.05);
    budget_free(b);
}

/* NaN or out-of-range scores cannot corrupt the sorted window. */
static void test_hostile_scores(void **state)
{
    (void)state;
    budget_params p;
    budget_params_init(&p);
    p.window = 16;
    budget_ctl *b;
    assert_int_equal(budget_new(&p, &b, NULL, 0), BN_OK);
    const float bad[] = {NAN, -1.0f, 7.0f, INFINITY, 0.5f};
    for (int i = 0; i < 200; i++) {
        float thr = budget_next_threshold(b);
        assert_true(thr >= 0.0f && thr <= 1.0f);
        budget_observe(b, bad[i % 5], 1000000, i % 2 ? 3000000 : 0, i % 2);
    }
    budget_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_bad_params),
        cmocka_unit_test(test_off_mode_returns_fixed_threshold),
        cmocka_unit_test(test_threshold_is_budget_quantile),
        cmocka_unit_test(test_mean_mode_converges),
        cmocka_unit_test(test_no_oscillation),
        cmocka_unit_test(test_correlated_frames),
        cmocka_unit_test(test_horizon_guard_direct),
        cmocka_unit_test(test_recovers_from_slowdown),
        cmocka_unit_test(test_respects_min_max),
        cmocka_unit_test(test_deadline_mode),
        cmocka_unit_test(test_deadline_probe_unlocks),
        cmocka_unit_test(test_deadline_reason_direct),
        cmocka_unit_test(test_unattainable_flagged),
        cmocka_unit_test(test_calibration_first_frames),
        cmocka_unit_test(test_live_budget_change),
        cmocka_unit_test(test_single_outlier_frame),
        cmocka_unit_test(test_hostile_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
