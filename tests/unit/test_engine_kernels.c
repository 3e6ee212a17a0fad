/* Every CPU kernel of libbasisnet against a plain reference implementation (CHW layout,
 * double accumulation, written independently of engine/kernels.c) on random shapes.
 * Tolerance: |kernel - reference| <= 1e-4 * max(|reference|, 1) unless stated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "kernels.h"

#define TOL 1e-4

typedef struct {
    uint64_t s;
} rng;

static uint32_t rnd(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 11);
}
static int rint_in(rng *r, int lo, int hi) { return lo + (int)(rnd(r) % (uint32_t)(hi - lo + 1)); }
static float rfloat(rng *r) { return (float)((rnd(r) & 0xffffff) / (double)0xffffff * 2.0 - 1.0); }
static float *rand_vec(rng *r, size_t n)
{
    float *v = malloc(n * sizeof *v + 4);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = rfloat(r);
    return v;
}

/* Activations as PyTorch defines them, in double. */
static double ref_act(double x, bn_act a)
{
    double r6 = fmin(fmax(x + 3.0, 0.0), 6.0);
    switch (a) {
    case BN_ACT_RELU: return x > 0 ? x : 0;
    case BN_ACT_RELU6: return fmin(fmax(x, 0.0), 6.0);
    case BN_ACT_HSWISH: return x * r6 / 6.0;
    case BN_ACT_HSIGMOID: return r6 / 6.0;
    case BN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    default: return x;
    }
}

static double max_err = 0;
static void expect_close(const float *got, const double *want, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1.0);
        max_err = fmax(max_err, e);
        if (!(e <= tol))
            fail_msg("%s: element %zu is %.7g, reference %.7g (rel err %.3g > %.1g)", what, i, got[i],
                     want[i], e, tol);
    }
}

/* HWC <-> CHW */
static float *chw_to_hwc(const float *x, int c, int h, int w)
{
    float *y = malloc(sizeof *y * (size_t)c * h * w + 4);
    for (int k = 0; k < c; k++)
        for (int p = 0; p < h * w; p++)
            y[(size_t)p * c + k] = x[(size_t)k * h * w + p];
    return y;
}
static double *hwc_ref(const double *x, int c, int h, int w)
{
    double *y = malloc(sizeof *y * (size_t)c * h * w + 8);
    for (int k = 0; k < c; k++)
        for (int p = 0; p < h * w; p++)
            y[(size_t)p * c + k] = x[(size_t)k * h * w + p];
    return y;
}

/* Reference convolution, CHW, weights (oc, c/g, kh, kw) as PyTorch stores them. */
static double *ref_conv(const bn_conv_shape *s, const float *x, const float *w, const float *b, bn_act act)
{
    double *y = calloc((size_t)s->oc * s->oh * s->ow + 1, sizeof *y);
    int cg = s->c / s->groups, og = s->oc / s->groups;
    for (int o = 0; o < s->oc; o++) {
        int g = o / og;
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                double acc = b ? b[o] : 0;
                for (int ci = 0; ci < cg; ci++)
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            int iy = oy * s->sh - s->ph + ky, ix = ox * s->sw - s->pw + kx;
                            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                continue;
                            acc += (double)x[((size_t)(g * cg + ci) * s->h + iy) * s->w + ix] *
                                   w[(((size_t)o * cg + ci) * s->kh + ky) * s->kw + kx];
                        }
                y[((size_t)o * s->oh + oy) * s->ow + ox] = ref_act(acc, act);
            }
    }
    return y;
}

/* Packs PyTorch conv weights the way the engine's loader documents it. */
static float *pack_conv(const bn_conv_shape *s, const float *w)
{
    int cg = s->c / s->groups;
    size_t n = (size_t)s->oc * cg * s->kh * s->kw;
    float *p = malloc(n * sizeof *p + 4);
    for (int o = 0; o < s->oc; o++)
        for (int ci = 0; ci < cg; ci++)
            for (int ky = 0; ky < s->kh; ky++)
                for (int kx = 0; kx < s->kw; kx++) {
                    float v = w[(((size_t)o * cg + ci) * s->kh + ky) * s->kw + kx];
                    if (bn_conv_is_depthwise(s))
                        p[((size_t)ky * s->kw + kx) * s->c + o] = v;
                    else
                        p[(((size_t)o * s->kh + ky) * s->kw + kx) * cg + ci] = v;
                }
    return p;
}

