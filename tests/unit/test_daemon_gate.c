/* The frame-difference gate on hand-made frames: sensor noise (sigma up to 8 gray levels)
 * and slow brightness drift keep it closed, a small object entering or leaving opens it,
 * refresh_ms forces a classification, a sudden lighting change opens it, an answer that is
 * unsure (score below min_score) or whose label is still being confirmed is not reused,
 * nothing is allocated per frame. Prints the per-frame cost (docs/gate.md quotes it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <math.h>
#include <time.h>

#include <cmocka.h>

#include "debounce.h"
#include "gate.h"

#define FRAME_NS 33333333ull   /* 30 fps */
#define MAXPIX (224 * 224 * 3)

static uint64_t rng_state;

static uint64_t splitmix64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double gauss(void)
{
    double u1 = ((double)(splitmix64() >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(splitmix64() >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* A textured static scene, values about 40..200. */
static float scene_px(int x, int y, int w, int h)
{
    double u = (double)x / w, v = (double)y / h;
    return (float)(120 + 50 * sin(6.0 * u + 1.0) * cos(4.0 * v) + 30 * (u - v));
}

typedef struct {
    int w, h, c;
    double sigma;        /* per-pixel noise */
    double gain, offset; /* global lighting */
    int ox, oy, os;      /* a square object at (ox, oy), side os (0: none) */
    double ovalue;       /* its gray value */
} scene;

static void render(const scene *s, uint8_t *out)
{
    for (int y = 0; y < s->h; y++)
        for (int x = 0; x < s->w; x++) {
            double base = scene_px(x, y, s->w, s->h);
            if (s->os && x >= s->ox && x < s->ox + s->os && y >= s->oy && y < s->oy + s->os)
                base = s->ovalue;
            for (int k = 0; k < s->c; k++) {
                double v = base * s->gain + s->offset + s->sigma * gauss();
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                out[((size_t)y * s->w + x) * s->c + k] = (uint8_t)lrint(v);
            }
        }
}

/* A gate on the picture alone: every answer settled (min_score 0, no confirmation). */
static gate *new_gate(int w, int h, int c, int refresh_ms)
{
    gate_params p = {.width = w, .height = h, .channels = c, .refresh_ms = refresh_ms,
                     .cell_sigmas = GATE_CELL_SIGMAS_DEFAULT, .min_area = GATE_MIN_AREA_DEFAULT};
    gate *g = NULL;
    char err[256];
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_OK);
    return g;
}

/* A 28x28 gray gate as the daemon makes it: min_score and publish.change_frames given. */
static gate *new_gate_answers(double min_score, int confirm_frames)
{
    gate_params p = {.width = 28, .height = 28, .channels = 1, .refresh_ms = 1000,
                     .cell_sigmas = GATE_CELL_SIGMAS_DEFAULT, .min_area = GATE_MIN_AREA_DEFAULT,
                     .min_score = min_score, .confirm_frames = confirm_frames};
    gate *g = NULL;
    char err[256];
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_OK);
    return g;
}

/* Feeds one frame; when the gate opens, the daemon classifies it: commits this answer. */
static gate_decision step_answer(gate *g, const scene *s, uint8_t *buf, uint64_t t, int class_id,
                                 float score)
{
    render(s, buf);
    gate_decision d = gate_decide(g, buf, (size_t)s->w * (size_t)s->c, t);
    if (d.open)
        gate_commit(g, class_id, score);
    return d;
}

static gate_decision step(gate *g, const scene *s, uint8_t *buf, uint64_t t)
{
    return step_answer(g, s, buf, t, 0, 1.0f);
}

/* Static scene, noise only: closed for >= 90% of frames after the warm-up; the openings
 * are the refreshes, not the noise. */
static void test_noise_stays_closed(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    const double sigmas[] = {1, 2, 4, 8};
    for (size_t si = 0; si < sizeof sigmas / sizeof sigmas[0]; si++) {
        rng_state = 100 + si;
        gate *g = new_gate(28, 28, 1, 1000);
        scene s = {.w = 28, .h = 28, .c = 1, .sigma = sigmas[si], .gain = 1};
        int closed = 0, by_change = 0, n = 0;
        for (int f = 0; f < 600; f++) {
            gate_decision d = step(g, &s, buf, (uint64_t)f * FRAME_NS);
            if (f < 5)
                continue;
            n++;
            closed += !d.open;
            by_change += d.verdict == GATE_OPEN_AREA || d.verdict == GATE_OPEN_MEAN;
        }
        gate_stats st;
        gate_get_stats(g, &st);
        printf("noise sigma %g: %d of %d frames closed, %d opened by noise, estimate %.2f "
               "(cell difference, %dx%d grid)\n", sigmas[si], closed, n, by_change, st.sigma,
               st.grid_w, st.grid_h);
        assert_true(closed >= 0.9 * n);
        assert_true(by_change <= n / 100);
        /* a 2x2 box averages 4 pixels; the difference of two frames has sqrt(2) that */
        double expect = sigmas[si] / 2 * sqrt(2);
        assert_true(st.sigma > 0.7 * expect && st.sigma < 1.3 * expect);
        gate_free(g);
    }
}

/* Slow global drift (gain 0.8 -> 1.2 and offset 0 -> +20 over 20 s) is absorbed. */
static void test_drift_stays_closed(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    rng_state = 7;
    gate *g = new_gate(28, 28, 1, 1000);
    scene s = {.w = 28, .h = 28, .c = 1, .sigma = 4, .gain = 0.8};
    int closed = 0, by_change = 0, n = 0;
    const int frames = 600;
    for (int f = 0; f < frames; f++) {
        s.gain = 0.8 + 0.4 * f / frames;
        s.offset = 20.0 * f / frames;
        gate_decision d = step(g, &s, buf, (uint64_t)f * FRAME_NS);
        if (f < 5)
            continue;
        n++;
        closed += !d.open;
        by_change += d.verdict == GATE_OPEN_AREA || d.verdict == GATE_OPEN_MEAN;
    }
    printf("drift: %d of %d frames closed, %d opened by the drift\n", closed, n, by_change);
    assert_true(closed >= 0.9 * n);
    gate_free(g);
}

/* A small object (about 10% of the frame) entering opens the gate on that frame; while it
 * stays the gate closes again; leaving opens it again. At every noise level up to 8. */
static void test_small_object_opens(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    const double sigmas[] = {0, 4, 8};
    const double contrast[] = {40, 60};
    for (size_t si = 0; si < 3; si++)
        for (size_t ci = 0; ci < 2; ci++) {
            rng_state = 31 + si * 3 + ci;
            gate *g = new_gate(28, 28, 1, 1000);
            scene s = {.w = 28, .h = 28, .c = 1, .sigma = sigmas[si], .gain = 1};
            uint64_t t = 0;
            for (int f = 0; f < 20; f++, t += FRAME_NS)
                step(g, &s, buf, t);
            /* 9x9 = 81 of 784 pixels, on a part of the scene it contrasts with */
            s.ox = 4;
            s.oy = 14;
            s.os = 9;
            s.ovalue = scene_px(8, 18, 28, 28) + contrast[ci];
            gate_decision d = step(g, &s, buf, t += FRAME_NS);
            printf("object +%g at noise %g: %s, %.1f%% of cells changed\n", contrast[ci],
                   sigmas[si], gate_verdict_name(d.verdict), 100 * d.changed_share);
            assert_true(d.open);
            assert_int_not_equal(d.verdict, GATE_OPEN_REFRESH);
            int closed = 0;
            for (int f = 0; f < 10; f++)
                closed += !step(g, &s, buf, t += FRAME_NS).open;
            assert_true(closed >= 9);
            s.os = 0;
            d = step(g, &s, buf, t += FRAME_NS);
            assert_true(d.open);
            gate_free(g);
        }
}

/* Nothing changes, no noise: a classification every refresh_ms, none between. */
static void test_refresh_forces_classification(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    rng_state = 3;
    gate *g = new_gate(28, 28, 1, 100);
    scene s = {.w = 28, .h = 28, .c = 1, .sigma = 0, .gain = 1};
    uint64_t last_open = 0;
    int refreshes = 0;
    for (int f = 0; f < 90; f++) {
        uint64_t t = (uint64_t)f * FRAME_NS;
        gate_decision d = step(g, &s, buf, t);
        if (f < 5) {
            if (d.open)
                last_open = t;
            continue;
        }
        if (d.open) {
            assert_int_equal(d.verdict, GATE_OPEN_REFRESH);
            assert_true(t - last_open >= 100000000ull);
            refreshes++;
            last_open = t;
        }
        /* never older than refresh_ms plus one frame */
        assert_true(t - last_open < 100000000ull + FRAME_NS);
    }
    assert_true(refreshes >= 20);
    gate_free(g);
}

/* Light switched on (gain x1.5 at once) is a change, not drift. */
static void test_sudden_lighting_opens(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    rng_state = 5;
    gate *g = new_gate(28, 28, 1, 1000);
    scene s = {.w = 28, .h = 28, .c = 1, .sigma = 2, .gain = 1};
    uint64_t t = 0;
    for (int f = 0; f < 20; f++, t += FRAME_NS)
        step(g, &s, buf, t);
    s.gain = 1.5;
    assert_true(step(g, &s, buf, t).open);
    gate_free(g);
}

/* A camera-scale 224x224 RGB input: 4x4 boxes, a 56x56 grid; an object of 10% opens it;
 * nothing is allocated per frame. */
static void test_rgb_and_no_allocation(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    rng_state = 11;
    gate *g = new_gate(224, 224, 3, 1000);
    gate_stats st;
    gate_get_stats(g, &st);
    assert_int_equal(st.cell, 4);
    assert_int_equal(st.grid_w, 56);
    scene s = {.w = 224, .h = 224, .c = 3, .sigma = 8, .gain = 1};
    uint64_t t = 0;
    for (int f = 0; f < 10; f++, t += FRAME_NS)
        step(g, &s, buf, t);
    struct mallinfo2 before = mallinfo2();
    int closed = 0;
    for (int f = 0; f < 20; f++, t += FRAME_NS)
        closed += !step(g, &s, buf, t).open;
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(before.uordblks, after.uordblks);
    assert_true(closed >= 18);
    s.ox = 30;
    s.oy = 100;
    s.os = 71; /* 71^2 / 224^2 = 10% */
    s.ovalue = scene_px(65, 135, 224, 224) + 40;
    assert_true(step(g, &s, buf, t += FRAME_NS).open);
    gate_free(g);
}

/* An unsure answer is not reused, however still the picture: with min_score 0.9 and every
 * answer scored 0.6, each frame of a static noisy scene is classified ("unsure"), not one is
 * reused; once an answer scores 0.95 the gate closes on the next frame and stays closed. */
static void test_unsure_answer_not_reused(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    rng_state = 41;
    gate *g = new_gate_answers(0.9, 3);
    scene s = {.w = 28, .h = 28, .c = 1, .sigma = 4, .gain = 1};
    uint64_t t = 0;
    int unsure = 0;
    for (int f = 0; f < 60; f++, t += FRAME_NS) {
        gate_decision d = step_answer(g, &s, buf, t, 3, 0.6f);
        assert_true(d.open);
        unsure += d.verdict == GATE_OPEN_UNSURE;
    }
    printf("score 0.6 < min_score 0.9: 60 of 60 frames classified, %d of them unsure\n", unsure);
    /* the warm-up and the confirmation of class 3 come first; every later frame is unsure */
    assert_true(unsure >= 55);
    assert_string_equal(gate_verdict_name(GATE_OPEN_UNSURE), "unsure");
    gate_decision d = step_answer(g, &s, buf, t += FRAME_NS, 3, 0.95f);
    assert_int_equal(d.verdict, GATE_OPEN_UNSURE); /* the 0.6 answer was the reference */
    int closed = 0;
    for (int f = 0; f < 20; f++, t += FRAME_NS)
        closed += step_answer(g, &s, buf, t, 3, 0.95f).verdict == GATE_CLOSED;
    assert_int_equal(closed, 20);
    gate_free(g);
}

/* Settles a gate on a still, noise-free scene with class 1 at this score, and returns the
 * verdict on the next (unchanged) frame. */
static gate_verdict verdict_after(double min_score, float score)
{
    static uint8_t buf[MAXPIX];
    gate *g = new_gate_answers(min_score, 3);
    scene s = {.w = 28, .h = 28, .c = 1, .sigma = 0, .gain = 1};
    uint64_t t = 0;
    gate_decision d = {0};
    for (int f = 0; f < 10; f++, t += FRAME_NS)
        d = step_answer(g, &s, buf, t, 1, score);
    gate_free(g);
    return d.verdict;
}

/* The boundary: a score equal to min_score is reused, the float just below it is not;
 * min_score 0 reuses any answer, even one scored 0. */
static void test_min_score_boundary(void **state)
{
    (void)state;
    const float s09 = 0.9f, below = nextafterf(0.9f, 0.0f);
    assert_int_equal(verdict_after(0.9, s09), GATE_CLOSED);
    assert_int_equal(verdict_after(0.9, below), GATE_OPEN_UNSURE);
    assert_int_equal(verdict_after(0.5, 0.5f), GATE_CLOSED);
    assert_int_equal(verdict_after(0.5, nextafterf(0.5f, 0.0f)), GATE_OPEN_UNSURE);
    assert_int_equal(verdict_after(1.0, 1.0f), GATE_CLOSED);
    assert_int_equal(verdict_after(1.0, 0.999f), GATE_OPEN_UNSURE);
    assert_int_equal(verdict_after(0.0, 0.0f), GATE_CLOSED);
    assert_int_equal(verdict_after(0.0, 0.3f), GATE_CLOSED);
    assert_int_equal(verdict_after(0.0, NAN), GATE_OPEN_UNSURE); /* never a NaN */
}

/* A pending confirmation is not reused: with change_frames 3, an answer that differs from
 * the confirmed label is classified again (verdict "confirm") until 3 answers in a row
 * confirm it, and only then reused; an answer back on the confirmed label is settled at
 * once. Scores are all above min_score. */
static void test_pending_confirmation_not_reused(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    rng_state = 43;
    gate *g = new_gate_answers(0.9, 3);
    scene s = {.w = 28, .h = 28, .c = 1, .sigma = 2, .gain = 1};
    uint64_t t = 0;
    int confirm = 0;
    for (int f = 0; f < 20; f++, t += FRAME_NS)
        confirm += step_answer(g, &s, buf, t, 1, 0.99f).verdict == GATE_OPEN_CONFIRM;
    /* class 1 confirmed in the warm-up (frames 0-2), closed since */
    assert_int_equal(confirm, 0);
    assert_int_equal(step_answer(g, &s, buf, t += FRAME_NS, 1, 0.99f).verdict, GATE_CLOSED);
    /* an object enters; the engine answers class 2 on it */
    s.ox = 4;
    s.oy = 14;
    s.os = 9;
    s.ovalue = scene_px(8, 18, 28, 28) + 60;
    gate_decision d = step_answer(g, &s, buf, t += FRAME_NS, 2, 0.99f);
    assert_int_equal(d.verdict, GATE_OPEN_AREA);
    /* the picture stays; class 2 needs 2 more answers before it is the confirmed label */
    assert_int_equal(step_answer(g, &s, buf, t += FRAME_NS, 2, 0.99f).verdict, GATE_OPEN_CONFIRM);
    assert_int_equal(step_answer(g, &s, buf, t += FRAME_NS, 2, 0.99f).verdict, GATE_OPEN_CONFIRM);
    assert_string_equal(gate_verdict_name(GATE_OPEN_CONFIRM), "confirm");
    int closed = 0;
    for (int f = 0; f < 10; f++, t += FRAME_NS)
        closed += step_answer(g, &s, buf, t, 2, 0.99f).verdict == GATE_CLOSED;
    assert_int_equal(closed, 10);
    /* the object leaves; the engine answers class 3 once, then class 2 again... */
    s.os = 0;
    assert_true(step_answer(g, &s, buf, t += FRAME_NS, 3, 0.99f).open);
    assert_int_equal(step_answer(g, &s, buf, t += FRAME_NS, 2, 0.99f).verdict, GATE_OPEN_CONFIRM);
    /* ...back on the confirmed label 2: settled, reused at once */
    assert_int_equal(step_answer(g, &s, buf, t += FRAME_NS, 2, 0.99f).verdict, GATE_CLOSED);
    gate_free(g);
}

/* publish.change_frames 1: every answer is its own confirmation. */
static void test_no_confirmation_with_one_frame(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    rng_state = 44;
    gate *g = new_gate_answers(0.9, 1);
    scene s = {.w = 28, .h = 28, .c = 1, .sigma = 2, .gain = 1};
    uint64_t t = 0;
    for (int f = 0; f < 10; f++, t += FRAME_NS)
        step_answer(g, &s, buf, t, 1, 0.99f);
    s.os = 9;
    s.ox = 4;
    s.oy = 14;
    s.ovalue = scene_px(8, 18, 28, 28) + 60;
    assert_true(step_answer(g, &s, buf, t += FRAME_NS, 5, 0.99f).open);
    assert_int_equal(step_answer(g, &s, buf, t += FRAME_NS, 5, 0.99f).verdict, GATE_CLOSED);
    gate_free(g);
}

/* A 28x28 gray gate with min_score 0.9, change_frames 3 and this hold_frames. */
static gate *new_gate_hold(int hold_frames)
{
    gate_params p = {.width = 28, .height = 28, .channels = 1, .refresh_ms = 1000,
                     .cell_sigmas = GATE_CELL_SIGMAS_DEFAULT, .min_area = GATE_MIN_AREA_DEFAULT,
                     .min_score = 0.9, .confirm_frames = 3, .hold_frames = hold_frames};
    gate *g = NULL;
    char err[256];
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_OK);
    return g;
}

/* An object moving across a settled scene (class 1 confirmed, scores 0.99): the first
 * moving frame is classified at once (verdict "area"); after it, with hold_frames 2, two
 * frames in three are held and one is classified; with hold_frames 0 every one is. Once the
 * object stops, the frame after the next classification closes. */
static void test_moving_picture_held(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    const int holds[] = {0, 2, 5};
    for (size_t hi = 0; hi < sizeof holds / sizeof holds[0]; hi++) {
        rng_state = 45;
        gate *g = new_gate_hold(holds[hi]);
        scene s = {.w = 28, .h = 28, .c = 1, .sigma = 2, .gain = 1};
        uint64_t t = 0;
        for (int f = 0; f < 10; f++, t += FRAME_NS)
            step_answer(g, &s, buf, t, 1, 0.99f);
        assert_int_equal(step_answer(g, &s, buf, t += FRAME_NS, 1, 0.99f).verdict, GATE_CLOSED);
        s.os = 8;
        s.oy = 10;
        s.ovalue = scene_px(4, 14, 28, 28) + 70;
        int classified = 0, held = 0, run = 0, longest = 0;
        for (int f = 0; f < 18; f++, t += FRAME_NS) {
            s.ox = 1 + f;    /* one pixel a frame */
            gate_decision d = step_answer(g, &s, buf, t, 1, 0.99f);
            if (f == 0)
                assert_int_equal(d.verdict, GATE_OPEN_AREA);
            classified += d.open;
            held += d.verdict == GATE_HELD;
            run = d.verdict == GATE_HELD ? run + 1 : 0;
            longest = run > longest ? run : longest;
            assert_true(d.open || d.verdict == GATE_HELD);
        }
        printf("hold_frames %d: an object moving for 18 frames, %d classified, %d held, at most "
               "%d in a row\n", holds[hi], classified, held, longest);
        assert_int_equal(longest, holds[hi]);
        /* frame 0 at once, then one in (hold + 1) */
        assert_int_equal(classified, 1 + 17 / (holds[hi] + 1));
        /* the object stops: the picture is classified within hold_frames + 1 frames (it
         * still differs from the reference), then the gate closes */
        int opened_after = 0;
        for (int f = 0; f < 10; f++, t += FRAME_NS) {
            gate_decision d = step_answer(g, &s, buf, t, 1, 0.99f);
            opened_after += d.open;
            if (f > holds[hi] + 1)
                assert_int_equal(d.verdict, GATE_CLOSED);
        }
        assert_true(opened_after >= 0 && opened_after <= 1);
        gate_free(g);
    }
    assert_string_equal(gate_verdict_name(GATE_HELD), "held");
}

/* The answer changes while the picture keeps changing (the engine says class 2 from frame
 * k of the motion on): for every phase k of the hold cycle, the first answer of class 2
 * comes at most hold_frames frames after k, the frames after it are classified (a new
 * label being confirmed is never held), and so the change event (3 identical answers) fires
 * at most hold_frames frames later than with every frame classified (k + 2). */
static void test_change_while_held(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    for (int k = 1; k <= 6; k++) {
        rng_state = 46;
        gate *g = new_gate_hold(2);
        debounce deb;
        debounce_init(&deb, 3);
        scene s = {.w = 28, .h = 28, .c = 1, .sigma = 2, .gain = 1};
        uint64_t t = 0;
        for (int f = 0; f < 10; f++, t += FRAME_NS)
            debounce_feed(&deb, 1, NULL), step_answer(g, &s, buf, t, 1, 0.99f);
        assert_int_equal(deb.stable, 1);
        s.os = 8;
        s.oy = 10;
        s.ovalue = scene_px(4, 14, 28, 28) + 70;
        int first = -1, event = -1;
        for (int f = 0; f < 20 && event < 0; f++, t += FRAME_NS) {
            s.ox = 1 + f;
            int answer = f >= k ? 2 : 1;
            gate_decision d = step_answer(g, &s, buf, t, answer, 0.99f);
            if (first >= 0)
                assert_true(d.open);       /* class 2 pending: classified frame by frame */
            if (d.open && answer == 2 && first < 0)
                first = f;
            int previous;
            if (d.open && debounce_feed(&deb, answer, &previous))
                event = f;
        }
        printf("answer 2 from motion frame %d: first classified at %d, change event at %d "
               "(every frame classified: %d)\n", k, first, event, k + 2);
        assert_true(first >= k && first <= k + 2);
        assert_true(event >= k + 2 && event <= k + 2 + 2);
        gate_free(g);
    }
}

/* An unsure answer on an unchanged picture, hold_frames 2: one frame in three is classified
 * (verdict "unsure"), the two after it reuse the answer ("held"). */
static void test_unsure_answer_held(void **state)
{
    (void)state;
    static uint8_t buf[MAXPIX];
    rng_state = 47;
    gate *g = new_gate_hold(2);
    scene s = {.w = 28, .h = 28, .c = 1, .sigma = 4, .gain = 1};
    uint64_t t = 0;
    for (int f = 0; f < 10; f++, t += FRAME_NS)
        step_answer(g, &s, buf, t, 3, 0.6f);
    int unsure = 0, held = 0;
    for (int f = 0; f < 30; f++, t += FRAME_NS) {
        gate_verdict v = step_answer(g, &s, buf, t, 3, 0.6f).verdict;
        unsure += v == GATE_OPEN_UNSURE;
        held += v == GATE_HELD;
        assert_true(v == GATE_OPEN_UNSURE || v == GATE_HELD || v == GATE_OPEN_REFRESH);
    }
    printf("score 0.6, hold_frames 2: of 30 frames %d classified unsure, %d held\n", unsure, held);
    assert_int_equal(unsure, 10);
    assert_int_equal(held, 20);
    gate_free(g);
}

static void test_bad_params(void **state)
{
    (void)state;
    gate *g = (gate *)1;
    char err[256];
    gate_params p = {.width = 28, .height = 28, .channels = 5, .refresh_ms = 1000,
                     .cell_sigmas = 4, .min_area = 0.02};
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_ERR_INVALID_ARG);
    assert_null(g);
    assert_non_null(strstr(err, "1 to 4 channels"));
    p.channels = 1;
    p.min_area = 0;
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_ERR_INVALID_ARG);
    p.min_area = 0.02;
    p.min_score = 1.5;
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "min_score 1.5"));
    p.min_score = -0.1;
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_ERR_INVALID_ARG);
    p.min_score = NAN;
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_ERR_INVALID_ARG);
    p.min_score = 0;
    /* a long, thin frame still gets a grid with cells in it */
    p.min_area = 0.02;
    p.width = 1000;
    p.height = 3;
    assert_int_equal(gate_new(&p, &g, err, sizeof err), BN_OK);
    gate_stats st;
    gate_get_stats(g, &st);
    assert_true(st.grid_w >= 1 && st.grid_h >= 1);
    static uint8_t row[3000];
    assert_true(gate_decide(g, row, 1000, 0).open); /* the first frame */
    gate_free(g);
}

