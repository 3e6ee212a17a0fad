/* CPU kernels of libbasisnet (HWC activations): OpenBLAS sgemm for pointwise and im2col
 * convolutions, direct kernels where BLAS does not pay (depthwise, thin stems, 1x1 on small
 * maps), bias folded into the GEMM output, F16C synthesis. Table in docs/engine.md. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "kernels.h"
#include "safetensors.h"

#include <cblas.h>
#include <float.h>
#if defined(__AVX2__) && defined(__FMA__) || defined(__F16C__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#define HAVE_CONV_THIN 1
#else
#define HAVE_CONV_THIN 0
#endif
#include <math.h>
#include <stdbool.h>
#include <string.h>

static const char *const act_names[BN_ACT_COUNT] = {
    [BN_ACT_NONE] = "none",         [BN_ACT_RELU] = "relu",
    [BN_ACT_RELU6] = "relu6",       [BN_ACT_HSWISH] = "hswish",
    [BN_ACT_HSIGMOID] = "hsigmoid", [BN_ACT_SIGMOID] = "sigmoid",
};

int bn_act_parse(const char *s)
{
    for (int i = 0; s && i < BN_ACT_COUNT; i++)
        if (strcmp(s, act_names[i]) == 0)
            return i;
    return -1;
}

const char *bn_act_name(bn_act a) { return (unsigned)a < BN_ACT_COUNT ? act_names[a] : "?"; }

static inline float relu6f(float x) { return fminf(fmaxf(x, 0.0f), 6.0f); }

float bn_act_scalar(float x, bn_act a)
{
    switch (a) {
    case BN_ACT_RELU: return fmaxf(x, 0.0f);
    case BN_ACT_RELU6: return relu6f(x);
    case BN_ACT_HSWISH: return x * relu6f(x + 3.0f) / 6.0f;
    case BN_ACT_HSIGMOID: return relu6f(x + 3.0f) / 6.0f;
    case BN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    default: return x;
    }
}

int bn_out_size(int in, int k, int s, int p)
{
    long span = (long)in + 2L * p - k;
    if (span < 0 || s <= 0)
        return 0;
    return (int)(span / s + 1);
}

/* One loop per activation keeps each loop branch-free and vectorizable. The max/min
 * forms are written as ternaries (not fmaxf) so GCC vectorizes them without -ffast-math. */
#define BIAS_ACT_LOOP(EXPR)                                                     \
    for (size_t r = 0; r < rows; r++) {                                         \
        float *restrict yr = y + r * (size_t)cols;                              \
        if (bias)                                                               \
            for (int c = 0; c < cols; c++) {                                    \
                float x = yr[c] + bias[c];                                      \
                yr[c] = (EXPR);                                                 \
            }                                                                   \
        else                                                                    \
            for (int c = 0; c < cols; c++) {                                    \
                float x = yr[c];                                                \
                yr[c] = (EXPR);                                                 \
            }                                                                   \
    }

#define CLAMP6(v) ((v) < 0.0f ? 0.0f : ((v) > 6.0f ? 6.0f : (v)))

/* Activation of n values held in a small array the compiler keeps in registers. */
#define ACT_ARRAY(acc, n, act)                                                            \
    switch (act) {                                                                        \
    case BN_ACT_RELU: for (int j = 0; j < (n); j++) acc[j] = acc[j] > 0.0f ? acc[j] : 0.0f; break; \
    case BN_ACT_RELU6: for (int j = 0; j < (n); j++) acc[j] = CLAMP6(acc[j]); break;       \
    case BN_ACT_HSWISH:                                                                   \
        for (int j = 0; j < (n); j++) acc[j] = acc[j] * CLAMP6(acc[j] + 3.0f) / 6.0f;     \
        break;                                                                            \
    case BN_ACT_HSIGMOID: for (int j = 0; j < (n); j++) acc[j] = CLAMP6(acc[j] + 3.0f) / 6.0f; break; \
    case BN_ACT_SIGMOID: for (int j = 0; j < (n); j++) acc[j] = 1.0f / (1.0f + expf(-acc[j])); break; \
    default: break;                                                                       \
    }