static void run_conv_case(rng *r, bn_conv_shape s, bn_act act, int with_bias)
{
    s.oh = bn_out_size(s.h, s.kh, s.sh, s.ph);
    s.ow = bn_out_size(s.w, s.kw, s.sw, s.pw);
    if (s.oh < 1 || s.ow < 1)
        return;
    size_t nin = (size_t)s.c * s.h * s.w, nw = (size_t)s.oc * (s.c / s.groups) * s.kh * s.kw;
    float *x = rand_vec(r, nin), *w = rand_vec(r, nw), *b = with_bias ? rand_vec(r, (size_t)s.oc) : NULL;
    double *ref = ref_conv(&s, x, w, b, act);
    double *refh = hwc_ref(ref, s.oc, s.oh, s.ow);
    float *xh = chw_to_hwc(x, s.c, s.h, s.w), *wp = pack_conv(&s, w);
    size_t nout = (size_t)s.oc * s.oh * s.ow;
    float *out = malloc(nout * sizeof *out + 4);
    float *col = malloc(bn_conv2d_scratch(&s) * sizeof(float) + 4);
    bn_conv2d(&s, xh, wp, b, act, out, col);
    char what[160];
    snprintf(what, sizeof what, "conv c%d %dx%d oc%d k%dx%d s%dx%d p%dx%d g%d %s", s.c, s.h, s.w, s.oc, s.kh,
             s.kw, s.sh, s.sw, s.ph, s.pw, s.groups, bn_act_name(act));
    expect_close(out, refh, nout, TOL, what);
    if (bn_conv_is_depthwise(&s) && s.oh >= 3) {
        /* bands of output rows, as the thread pool and the row-banded chains call it: rows
         * [0, 1), [1, oh - 1), [oh - 1, oh) (a band that does not start at the top reads
         * shifted input rows; the small-map tiles are built per band), last band first so
         * that a band writing past its end spoils rows already done */
        for (size_t i = 0; i < nout; i++)
            out[i] = NAN;
        const int cut[] = {0, 1, s.oh - 1, s.oh};
        for (int band = 2; band >= 0; band--)
            bn_kern()->dwconv(&s, xh, wp, b, act, out, cut[band], cut[band + 1]);
        strncat(what, " (row bands)", sizeof what - strlen(what) - 1);
        expect_close(out, refh, nout, TOL, what);
    }
    if (bn_conv_is_gemm(&s)) { /* the session's path: im2col + packed GEMM (conv_gemm) */
        const int K = s.kh * s.kw * s.c;
        float *w32 = malloc(sizeof(float) * bn_p32_floats(s.oc, K));
        assert_non_null(w32);
        bn_pack_p32(wp, s.oc, K, w32); /* (oc, kh, kw, c) is the (oc, K) matrix */
        for (size_t i = 0; i < nout; i++)
            out[i] = NAN;
        bn_kern()->conv_gemm(&s, xh, w32, b, act, out, col);
        strncat(what, " (packed)", sizeof what - strlen(what) - 1);
        expect_close(out, refh, nout, TOL, what);
        free(w32);
    }
    free(x), free(w), free(b), free(ref), free(refh), free(xh), free(wp), free(out), free(col);
}

static void test_conv_dense(void **state)
{
    (void)state;
    rng r = {0x1234567};
    for (int t = 0; t < 60; t++) {
        bn_conv_shape s = {.c = rint_in(&r, 1, 24), .h = rint_in(&r, 1, 14), .w = rint_in(&r, 1, 14),
                           .oc = rint_in(&r, 1, 40), .kh = rint_in(&r, 1, 5), .kw = rint_in(&r, 1, 5),
                           .sh = rint_in(&r, 1, 3), .sw = rint_in(&r, 1, 3), .groups = 1};
        s.ph = rint_in(&r, 0, 2), s.pw = rint_in(&r, 0, 2);
        run_conv_case(&r, s, (bn_act)(t % BN_ACT_COUNT), t % 4 != 3);
    }
    /* 1x1 stride 1: the small-M kernel (<= 64 pixels, any K/N tails) and sgemm beyond */
    static const int pw[][4] = {{1, 1, 1, 1},   {3, 5, 7, 9},   {4, 4, 96, 576}, {8, 8, 13, 6},
                                {5, 7, 17, 33}, {8, 9, 40, 24}, {7, 7, 160, 96}};
    for (size_t i = 0; i < sizeof pw / sizeof pw[0]; i++)
        run_conv_case(&r, (bn_conv_shape){.c = pw[i][2], .h = pw[i][0], .w = pw[i][1], .oc = pw[i][3], .kh = 1,
                                          .kw = 1, .sh = 1, .sw = 1, .groups = 1},
                      (bn_act)(i % BN_ACT_COUNT), i % 3 != 2);
    run_conv_case(&r, (bn_conv_shape){.c = 96, .h = 14, .w = 14, .oc = 160, .kh = 1, .kw = 1, .sh = 1,
                                      .sw = 1, .groups = 1}, BN_ACT_HSWISH, 1);
    /* thin stems (<= 4 input channels, oc a multiple of 8): every activation, with and
     * without bias, 8/16/24 output channels */
    for (int a = 0; a < BN_ACT_COUNT; a++)
        for (int c = 1; c <= 4; c += 2) {
            run_conv_case(&r, (bn_conv_shape){.c = c, .h = 15, .w = 13, .oc = 8 * (1 + (a + c) % 3), .kh = 3,
                                              .kw = 3, .sh = 1 + a % 2, .sw = 1 + a % 2, .ph = 1, .pw = 1,
                                              .groups = 1}, (bn_act)a, (a + c) % 4 != 0);
        }
    /* rows wide enough for the multi-pixel tiles (12 pixels with AVX-512, 6 with AVX2) and
     * the single pixels on both sides of them: strides 1 and 2, 3x3 and 5x5, no padding,
     * channels past the last multiple of 16 */
    const int wide[][7] = {/* c, h, w, oc, k, stride, pad */
                           {3, 9, 41, 16, 3, 2, 1}, {3, 7, 57, 32, 3, 1, 1}, {1, 6, 30, 16, 5, 1, 2},
                           {4, 7, 29, 40, 3, 1, 0}, {2, 11, 64, 24, 5, 2, 2}, {3, 5, 27, 8, 3, 1, 1}};
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        const int *v = wide[i];
        run_conv_case(&r, (bn_conv_shape){.c = v[0], .h = v[1], .w = v[2], .oc = v[3], .kh = v[4], .kw = v[4],
                                          .sh = v[5], .sw = v[5], .ph = v[6], .pw = v[6], .groups = 1},
                      (bn_act)(i % BN_ACT_COUNT), i % 2 == 0);
    }
}

