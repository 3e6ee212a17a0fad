/* Kernel loop for docs/engine.md: the engine's depthwise and pointwise kernels on the
 * paper-scale MobileNetV3's shapes, hot cache, one thread, the instruction set the engine
 * picks (BN_CPU forces one). Prints the median of 64 timings per shape and the sum over the
 * shapes. Build and run (after `make`):
 *   cc -O2 -std=c17 -Iengine bench/engine/kernels.c build/libbasisnet.a -lopenblas -ljansson -lz -lm -lpthread -o /tmp/kernels
 *   /tmp/kernels [depthwise|pointwise] [repetitions per timing, default 6]
 * Compare two builds side by side, alternating runs. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu.h"

enum { TIMINGS = 64 };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *random_floats(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

static const char *act_name(bn_act a)
{
    return a == BN_ACT_HSWISH ? "hswish" : a == BN_ACT_RELU ? "relu" : "none";
}

/* (c, h = w, k, stride, activation) of the specialist's depthwise layers, then the light
 * stage's (MobileNetV3-Small at 128x128) */
static const struct {
    int c, h, k, s;
    bn_act act;
    int light;
} DW[] = {{64, 112, 3, 2, BN_ACT_RELU, 0},    {72, 56, 3, 1, BN_ACT_RELU, 0},    {72, 56, 5, 2, BN_ACT_RELU, 0},
          {120, 28, 5, 1, BN_ACT_RELU, 0},    {240, 28, 3, 2, BN_ACT_HSWISH, 0}, {200, 14, 3, 1, BN_ACT_HSWISH, 0},
          {672, 14, 3, 1, BN_ACT_HSWISH, 0},  {672, 14, 5, 2, BN_ACT_HSWISH, 0}, {960, 7, 5, 1, BN_ACT_HSWISH, 0},
          {16, 64, 3, 2, BN_ACT_RELU, 1},     {72, 32, 3, 2, BN_ACT_RELU, 1},    {88, 16, 3, 1, BN_ACT_RELU, 1},
          {96, 16, 5, 2, BN_ACT_HSWISH, 1},   {240, 8, 5, 1, BN_ACT_HSWISH, 1},  {144, 8, 5, 1, BN_ACT_HSWISH, 1},
          {288, 8, 5, 2, BN_ACT_HSWISH, 1},   {576, 4, 5, 1, BN_ACT_HSWISH, 1}};

/* (pixels, K, N, activation, residual) of its pointwise layers */
static const struct {
    int m, k, n;
    bn_act act;
    int res;
} PW[] = {{112 * 112, 16, 64, BN_ACT_RELU, 0}, {56 * 56, 64, 24, BN_ACT_NONE, 0},   {56 * 56, 24, 72, BN_ACT_RELU, 0},
          {56 * 56, 72, 24, BN_ACT_NONE, 1},   {28 * 28, 40, 120, BN_ACT_RELU, 0},  {28 * 28, 120, 40, BN_ACT_NONE, 1},
          {28 * 28, 40, 240, BN_ACT_HSWISH, 0}, {14 * 14, 112, 672, BN_ACT_HSWISH, 0}, {14 * 14, 672, 112, BN_ACT_NONE, 1},
          {7 * 7, 160, 960, BN_ACT_HSWISH, 0}, {7 * 7, 960, 160, BN_ACT_NONE, 1}};

static double median_of(double *t)
{
    qsort(t, TIMINGS, sizeof t[0], cmp_double);
    return t[TIMINGS / 2];
}

static double run_depthwise(const bn_kern_ops *k, int reps)
{
    double sum[2] = {0, 0};
    for (size_t i = 0; i < sizeof DW / sizeof DW[0]; i++) {
        bn_conv_shape s = {.c = DW[i].c, .oc = DW[i].c, .groups = DW[i].c, .h = DW[i].h, .w = DW[i].h,
                           .kh = DW[i].k, .kw = DW[i].k, .sh = DW[i].s, .sw = DW[i].s, .ph = DW[i].k / 2,
                           .pw = DW[i].k / 2};
        s.oh = s.ow = (s.h + 2 * s.ph - s.kh) / s.sh + 1;
        float *in = random_floats((size_t)s.c * s.h * s.w), *w = random_floats((size_t)s.c * s.kh * s.kw),
              *b = random_floats((size_t)s.c), *o = random_floats((size_t)s.c * s.oh * s.ow);
        double t[TIMINGS];
        for (int r = 0; r < 5; r++)
            k->dwconv(&s, in, w, b, DW[i].act, o, 0, s.oh);
        for (int x = 0; x < TIMINGS; x++) {
            const double t0 = now_s();
            for (int r = 0; r < reps; r++)
                k->dwconv(&s, in, w, b, DW[i].act, o, 0, s.oh);
            t[x] = (now_s() - t0) / reps;
        }
        const double med = median_of(t), madds = (double)s.c * s.oh * s.ow * s.kh * s.kw;
        printf("depthwise %-5s %4dx%3dx%-3d k%d s%d %-6s %8.4f ms %6.1f GFLOP/s\n", DW[i].light ? "light" : "spec",
               s.c, s.h, s.w, s.kh, s.sh, act_name(DW[i].act), med * 1e3, 2 * madds / med / 1e9);
        sum[DW[i].light] += med;
        free(in), free(w), free(b), free(o);
    }
    printf("depthwise total specialist %.4f ms, light %.4f ms\n", sum[0] * 1e3, sum[1] * 1e3);
    return sum[0] + sum[1];
}

static double run_pointwise(const bn_kern_ops *k, int reps)
{
    double sum = 0;
    for (size_t i = 0; i < sizeof PW / sizeof PW[0]; i++) {
        const int M = PW[i].m, K = PW[i].k, N = PW[i].n, panels = (N + 31) / 32;
        float *x = random_floats((size_t)M * K), *wp = random_floats((size_t)panels * 32 * K),
              *b = random_floats((size_t)N), *y = random_floats((size_t)M * N),
              *res = PW[i].res ? random_floats((size_t)M * N) : NULL;
        double t[TIMINGS];
        for (int r = 0; r < 5; r++)
            k->pointwise(0, M, K, N, x, wp, b, res, PW[i].act, y);
        for (int q = 0; q < TIMINGS; q++) {
            const double t0 = now_s();
            for (int r = 0; r < reps; r++)
                k->pointwise(0, M, K, N, x, wp, b, res, PW[i].act, y);
            t[q] = (now_s() - t0) / reps;
        }
        const double med = median_of(t), madds = (double)M * K * N;
        printf("pointwise M %5d K %4d N %4d %-6s%s %8.4f ms %6.1f GFLOP/s\n", M, K, N, act_name(PW[i].act),
               res ? " +res" : "     ", med * 1e3, 2 * madds / med / 1e9);
        sum += med;
        free(x), free(wp), free(b), free(y), free(res);
    }
    printf("pointwise total %.4f ms\n", sum * 1e3);
    return sum;
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "all";
    const int reps = argc > 2 ? atoi(argv[2]) : 6;
    if (reps < 1 || (strcmp(which, "all") && strcmp(which, "depthwise") && strcmp(which, "pointwise"))) {
        fprintf(stderr, "usage: %s [all|depthwise|pointwise] [repetitions per timing >= 1]\n", argv[0]);
        return 2;
    }
    const bn_kern_ops *k = bn_kern();
    printf("kernels %s\n", k->name);
    if (strcmp(which, "pointwise"))
        run_depthwise(k, reps);
    if (strcmp(which, "depthwise"))
        run_pointwise(k, reps);
    return 0;
}