void bn_bias_act(float *restrict y, size_t rows, int cols, const float *restrict bias, bn_act act)
{
    switch (act) {
    case BN_ACT_RELU: BIAS_ACT_LOOP(x > 0.0f ? x : 0.0f) break;
    case BN_ACT_RELU6: BIAS_ACT_LOOP(CLAMP6(x)) break;
    case BN_ACT_HSWISH: BIAS_ACT_LOOP(x * CLAMP6(x + 3.0f) / 6.0f) break;
    case BN_ACT_HSIGMOID: BIAS_ACT_LOOP(CLAMP6(x + 3.0f) / 6.0f) break;
    case BN_ACT_SIGMOID: BIAS_ACT_LOOP(1.0f / (1.0f + expf(-x))) break;
    default:
        if (bias)
            BIAS_ACT_LOOP(x)
        break;
    }
}

int bn_conv_is_depthwise(const bn_conv_shape *s)
{
    return s->groups > 1 && s->groups == s->c && s->oc == s->c;
}

static int conv_is_pointwise(const bn_conv_shape *s)
{
    return s->groups == 1 && s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 &&
           s->pw == 0;
}

/* Stems (1-4 input channels): im2col would copy 4-12 bytes per tap; a direct kernel that
 * broadcasts each input value against 8 or 16 output channels does better. */
static int conv_is_thin(const bn_conv_shape *s)
{
    return HAVE_CONV_THIN && s->groups == 1 && s->c <= 4 && s->oc % 8 == 0 && s->oc <= 256;
}

size_t bn_conv2d_scratch(const bn_conv_shape *s)
{
    if (bn_conv_is_depthwise(s) || conv_is_pointwise(s))
        return 0;
    if (conv_is_thin(s))
        return (size_t)s->oc * (s->kh * s->kw * s->c + 1); /* transposed weights + bias */
    return (size_t)s->oh * s->ow * s->kh * s->kw * (size_t)(s->c / s->groups);
}

/* Rows of the im2col matrix, one per output pixel: (kh, kw, cg) of group g, zero where the
 * window hangs over the padding. Matches the packed weight order (oc, kh, kw, cg). */
static void im2col(const bn_conv_shape *s, const float *in, int g, float *col)
{
    const int cg = s->c / s->groups;
    const size_t K = (size_t)s->kh * s->kw * cg;
    for (int oy = 0; oy < s->oh; oy++)
        for (int ox = 0; ox < s->ow; ox++) {
            float *row = col + ((size_t)oy * s->ow + ox) * K;
            for (int ky = 0; ky < s->kh; ky++) {
                int iy = oy * s->sh - s->ph + ky;
                float *dst = row + (size_t)ky * s->kw * cg;
                if (iy < 0 || iy >= s->h) {
                    memset(dst, 0, sizeof(float) * s->kw * cg);
                    continue;
                }
                for (int kx = 0; kx < s->kw; kx++) {
                    int ix = ox * s->sw - s->pw + kx;
                    float *d = dst + (size_t)kx * cg;
                    if (ix < 0 || ix >= s->w)
                        memset(d, 0, sizeof(float) * cg);
                    else
                        memcpy(d, in + ((size_t)iy * s->w + ix) * s->c + (size_t)g * cg,
                               sizeof(float) * cg);
                }
            }
        }
}

#if defined(__AVX2__) && defined(__FMA__)
/* Activation of one register (sigmoid goes through memory for expf). */
static inline __m256 act256(__m256 v, bn_act act)
{
    const __m256 zero = _mm256_setzero_ps(), three = _mm256_set1_ps(3.0f), six = _mm256_set1_ps(6.0f);
    switch (act) {
    case BN_ACT_RELU: return _mm256_max_ps(v, zero);
    case BN_ACT_RELU6: return _mm256_min_ps(_mm256_max_ps(v, zero), six);
    case BN_ACT_HSWISH:
        return _mm256_mul_ps(v, _mm256_div_ps(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, three), zero), six), six));
    case BN_ACT_HSIGMOID:
        return _mm256_div_ps(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, three), zero), six), six);
    case BN_ACT_SIGMOID: {
        float t[8];
        _mm256_storeu_ps(t, v);
        for (int j = 0; j < 8; j++)
            t[j] = 1.0f / (1.0f + expf(-t[j]));
        return _mm256_loadu_ps(t);
    }
    default: return v;
    }
}