static void test_conv_grouped(void **state)
{
    (void)state;
    rng r = {0xabcdef};
    for (int t = 0; t < 40; t++) {
        int g = rint_in(&r, 2, 4);
        bn_conv_shape s = {.c = g * rint_in(&r, 1, 4), .h = rint_in(&r, 2, 12), .w = rint_in(&r, 2, 12),
                           .oc = g * rint_in(&r, 1, 5), .kh = rint_in(&r, 1, 3), .kw = rint_in(&r, 1, 3),
                           .sh = rint_in(&r, 1, 2), .sw = rint_in(&r, 1, 2), .groups = g};
        s.ph = rint_in(&r, 0, 1), s.pw = rint_in(&r, 0, 1);
        run_conv_case(&r, s, (bn_act)(t % BN_ACT_COUNT), 1);
    }
}

static void test_conv_depthwise(void **state)
{
    (void)state;
    rng r = {0x5eed};
    /* channel counts below, at and above the 32-wide block, odd ones for the tail */
    static const int chans[] = {1, 3, 8, 16, 31, 32, 33, 64, 72, 100};
    for (int t = 0; t < 50; t++) {
        int c = chans[t % 10], k = (t % 3 == 0) ? 5 : 3;
        bn_conv_shape s = {.c = c, .oc = c, .groups = c, .h = rint_in(&r, 1, 13), .w = rint_in(&r, 1, 13),
                           .kh = k, .kw = t % 7 == 0 ? 1 : k, .sh = rint_in(&r, 1, 2), .sw = rint_in(&r, 1, 2)};
        s.ph = s.kh / 2, s.pw = s.kw / 2;
        if (t % 5 == 4)
            s.ph = s.pw = 0;
        run_conv_case(&r, s, (bn_act)(t % BN_ACT_COUNT), t % 6 != 5);
    }
    /* MobileNet windows (3x3, 5x5, strides 1 and 2) on rows with several 4-pixel groups
     * between the borders, channel counts on and off the 16-lane blocks */
    const int mb[][6] = {/* c, h, w, k, stride, pad */
                         {16, 9, 40, 3, 2, 1}, {72, 7, 29, 5, 1, 2}, {24, 6, 17, 5, 2, 2}, {40, 5, 23, 3, 1, 1},
                         {120, 4, 14, 5, 1, 2}, {20, 8, 31, 3, 2, 0}, {48, 5, 12, 5, 2, 1},
                         /* small maps (<= 16 output columns: the zero-padded tiles), widths on
                          * and off the 4-pixel groups, 16-channel blocks with an 8 tail at
                          * stride 2, odd and even row counts, no padding */
                         {24, 8, 8, 5, 1, 2}, {40, 7, 7, 5, 1, 2}, {24, 14, 14, 5, 2, 2}, {8, 4, 4, 3, 1, 1},
                         {56, 13, 11, 3, 2, 1}, {16, 16, 16, 3, 1, 1}, {32, 9, 6, 3, 2, 0}, {72, 3, 5, 5, 1, 2},
                         {48, 33, 31, 3, 2, 1}, {8, 40, 14, 5, 1, 2}};
    for (size_t i = 0; i < sizeof mb / sizeof mb[0]; i++) {
        const int *v = mb[i];
        run_conv_case(&r, (bn_conv_shape){.c = v[0], .oc = v[0], .groups = v[0], .h = v[1], .w = v[2], .kh = v[3],
                                          .kw = v[3], .sh = v[4], .sw = v[4], .ph = v[5], .pw = v[5]},
                      (bn_act)(i % BN_ACT_COUNT), i % 3 != 2);
    }
    /* depth multiplier 2 (groups == c, oc == 2c) takes the grouped sgemm path */
    run_conv_case(&r, (bn_conv_shape){.c = 8, .h = 9, .w = 9, .oc = 16, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                      .ph = 1, .pw = 1, .groups = 8}, BN_ACT_RELU, 1);
}