static double bench_ns(int w, int h, int c, int iters)
{
    static uint8_t a[MAXPIX], b[MAXPIX];
    rng_state = 1;
    scene s = {.w = w, .h = h, .c = c, .sigma = 4, .gain = 1};
    render(&s, a);
    render(&s, b);
    gate *g = new_gate(w, h, c, 1000000);
    size_t stride = (size_t)w * (size_t)c;
    uint64_t sum = 0;
    for (int i = 0; i < iters; i++) {
        gate_decision d = gate_decide(g, i & 1 ? a : b, stride, (uint64_t)i * FRAME_NS);
        if (d.open)
            gate_commit(g, 0, 1.0f);
        if (i >= iters / 10)
            sum += d.ns;
    }
    gate_free(g);
    return (double)sum / (iters - iters / 10);
}

/* Not an assertion: the number docs/gate.md quotes. */
static void test_cost(void **state)
{
    (void)state;
    printf("gate cost per frame: 28x28x1 %.2f us, 224x224x3 %.2f us\n",
           bench_ns(28, 28, 1, 20000) / 1e3, bench_ns(224, 224, 3, 2000) / 1e3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noise_stays_closed),
        cmocka_unit_test(test_drift_stays_closed),
        cmocka_unit_test(test_small_object_opens),
        cmocka_unit_test(test_refresh_forces_classification),
        cmocka_unit_test(test_sudden_lighting_opens),
        cmocka_unit_test(test_rgb_and_no_allocation),
        cmocka_unit_test(test_unsure_answer_not_reused),
        cmocka_unit_test(test_min_score_boundary),
        cmocka_unit_test(test_pending_confirmation_not_reused),
        cmocka_unit_test(test_no_confirmation_with_one_frame),
        cmocka_unit_test(test_moving_picture_held),
        cmocka_unit_test(test_change_while_held),
        cmocka_unit_test(test_unsure_answer_held),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests_name("daemon_gate", tests, NULL, NULL);
}