/* Thin convolution with intrinsics: GCC turned the broadcast-FMA loop into scalar code.
 * 16 output channels (two registers) per pass; wt is (kh, kw, c, oc) then the bias. */
static void conv_thin(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
                      bn_act act, float *out, float *wt)
{
    const int C = s->c, OC = s->oc, W = s->w, kw = s->kw;
    const int K = s->kh * kw * C;
    for (int o = 0; o < OC; o++)
        for (int k = 0; k < K; k++)
            wt[(size_t)k * OC + o] = w[(size_t)o * K + k];
    float *b = wt + (size_t)K * OC;
    for (int o = 0; o < OC; o++)
        b[o] = bias ? bias[o] : 0.0f;
    for (int oy = 0; oy < s->oh; oy++) {
        const int iy0 = oy * s->sh - s->ph;
        const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = iy0 + s->kh > s->h ? s->h - iy0 : s->kh;
        for (int ox = 0; ox < s->ow; ox++) {
            const int ix0 = ox * s->sw - s->pw;
            const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + kw > W ? W - ix0 : kw;
            float *o = out + ((size_t)oy * s->ow + ox) * OC;
            for (int c = 0; c < OC; c += 16) {
                const int two = c + 16 <= OC;
                __m256 a0 = _mm256_loadu_ps(b + c), a1 = two ? _mm256_loadu_ps(b + c + 8) : _mm256_setzero_ps();
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        const float *ip = in + ((size_t)(iy0 + ky) * W + ix0 + kx) * C;
                        const float *wp = wt + ((size_t)ky * kw + kx) * C * OC + c;
                        for (int ci = 0; ci < C; ci++) {
                            const __m256 x = _mm256_broadcast_ss(ip + ci);
                            a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(wp + (size_t)ci * OC), a0);
                            if (two)
                                a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(wp + (size_t)ci * OC + 8), a1);
                        }
                    }
                _mm256_storeu_ps(o + c, act256(a0, act));
                if (two)
                    _mm256_storeu_ps(o + c + 8, act256(a1, act));
            }
        }
    }
}
#endif