static void test_activations(void **state)
{
    (void)state;
    float x[64];
    double want[64];
    for (int a = 0; a < BN_ACT_COUNT; a++) {
        float y[64], bias[8];
        for (int i = 0; i < 8; i++)
            bias[i] = 0.25f * (float)i - 1.0f;
        for (int i = 0; i < 64; i++) {
            x[i] = -8.0f + 0.25f * (float)i;
            y[i] = x[i];
            want[i] = ref_act((double)x[i] + bias[i % 8], (bn_act)a);
        }
        bn_bias_act(y, 8, 8, bias, (bn_act)a);
        expect_close(y, want, 64, 1e-6, bn_act_name((bn_act)a));
        for (int i = 0; i < 64; i++)
            assert_true(fabs(bn_act_scalar(x[i], (bn_act)a) - ref_act(x[i], (bn_act)a)) <= 1e-6);
        assert_int_equal(bn_act_parse(bn_act_name((bn_act)a)), a);
    }
    assert_int_equal(bn_act_parse("gelu"), -1);
    /* spot values from PyTorch: hardswish(1) = 2/3, hardsigmoid(-3) = 0, relu6(7) = 6 */
    assert_float_equal(bn_act_scalar(1.0f, BN_ACT_HSWISH), 2.0f / 3.0f, 1e-7);
    assert_float_equal(bn_act_scalar(-3.0f, BN_ACT_HSIGMOID), 0.0f, 0);
    assert_float_equal(bn_act_scalar(7.0f, BN_ACT_RELU6), 6.0f, 0);
}

static void test_linear_add_gap_softmax(void **state)
{
    (void)state;
    rng r = {77};
    for (int t = 0; t < 30; t++) {
        /* out up to 300: groups of four 32-output panels and the groups of 1-3 after them */
        int in = rint_in(&r, 1, 300), out = t < 20 ? rint_in(&r, 1, 50) : rint_in(&r, 100, 300);
        float *x = rand_vec(&r, (size_t)in), *w = rand_vec(&r, (size_t)in * out), *b = rand_vec(&r, (size_t)out);
        double *want = calloc((size_t)out, sizeof *want);
        for (int o = 0; o < out; o++) {
            double acc = b[o];
            for (int i = 0; i < in; i++)
                acc += (double)w[(size_t)o * in + i] * x[i];
            want[o] = ref_act(acc, (bn_act)(t % BN_ACT_COUNT));
        }
        float *y = malloc(sizeof *y * (size_t)out);
        bn_linear(x, in, out, w, b, (bn_act)(t % BN_ACT_COUNT), y);
        expect_close(y, want, (size_t)out, TOL, "linear");
        /* the session's path: the same on packed weights */
        float *wp = malloc(sizeof *wp * bn_p32_floats(out, in));
        assert_non_null(wp);
        bn_pack_p32(w, out, in, wp);
        for (int o = 0; o < out; o++)
            y[o] = NAN;
        bn_gemv(x, in, out, wp, b, (bn_act)(t % BN_ACT_COUNT), y);
        expect_close(y, want, (size_t)out, TOL, "gemv");
        if (t % 3 == 0) { /* no bias */
            for (int o = 0; o < out; o++) {
                double acc = 0;
                for (int i = 0; i < in; i++)
                    acc += (double)w[(size_t)o * in + i] * x[i];
                want[o] = ref_act(acc, (bn_act)(t % BN_ACT_COUNT));
            }
            bn_gemv(x, in, out, wp, NULL, (bn_act)(t % BN_ACT_COUNT), y);
            expect_close(y, want, (size_t)out, TOL, "gemv without bias");
        }
        free(wp);
        /* add */
        float *a2 = rand_vec(&r, (size_t)in), *sum = malloc(sizeof *sum * (size_t)in);
        double *ws = calloc((size_t)in, sizeof *ws);
        for (int i = 0; i < in; i++)
            ws[i] = ref_act((double)x[i] + a2[i], (bn_act)(t % BN_ACT_COUNT));
        bn_add(x, a2, (size_t)in, (bn_act)(t % BN_ACT_COUNT), sum);
        expect_close(sum, ws, (size_t)in, 1e-6, "add");
        free(x), free(w), free(b), free(want), free(y), free(a2), free(sum), free(ws);
    }
    /* gap over (hw, c) */
    float *x = rand_vec(&r, 49 * 5), g[5];
    double want[5] = {0};
    for (int p = 0; p < 49; p++)
        for (int c = 0; c < 5; c++)
            want[c] += x[p * 5 + c] / 49.0;
    bn_gap(x, 49, 5, g);
    expect_close(g, want, 5, 1e-6, "gap");
    free(x);
    /* softmax: sums to 1, stable for large logits, order preserved */
    float z[4] = {1000.0f, 999.0f, -5.0f, 1000.0f}, p[4];
    bn_softmax(z, 4, p);
    double e1 = exp(-1.0), den = 2.0 + e1 + exp(-1005.0);
    double sw[4] = {1.0 / den, e1 / den, exp(-1005.0) / den, 1.0 / den};
    expect_close(p, sw, 4, 1e-6, "softmax");
}