#if HAVE_CONV_THIN
static inline float hsum256(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* C[m][n] += sum_k A[m][k] * W[n][k] for few rows M (1x1 convolutions on 8x8 and smaller
 * maps): OpenBLAS repacks W on every call, which costs more than the product itself at
 * this size. 4 weight rows x 2 input rows = 8 accumulators, dot products along k. */
static void gemm_nt_small(int M, int N, int K, const float *A, const float *W, float *C, int ldc)
{
    const int K8 = K / 8 * 8;
    for (int n = 0; n < N; n += 4) {
        const int nn = N - n < 4 ? N - n : 4;
        const float *w[4];
        for (int i = 0; i < 4; i++)
            w[i] = W + (size_t)(n + (i < nn ? i : 0)) * K;
        for (int m = 0; m < M; m += 2) {
            const float *a0 = A + (size_t)m * K, *a1 = m + 1 < M ? a0 + K : a0;
            __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00, s03 = s00;
            __m256 s10 = s00, s11 = s00, s12 = s00, s13 = s00;
            for (int k = 0; k < K8; k += 8) {
                const __m256 x0 = _mm256_loadu_ps(a0 + k), x1 = _mm256_loadu_ps(a1 + k);
                const __m256 w0 = _mm256_loadu_ps(w[0] + k), w1 = _mm256_loadu_ps(w[1] + k);
                const __m256 w2 = _mm256_loadu_ps(w[2] + k), w3 = _mm256_loadu_ps(w[3] + k);
                s00 = _mm256_fmadd_ps(x0, w0, s00);
                s01 = _mm256_fmadd_ps(x0, w1, s01);
                s02 = _mm256_fmadd_ps(x0, w2, s02);
                s03 = _mm256_fmadd_ps(x0, w3, s03);
                s10 = _mm256_fmadd_ps(x1, w0, s10);
                s11 = _mm256_fmadd_ps(x1, w1, s11);
                s12 = _mm256_fmadd_ps(x1, w2, s12);
                s13 = _mm256_fmadd_ps(x1, w3, s13);
            }
            float r[2][4] = {{hsum256(s00), hsum256(s01), hsum256(s02), hsum256(s03)},
                             {hsum256(s10), hsum256(s11), hsum256(s12), hsum256(s13)}};
            for (int k = K8; k < K; k++)
                for (int i = 0; i < 4; i++) {
                    r[0][i] = fmaf(a0[k], w[i][k], r[0][i]);
                    r[1][i] = fmaf(a1[k], w[i][k], r[1][i]);
                }
            for (int j = 0; j < 2 && m + j < M; j++)
                for (int i = 0; i < nn; i++)
                    C[(size_t)(m + j) * ldc + n + i] += r[j][i];
        }
    }
}
#ifndef SMALL_M
#define SMALL_M 16 /* measured: OpenBLAS (AVX-512 kernels) wins from 49 pixels on */
#endif
#endif

void bn_conv2d(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
               bn_act act, float *out, float *col)
{
    if (bn_conv_is_depthwise(s)) {
        bn_dwconv(s, in, w, bias, act, out);
        return;
    }
#if HAVE_CONV_THIN
    if (conv_is_thin(s)) {
        conv_thin(s, in, w, bias, act, out, col);
        return;
    }
#endif
    const int M = s->oh * s->ow;
    /* The bias goes into C first and sgemm accumulates with beta = 1: OpenBLAS skips its
     * beta pass and only the activation (if any) needs another pass. */
    const float beta = bias ? 1.0f : 0.0f;
    if (bias)
        for (int r = 0; r < M; r++)
            memcpy(out + (size_t)r * s->oc, bias, sizeof(float) * s->oc);
    if (conv_is_pointwise(s)) {
        /* HWC input is already the (M, C) matrix: out = in * W^T. */
#if HAVE_CONV_THIN
        if (M <= SMALL_M) {
            if (!bias)
                memset(out, 0, sizeof(float) * (size_t)M * s->oc);
            gemm_nt_small(M, s->oc, s->c, in, w, out, s->oc);
            if (act != BN_ACT_NONE)
                bn_bias_act(out, (size_t)M, s->oc, NULL, act);
            return;
        }
#endif
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, s->oc, s->c, 1.0f, in, s->c, w,
                    s->c, beta, out, s->oc);
    } else {
        const int cg = s->c / s->groups, og = s->oc / s->groups;
        const int K = s->kh * s->kw * cg;
        for (int g = 0; g < s->groups; g++) {
            im2col(s, in, g, col);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, og, K, 1.0f, col, K,
                        w + (size_t)g * og * K, K, beta, out + (size_t)g * og, s->oc);
        }
    }
    if (act != BN_ACT_NONE)
        bn_bias_act(out, (size_t)M, s->oc, NULL, act);
}

/* One output pixel, channels [c0, c0 + B) of a depthwise convolution: B accumulators stay
 * in registers across the kh x kw taps (B = 32: four AVX2 registers; B = 8: one), with
 * explicit fmaf because -std=c17 turns off GCC's FMA contraction. */
#define DW_BLOCK_FN(B)                                                                    \
    static inline void dw_block##B(const float *restrict in, const float *restrict w,     \
                                   const float *restrict bias, float *restrict o, int C,  \
                                   int W, int kw, int ky0, int ky1, int kx0, int kx1,     \
                                   int iy0, int ix0, bn_act act)                          \
    {                                                                                     \
        float acc[B];                                                                     \
        for (int j = 0; j < B; j++)                                                       \
            acc[j] = bias ? bias[j] : 0.0f;                                               \
        for (int ky = ky0; ky < ky1; ky++)                                                \
            for (int kx = kx0; kx < kx1; kx++) {                                          \
                const float *restrict ip = in + ((size_t)(iy0 + ky) * W + (ix0 + kx)) * C; \
                const float *restrict wp = w + ((size_t)ky * kw + kx) * C;                \
                for (int j = 0; j < B; j++)                                               \
                    acc[j] = fmaf(ip[j], wp[j], acc[j]);                                  \
            }                                                                             \
        ACT_ARRAY(acc, B, act)                                                            \
        for (int j = 0; j < B; j++)                                                       \
            o[j] = acc[j];                                                                \
    }