static void test_se(void **state)
{
    (void)state;
    rng r = {99};
    for (int t = 0; t < 10; t++) {
        int c = t < 6 ? rint_in(&r, 1, 40) : rint_in(&r, 100, 200), sq = rint_in(&r, 1, 50), hw = rint_in(&r, 1, 30);
        bn_act act = t % 2 ? BN_ACT_RELU : BN_ACT_HSWISH, gate = t % 3 ? BN_ACT_HSIGMOID : BN_ACT_SIGMOID;
        float *x = rand_vec(&r, (size_t)hw * c), *w1 = rand_vec(&r, (size_t)sq * c), *b1 = rand_vec(&r, (size_t)sq);
        float *w2 = rand_vec(&r, (size_t)c * sq), *b2 = rand_vec(&r, (size_t)c);
        double *pool = calloc((size_t)c, sizeof *pool), *hid = calloc((size_t)sq, sizeof *hid);
        for (int p = 0; p < hw; p++)
            for (int k = 0; k < c; k++)
                pool[k] += x[(size_t)p * c + k] / hw;
        for (int j = 0; j < sq; j++) {
            double a = b1[j];
            for (int k = 0; k < c; k++)
                a += (double)w1[(size_t)j * c + k] * pool[k];
            hid[j] = ref_act(a, act);
        }
        double *want = calloc((size_t)hw * c, sizeof *want);
        for (int k = 0; k < c; k++) {
            double a = b2[k];
            for (int j = 0; j < sq; j++)
                a += (double)w2[(size_t)k * sq + j] * hid[j];
            double gk = ref_act(a, gate);
            for (int p = 0; p < hw; p++)
                want[(size_t)p * c + k] = x[(size_t)p * c + k] * gk;
        }
        float *y = malloc(sizeof *y * (size_t)hw * c), *tmp = malloc(sizeof *tmp * (size_t)(c + sq));
        float *p1 = malloc(sizeof *p1 * bn_p32_floats(sq, c)), *p2 = malloc(sizeof *p2 * bn_p32_floats(c, sq));
        assert_non_null(p1);
        assert_non_null(p2);
        bn_pack_p32(w1, sq, c, p1);
        bn_pack_p32(w2, c, sq, p2);
        bn_se(x, hw, c, sq, p1, b1, p2, b2, act, gate, y, tmp);
        expect_close(y, want, (size_t)hw * c, TOL, "se");
        free(x), free(w1), free(b1), free(w2), free(b2), free(pool), free(hid), free(want), free(y), free(tmp);
        free(p1), free(p2);
    }
}

static void test_pooling(void **state)
{
    (void)state;
    rng r = {4242};
    for (int t = 0; t < 40; t++) {
        bn_conv_shape s = {.c = rint_in(&r, 1, 20), .h = rint_in(&r, 1, 12), .w = rint_in(&r, 1, 12),
                           .kh = rint_in(&r, 1, 4), .kw = rint_in(&r, 1, 4), .sh = rint_in(&r, 1, 3),
                           .sw = rint_in(&r, 1, 3), .groups = 1};
        s.ph = rint_in(&r, 0, s.kh / 2), s.pw = rint_in(&r, 0, s.kw / 2);
        s.oc = s.c;
        s.oh = bn_out_size(s.h, s.kh, s.sh, s.ph), s.ow = bn_out_size(s.w, s.kw, s.sw, s.pw);
        if (s.oh < 1 || s.ow < 1)
            continue;
        size_t n = (size_t)s.c * s.h * s.w, no = (size_t)s.c * s.oh * s.ow;
        float *x = rand_vec(&r, n), *xh = chw_to_hwc(x, s.c, s.h, s.w);
        double *avg = calloc(no, sizeof *avg), *mx = calloc(no, sizeof *mx);
        for (int c = 0; c < s.c; c++)
            for (int oy = 0; oy < s.oh; oy++)
                for (int ox = 0; ox < s.ow; ox++) {
                    double a = 0, m = -INFINITY;
                    for (int ky = 0; ky < s.kh; ky++)
                        for (int kx = 0; kx < s.kw; kx++) {
                            int iy = oy * s.sh - s.ph + ky, ix = ox * s.sw - s.pw + kx;
                            if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w)
                                continue; /* padding: 0 for avg (still counted), -inf for max */
                            double v = x[((size_t)c * s.h + iy) * s.w + ix];
                            a += v;
                            m = fmax(m, v);
                        }
                    size_t o = ((size_t)oy * s.ow + ox) * s.c + c;
                    avg[o] = a / (s.kh * s.kw);
                    mx[o] = m;
                }
        float *y = malloc(no * sizeof *y);
        bn_avgpool(&s, xh, y);
        expect_close(y, avg, no, 1e-6, "avgpool");
        bn_maxpool(&s, xh, y);
        expect_close(y, mx, no, 0, "maxpool");
        free(x), free(xh), free(avg), free(mx), free(y);
    }
}