DW_BLOCK_FN(32)
DW_BLOCK_FN(8)
DW_BLOCK_FN(1)

/* Four horizontally adjacent output pixels x B channels, window fully inside the input:
 * each weight vector loaded once feeds four FMAs (the per-pixel blocks above need two
 * loads per FMA). B = 16 keeps whole cache lines per load and 8 accumulator registers.
 * Raw sums are stored; the caller applies the activation to the 4 pixels in one pass
 * (doing it here spilled the accumulators to the stack). */
#define DW_TILE_FN(B)                                                                       \
    static inline void dw_tile4x##B(const float *restrict in, const float *restrict w,      \
                                    const float *restrict bias, float *restrict o, int C,   \
                                    int W, int kh, int kw, int sw, int iy0, int ix0)        \
    {                                                                                       \
        float a0[B], a1[B], a2[B], a3[B];                                                   \
        for (int j = 0; j < B; j++)                                                         \
            a0[j] = a1[j] = a2[j] = a3[j] = bias ? bias[j] : 0.0f;                          \
        const size_t step = (size_t)sw * C;                                                \
        for (int ky = 0; ky < kh; ky++) {                                                   \
            const float *restrict row = in + ((size_t)(iy0 + ky) * W + ix0) * C;            \
            const float *restrict wr = w + (size_t)ky * kw * C;                             \
            for (int kx = 0; kx < kw; kx++) {                                               \
                const float *restrict p = row + (size_t)kx * C;                             \
                const float *restrict wp = wr + (size_t)kx * C;                             \
                for (int j = 0; j < B; j++) {                                               \
                    a0[j] = fmaf(p[j], wp[j], a0[j]);                                       \
                    a1[j] = fmaf(p[step + j], wp[j], a1[j]);                                \
                    a2[j] = fmaf(p[2 * step + j], wp[j], a2[j]);                            \
                    a3[j] = fmaf(p[3 * step + j], wp[j], a3[j]);                            \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        for (int j = 0; j < B; j++) {                                                       \
            o[j] = a0[j];                                                                   \
            o[C + j] = a1[j];                                                               \
            o[2 * C + j] = a2[j];                                                           \
            o[3 * C + j] = a3[j];                                                           \
        }                                                                                   \
    }
DW_TILE_FN(16)
DW_TILE_FN(8)

/* All channels of one output pixel, window clipped to [ky0,ky1) x [kx0,kx1). */
static inline void dw_pixel(const bn_conv_shape *s, const float *in, const float *w,
                            const float *bias, bn_act act, float *out, int oy, int ox, int c0)
{
    const int C = s->c;
    const int iy0 = oy * s->sh - s->ph, ix0 = ox * s->sw - s->pw;
    const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = iy0 + s->kh > s->h ? s->h - iy0 : s->kh;
    const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + s->kw > s->w ? s->w - ix0 : s->kw;
    float *o = out + ((size_t)oy * s->ow + ox) * C;
    int c = c0;
    for (; c + 32 <= C; c += 32)
        dw_block32(in + c, w + c, bias ? bias + c : NULL, o + c, C, s->w, s->kw, ky0, ky1, kx0, kx1,
                   iy0, ix0, act);
    for (; c + 8 <= C; c += 8)
        dw_block8(in + c, w + c, bias ? bias + c : NULL, o + c, C, s->w, s->kw, ky0, ky1, kx0, kx1,
                  iy0, ix0, act);
    for (; c < C; c++)
        dw_block1(in + c, w + c, bias ? bias + c : NULL, o + c, C, s->w, s->kw, ky0, ky1, kx0, kx1,
                  iy0, ix0, act);
}

void bn_dwconv(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
               bn_act act, float *out)
{
    const int C = s->c, C8 = C / 8 * 8;
    /* output columns whose window lies inside the input horizontally */
    int ox_lo = (s->pw + s->sw - 1) / s->sw;
    int ox_hi = s->w - s->kw + s->pw >= 0 ? (s->w - s->kw + s->pw) / s->sw + 1 : 0;
    if (ox_hi > s->ow)
        ox_hi = s->ow;
    if (ox_lo > ox_hi)
        ox_lo = ox_hi;
    for (int oy = 0; oy < s->oh; oy++) {
        const int iy0 = oy * s->sh - s->ph;
        if (iy0 < 0 || iy0 + s->kh > s->h || C8 == 0) {
            for (int ox = 0; ox < s->ow; ox++)
                dw_pixel(s, in, w, bias, act, out, oy, ox, 0);
            continue;
        }
        int ox = 0;
        for (; ox < ox_lo; ox++)
            dw_pixel(s, in, w, bias, act, out, oy, ox, 0);
        for (; ox + 4 <= ox_hi; ox += 4) {
            const int ix0 = ox * s->sw - s->pw;
            float *o = out + ((size_t)oy * s->ow + ox) * C;
            int c = 0;
            for (; c + 16 <= C8; c += 16)
                dw_tile4x16(in + c, w + c, bias ? bias + c : NULL, o + c, C, s->w, s->kh, s->kw, s->sw,
                            iy0, ix0);
            for (; c < C8; c += 8)
                dw_tile4x8(in + c, w + c, bias ? bias + c : NULL, o + c, C, s->w, s->kh, s->kw, s->sw, iy0,
                           ix0);
            if (act != BN_ACT_NONE) {
                if (C8 == C) {
                    bn_bias_act(o, 1, 4 * C, NULL, act);
                } else {
                    for (int k = 0; k < 4; k++)
                        bn_bias_act(o + (size_t)k * C, 1, C8, NULL, act);
                }
            }
            if (C8 < C)
                for (int k = 0; k < 4; k++)
                    dw_pixel(s, in, w, bias, act, out, oy, ox + k, C8);
        }
        for (; ox < s->ow; ox++)
            dw_pixel(s, in, w, bias, act, out, oy, ox, 0);
    }
}

void bn_linear(const float *x, int in, int out, const float *w, const float *bias, bn_act act,
               float *y)
{
    if (bias)
        memcpy(y, bias, sizeof(float) * (size_t)out);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, bias ? 1.0f : 0.0f, y, 1);
    if (act != BN_ACT_NONE)
        bn_bias_act(y, 1, out, NULL, act);
}

void bn_add(const float *restrict a, const float *restrict b, size_t n, bn_act act,
            float *restrict y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
    if (act != BN_ACT_NONE)
        bn_bias_act(y, 1, (int)n, NULL, act);
}

void bn_gap(const float *restrict in, int hw, int c, float *restrict out)
{
    for (int j = 0; j < c; j++)
        out[j] = 0.0f;
    for (int p = 0; p < hw; p++)
        for (int j = 0; j < c; j++)
            out[j] += in[(size_t)p * c + j];
    const float inv = 1.0f / (float)hw;
    for (int j = 0; j < c; j++)
        out[j] *= inv;
}

void bn_se(const float *restrict x, int hw, int c, int squeeze, const float *w1,
           const float *b1, const float *w2, const float *b2, bn_act act, bn_act gate,
           float *restrict y, float *restrict tmp)
{
    float *pooled = tmp, *hidden = tmp + c;
    bn_gap(x, hw, c, pooled);
    bn_linear(pooled, c, squeeze, w1, b1, act, hidden);
    bn_linear(hidden, squeeze, c, w2, b2, gate, pooled);
    for (int p = 0; p < hw; p++)
        for (int j = 0; j < c; j++)
            y[(size_t)p * c + j] = x[(size_t)p * c + j] * pooled[j];
}

/* One window loop for both poolings: padding cells are skipped (average pooling still
 * divides by kh*kw, see kernels.h). `is_max` is a constant at each call, so the compiler
 * emits two specialised loops. */
static inline void pool_nhwc(const bn_conv_shape *s, const float *in, float *out, bool is_max)
{
    const int C = s->c;
    const float inv = 1.0f / (float)(s->kh * s->kw);
    for (int oy = 0; oy < s->oh; oy++)
        for (int ox = 0; ox < s->ow; ox++) {
            float *restrict o = out + ((size_t)oy * s->ow + ox) * C;
            for (int c = 0; c < C; c++)
                o[c] = is_max ? -INFINITY : 0.0f;
            for (int ky = 0; ky < s->kh; ky++) {
                int iy = oy * s->sh - s->ph + ky;
                if (iy < 0 || iy >= s->h)
                    continue;
                for (int kx = 0; kx < s->kw; kx++) {
                    int ix = ox * s->sw - s->pw + kx;
                    if (ix < 0 || ix >= s->w)
                        continue;
                    const float *restrict ip = in + ((size_t)iy * s->w + ix) * C;
                    if (is_max)
                        for (int c = 0; c < C; c++)
                            o[c] = ip[c] > o[c] ? ip[c] : o[c];
                    else
                        for (int c = 0; c < C; c++)
                            o[c] += ip[c];
                }
            }
            if (!is_max)
                for (int c = 0; c < C; c++)
                    o[c] *= inv;
        }
}

void bn_avgpool(const bn_conv_shape *s, const float *in, float *out)
{
    pool_nhwc(s, in, out, false);
}

void bn_maxpool(const bn_conv_shape *s, const float *in, float *out)
{
    pool_nhwc(s, in, out, true);
}

/* Source coordinate as PyTorch's upsample_bilinear2d computes it (align_corners=False):
 * scale = in / out, src = scale * (dst + 0.5) - 0.5, clamped at 0. */
static void bilinear_coord(int dst, int in, int out, int *i0, int *i1, float *l0, float *l1)
{
    float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f)
        src = 0.0f;
    int i = (int)src;
    if (i > in - 1)
        i = in - 1;
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l1 = src - (float)i;
    *l0 = 1.0f - *l1;
}

void bn_resize_bilinear(const float *in, int h, int w, int c, float *out, int oh, int ow)
{
    for (int oy = 0; oy < oh; oy++) {
        int y0, y1;
        float ly0, ly1;
        bilinear_coord(oy, h, oh, &y0, &y1, &ly0, &ly1);
        for (int ox = 0; ox < ow; ox++) {
            int x0, x1;
            float lx0, lx1;
            bilinear_coord(ox, w, ow, &x0, &x1, &lx0, &lx1);
            const float *p00 = in + ((size_t)y0 * w + x0) * c, *p01 = in + ((size_t)y0 * w + x1) * c;
            const float *p10 = in + ((size_t)y1 * w + x0) * c, *p11 = in + ((size_t)y1 * w + x1) * c;
            float *o = out + ((size_t)oy * ow + ox) * c;
            for (int j = 0; j < c; j++)
                o[j] = ly0 * (lx0 * p00[j] + lx1 * p01[j]) + ly1 * (lx0 * p10[j] + lx1 * p11[j]);
        }
    }
}

void bn_softmax(const float *x, int n, float *y)
{
    float m = -INFINITY;
    for (int i = 0; i < n; i++)
        m = x[i] > m ? x[i] : m;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        y[i] = expf(x[i] - m);
        sum += y[i];
    }
    for (int i = 0; i < n; i++)
        y[i] /= sum;
}