static void test_bilinear(void **state)
{
    (void)state;
    /* values printed by torch.nn.functional.interpolate(arange(12).view(1,1,3,4), size,
     * mode="bilinear", align_corners=False) */
    float x[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i;
    static const double down[6] = {1.1666667461395264, 2.5, 3.8333334922790527, 7.1666669845581055, 8.5,
                                   9.833333015441895};
    static const double up_row1[7] = {1.6000001430511475, 1.957142949104309, 2.528571605682373,
                                      3.1000001430511475, 3.671428918838501, 4.242857456207275,
                                      4.600000381469727};
    float y[35];
    bn_resize_bilinear(x, 3, 4, 1, y, 2, 3);
    expect_close(y, down, 6, 1e-6, "bilinear 3x4->2x3");
    bn_resize_bilinear(x, 3, 4, 1, y, 5, 7);
    expect_close(y + 7, up_row1, 7, 1e-6, "bilinear 3x4->5x7 row 1");
    assert_float_equal(y[34], 11.0f, 1e-6);
    /* channels are independent: a 3-channel image where channel k = k * 100 + gray */
    float x3[36], y3[105];
    for (int p = 0; p < 12; p++)
        for (int k = 0; k < 3; k++)
            x3[p * 3 + k] = (float)(p + 100 * k);
    bn_resize_bilinear(x3, 3, 4, 3, y3, 5, 7);
    for (int p = 0; p < 35; p++)
        for (int k = 0; k < 3; k++)
            assert_float_equal(y3[p * 3 + k], y[p] + 100.0f * k, 1e-4);
}

/* The preprocessing kernel: normalization exactly as (p / 255 - mean) / std in float32,
 * the avgpool light input against double sums of it, the bilinear one against
 * bn_resize_bilinear (checked against PyTorch above); odd widths, 1 and 3 channels, a
 * row stride wider than the image. */
static void test_preprocess(void **state)
{
    (void)state;
    rng r = {0x9e3779b9};
    const int cases[][6] = {/* h, w, c, pool_k (0: bilinear), oh, ow */
                            {28, 28, 1, 2, 14, 14}, {24, 36, 3, 2, 12, 18}, {27, 21, 3, 3, 9, 7},
                            {30, 22, 3, 0, 17, 13}, {20, 20, 1, 0, 7, 9},   {16, 40, 3, 4, 4, 10}};
    const float mean3[3] = {0.485f, 0.456f, 0.406f}, std3[3] = {0.229f, 0.224f, 0.225f};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int H = cases[t][0], W = cases[t][1], C = cases[t][2], k = cases[t][3];
        const int oh = cases[t][4], ow = cases[t][5];
        const size_t stride = (size_t)W * C + 5, WC = (size_t)W * C;
        uint8_t *img = malloc((size_t)H * stride);
        for (size_t i = 0; i < (size_t)H * stride; i++)
            img[i] = (uint8_t)(rnd(&r) & 0xff);
        float *mean = malloc(WC * sizeof(float)), *sd = malloc(WC * sizeof(float));
        for (size_t x = 0; x < WC; x++) {
            mean[x] = C == 3 ? mean3[x % 3] : 0.2860f;
            sd[x] = C == 3 ? std3[x % 3] : 0.3530f;
        }
        float *spec = malloc((size_t)H * WC * sizeof(float)), *light = malloc((size_t)oh * ow * C * sizeof(float));
        float *tmp = malloc(bn_prep_scratch(W, C, ow) * sizeof(float));
        bn_kern()->preprocess(img, stride, H, W, C, mean, sd, spec, k, oh, ow, light, tmp);
        for (int y = 0; y < H; y++)
            for (size_t x = 0; x < WC; x++) {
                float want = ((float)img[(size_t)y * stride + x] / 255.0f - mean[x]) / sd[x];
                if (spec[(size_t)y * WC + x] != want)
                    fail_msg("preprocess %dx%dx%d: normalized value (%d, %zu) is %.9g, want %.9g", H, W, C, y,
                             x, spec[(size_t)y * WC + x], want);
            }
        double *ref = malloc((size_t)oh * ow * C * sizeof(double));
        if (k > 0) {
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    for (int c = 0; c < C; c++) {
                        double acc = 0;
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                                acc += spec[((size_t)(oy * k + ky) * W + ox * k + kx) * C + c];
                        ref[((size_t)oy * ow + ox) * C + c] = acc / (k * k);
                    }
        } else {
            float *bl = malloc((size_t)oh * ow * C * sizeof(float));
            bn_resize_bilinear(spec, H, W, C, bl, oh, ow);
            for (size_t i = 0; i < (size_t)oh * ow * C; i++)
                ref[i] = bl[i];
            free(bl);
        }
        char what[96];
        snprintf(what, sizeof what, "preprocess %dx%dx%d -> %dx%d (%s)", H, W, C, oh, ow, k ? "avgpool" : "bilinear");
        expect_close(light, ref, (size_t)oh * ow * C, 1e-5, what);
        /* the session's split (avgpool): the light input alone, then the specialist's alone,
         * each bit-identical to the one pass */
        if (k > 0) {
            float *light2 = malloc((size_t)oh * ow * C * sizeof(float)), *spec2 = malloc((size_t)H * WC * sizeof(float));
            assert_non_null(light2);
            assert_non_null(spec2);
            for (size_t i = 0; i < (size_t)H * WC; i++)
                spec2[i] = NAN;
            bn_kern()->preprocess(img, stride, H, W, C, mean, sd, NULL, k, oh, ow, light2, tmp);
            assert_memory_equal(light2, light, (size_t)oh * ow * C * sizeof(float));
            bn_kern()->preprocess(img, stride, H, W, C, mean, sd, spec2, 0, 0, 0, NULL, tmp);
            assert_memory_equal(spec2, spec, (size_t)H * WC * sizeof(float));
            free(light2), free(spec2);
        }
        free(img), free(mean), free(sd), free(spec), free(light), free(tmp), free(ref);
    }
}