void bn_synthesize(const float *bases, int n, size_t p, const float *alpha, float *w)
{
    /* bases is (n, p) row-major: w = bases^T alpha. */
    cblas_sgemv(CblasRowMajor, CblasTrans, n, (int)p, 1.0f, bases, (int)p, alpha, 1, 0.0f, w, 1);
}

void bn_synthesize_f16(const uint16_t *bases, int n, size_t p, const float *alpha, float *w)
{
    size_t i = 0;
#if defined(__F16C__) && defined(__FMA__)
    /* 16 weights per pass: N half-precision rows converted in registers, FMA with alpha[n] */
    for (; i + 16 <= p; i += 16) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (int k = 0; k < n; k++) {
            const uint16_t *b = bases + (size_t)k * p + i;
            const __m256 al = _mm256_broadcast_ss(alpha + k);
            a0 = _mm256_fmadd_ps(al, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)b)), a0);
            a1 = _mm256_fmadd_ps(al, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(b + 8))), a1);
        }
        _mm256_storeu_ps(w + i, a0);
        _mm256_storeu_ps(w + i + 8, a1);
    }
#endif
    for (; i < p; i++) {
        float acc = 0.0f;
        for (int k = 0; k < n; k++)
            acc = fmaf(alpha[k], st_half_to_float(bases[(size_t)k * p + i]), acc);
        w[i] = acc;
    }
}