static void test_synthesize(void **state)
{
    (void)state;
    rng r = {31337};
    for (int t = 0; t < 10; t++) {
        int n = rint_in(&r, 1, 8);
        size_t p = (size_t)rint_in(&r, 1, 5000);
        float *bases = rand_vec(&r, (size_t)n * p), *alpha = rand_vec(&r, (size_t)n);
        double *want = calloc(p, sizeof *want);
        for (size_t i = 0; i < p; i++)
            for (int k = 0; k < n; k++)
                want[i] += (double)alpha[k] * bases[(size_t)k * p + i];
        float *w = malloc(p * sizeof *w);
        bn_synthesize(bases, n, p, alpha, w);
        expect_close(w, want, p, 1e-5, "synthesize");
        free(bases), free(alpha), free(want), free(w);
    }
}

/* IEEE half decoded independently of the engine: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals
 * 2^-14 * m/1024. */
static double ref_half(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e ? ldexp(1.0 + m / 1024.0, e - 15) : ldexp(m / 1024.0, -14);
    return (h & 0x8000) ? -v : v;
}

static void test_synthesize_f16(void **state)
{
    (void)state;
    rng r = {2718};
    static const size_t sizes[] = {1, 7, 16, 17, 33, 4096, 5003};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int n = 1 + (int)(t % 8);
        size_t p = sizes[t];
        uint16_t *bases = malloc(sizeof *bases * n * p);
        for (size_t i = 0; i < (size_t)n * p; i++) /* finite halves in [-4, 4], some subnormal */
            bases[i] = (uint16_t)((rnd(&r) & 0x8000) | (rnd(&r) % 0x4400));
        float *alpha = rand_vec(&r, (size_t)n), *w = malloc(sizeof *w * p);
        double *want = calloc(p, sizeof *want);
        for (size_t i = 0; i < p; i++)
            for (int k = 0; k < n; k++)
                want[i] += alpha[k] * ref_half(bases[(size_t)k * p + i]);
        bn_synthesize_f16(bases, n, p, alpha, w);
        expect_close(w, want, p, 1e-5, "synthesize_f16");
        free(bases), free(alpha), free(w), free(want);
    }
}

/* Synthesis of packed pointwise weights: output channel counts off the 32-lane panels (the
 * last panel's live lanes are synthesized row by row), f32 and f16 bases; the padding lanes
 * of w are left as they were (zero) and every live weight equals the packed reference. */
static void test_synthesize_p32(void **state)
{
    (void)state;
    rng r = {4242};
    static const int shapes[][2] = {{40, 24}, {72, 40}, {200, 80}, {32, 16}, {8, 3}, {67, 5}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int oc = shapes[t][0], k = shapes[t][1], n = 1 + (int)(t % 8);
        const size_t p = bn_p32_floats(oc, k), live = (size_t)oc * k;
        float *alpha = rand_vec(&r, (size_t)n), *bases = calloc((size_t)n * p, sizeof(float));
        uint16_t *b16 = calloc((size_t)n * p, sizeof *b16);
        double *want = calloc(p, sizeof *want);
        for (int j = 0; j < n; j++) {
            float *raw = rand_vec(&r, live);
            bn_pack_p32(raw, oc, k, bases + (size_t)j * p);
            for (int o = 0; o < oc; o++)
                for (int i = 0; i < k; i++) {
                    size_t at = bn_p32_index(o, i, k);
                    want[at] += (double)alpha[j] * raw[(size_t)o * k + i];
                    b16[(size_t)j * p + at] = (uint16_t)((rnd(&r) & 0x8000) | (rnd(&r) % 0x4400));
                }
            free(raw);
        }
        float *w = calloc(p, sizeof *w);
        bn_synthesize_p32(bases, NULL, n, oc, k, alpha, w);
        expect_close(w, want, p, 1e-5, "synthesize_p32"); /* padding lanes: want 0, w 0 */
        /* into a buffer another layer used (the session's shared scratch): the padding
         * lanes are zeroed after synthesis */
        for (size_t i = 0; i < p; i++)
            w[i] = 7.0f;
        bn_synthesize_p32(bases, NULL, n, oc, k, alpha, w);
        bn_p32_zero_padding(oc, k, w);
        expect_close(w, want, p, 1e-5, "synthesize_p32 into a used buffer + bn_p32_zero_padding");
        memset(want, 0, p * sizeof *want);
        for (int j = 0; j < n; j++)
            for (size_t i = 0; i < p; i++)
                want[i] += alpha[j] * ref_half(b16[(size_t)j * p + i]);
        memset(w, 0, p * sizeof *w);
        bn_synthesize_p32(NULL, b16, n, oc, k, alpha, w);
        expect_close(w, want, p, 1e-5, "synthesize_p32 f16");
        free(alpha), free(bases), free(b16), free(want), free(w);
    }
}

/* The packed pointwise GEMM with its fused epilogue: odd row counts (micro-kernel tails),
 * channel counts off the 32-column panels, every activation, with and without bias and
 * residual. */
static void test_pointwise_packed(void **state)
{
    (void)state;
    rng r = {.s = 0x9e3779b97f4a7c15ull};
    /* last panels of 17-24 live columns (N = 17, 24, 56, 120) run the 24-column AVX2 tile */
    static const int shapes[][3] = {{1, 1, 1},   {13, 7, 33},  {12, 16, 32},  {49, 160, 960},
                                    {25, 3, 17}, {7, 64, 100}, {196, 40, 72}, {3, 200, 1},
                                    {31, 24, 24}, {11, 40, 120}, {5, 9, 56}, {7, 5, 22}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++)
        for (int v = 0; v < 4; v++) {
            const int M = shapes[t][0], K = shapes[t][1], N = shapes[t][2];
            const bn_act act = (bn_act)((t + (size_t)v) % BN_ACT_COUNT);
            float *x = rand_vec(&r, (size_t)M * K), *w = rand_vec(&r, (size_t)N * K);
            float *b = v & 1 ? rand_vec(&r, (size_t)N) : NULL;
            float *res = v & 2 ? rand_vec(&r, (size_t)M * N) : NULL;
            float *wp = malloc(sizeof(float) * bn_p32_floats(N, K));
            float *y = malloc(sizeof(float) * (size_t)M * N);
            double *want = malloc(sizeof(double) * (size_t)M * N);
            assert_non_null(wp);
            assert_non_null(y);
            assert_non_null(want);
            bn_pack_p32(w, N, K, wp);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double acc = b ? b[n] : 0.0;
                    for (int k = 0; k < K; k++)
                        acc += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
                    if (res)
                        acc += res[(size_t)m * N + n];
                    want[(size_t)m * N + n] = ref_act(acc, act);
                }
            bn_pointwise(M, K, N, x, wp, b, res, act, y);
            char what[96];
            snprintf(what, sizeof what, "pointwise %dx%dx%d act %s bias %d res %d", M, K, N, bn_act_name(act),
                     b != NULL, res != NULL);
            expect_close(y, want, (size_t)M * N, TOL, what);
            free(x);
            free(w);
            free(b);
            free(res);
            free(wp);
            free(y);
            free(want);
        }
}

static int report(void **state)
{
    (void)state;
    printf("kernels: max relative error seen %.3g\n", max_err);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activations),  cmocka_unit_test(test_conv_dense),
        cmocka_unit_test(test_conv_grouped), cmocka_unit_test(test_conv_depthwise),
        cmocka_unit_test(test_linear_add_gap_softmax), cmocka_unit_test(test_se),
        cmocka_unit_test(test_pooling),      cmocka_unit_test(test_bilinear),
        cmocka_unit_test(test_preprocess),
        cmocka_unit_test(test_synthesize),   cmocka_unit_test(test_synthesize_f16),
        cmocka_unit_test(test_pointwise_packed), cmocka_unit_test(test_synthesize_p32),
    };
    /* every kernel table this CPU can run, each against the same references */
    int failed = 0, ran = 0;
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (bn_kern_select((bn_isa)isa) != 0) {
            printf("kernels %s: this CPU cannot run them (not tested here)\n", bn_isa_name((bn_isa)isa));
            continue;
        }
        printf("kernels %s:\n", bn_isa_name((bn_isa)isa));
        max_err = 0;
        failed += cmocka_run_group_tests_name(bn_isa_name((bn_isa)isa), tests, NULL, report);
        ran++;
    }
    return ran == 0 ? 1 : failed;
}
