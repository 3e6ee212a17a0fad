/* Kernel entry points of libbasisnet (HWC activations): shape helpers, the kernels that
 * do not depend on the instruction set (pooling, resize, softmax, weight packing) and the
 * calls into the table chosen at run time (cpu.h; the kernels are in engine/isa/). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "kernels.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "cpu.h"

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

int bn_conv_is_depthwise(const bn_conv_shape *s)
{
    return s->groups > 1 && s->groups == s->c && s->oc == s->c;
}

int bn_conv_is_pointwise(const bn_conv_shape *s)
{
    return s->groups == 1 && s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 &&
           s->pw == 0;
}

int bn_conv_is_thin(const bn_conv_shape *s)
{
    return s->groups == 1 && s->c <= 4 && s->oc % 8 == 0 && s->oc <= 256 && !bn_conv_is_pointwise(s);
}

int bn_conv_is_gemm(const bn_conv_shape *s)
{
    return s->groups == 1 && !bn_conv_is_depthwise(s) && !bn_conv_is_pointwise(s) && !bn_conv_is_thin(s);
}

size_t bn_conv2d_scratch(const bn_conv_shape *s)
{
    if (bn_conv_is_depthwise(s) || bn_conv_is_pointwise(s))
        return 0;
    /* the generic table runs thin convolutions through im2col: room for both */
    size_t im2col = (size_t)s->oh * s->ow * s->kh * s->kw * (size_t)(s->c / s->groups);
    size_t thin = bn_conv_is_thin(s) ? (size_t)s->oc * (s->kh * s->kw * s->c + 1) : 0;
    return im2col > thin ? im2col : thin;
}

void bn_bias_act(float *y, size_t rows, int cols, const float *bias, bn_act act)
{
    bn_kern()->bias_act(y, rows, cols, bias, act);
}

void bn_conv2d(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
               bn_act act, float *out, float *col)
{
    bn_kern()->conv2d(s, in, w, bias, act, out, col);
}

void bn_dwconv(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
               bn_act act, float *out)
{
    bn_kern()->dwconv(s, in, w, bias, act, out, 0, s->oh);
}

size_t bn_p32_floats(int n, int k) { return (size_t)(n + 31) / 32 * 32 * (size_t)k; }

void bn_pack_p32(const float *w, int n, int k, float *wp)
{
    memset(wp, 0, sizeof(float) * bn_p32_floats(n, k));
    for (int o = 0; o < n; o++)
        for (int i = 0; i < k; i++)
            wp[bn_p32_index(o, i, k)] = w[(size_t)o * k + i];
}

void bn_pointwise(int m, int k, int n, const float *x, const float *wp, const float *bias,
                  const float *res, bn_act act, float *y)
{
    bn_kern()->pointwise(0, m, k, n, x, wp, bias, res, act, y);
}

void bn_linear(const float *x, int in, int out, const float *w, const float *bias, bn_act act,
               float *y)
{
    bn_kern()->linear(x, in, 0, out, w, bias, act, y);
}

void bn_add(const float *a, const float *b, size_t n, bn_act act, float *y)
{
    bn_kern()->add(a, b, n, act, y);
}

void bn_gap(const float *in, int hw, int c, float *out) { bn_kern()->gap(in, hw, c, out); }

void bn_gemv(const float *x, int K, int N, const float *wp, const float *bias, bn_act act, float *y)
{
    bn_kern()->gemv(x, K, N, wp, bias, act, y);
}

void bn_se(const float *x, int hw, int c, int squeeze, const float *w1, const float *b1,
           const float *w2, const float *b2, bn_act act, bn_act gate, float *y, float *tmp)
{
    bn_kern()->se(x, hw, c, squeeze, w1, b1, w2, b2, act, gate, y, tmp);
}

void bn_synthesize(const float *bases, int n, size_t p, const float *alpha, float *w)
{
    bn_kern()->synth(bases, n, 0, p, p, alpha, w);
}

void bn_synthesize_f16(const uint16_t *bases, int n, size_t p, const float *alpha, float *w)
{
    bn_kern()->synth_f16(bases, n, 0, p, p, alpha, w);
}

void bn_synthesize_p32(const float *bases, const uint16_t *bases16, int n, int oc, int k,
                       const float *alpha, float *w)
{
    const bn_kern_ops *ops = bn_kern();
    const size_t stride = bn_p32_floats(oc, k);
    const size_t full = (size_t)(oc / 32) * 32 * (size_t)k;
    const size_t live = (size_t)(oc % 32);
    if (bases16)
        ops->synth_f16(bases16, n, 0, full, stride, alpha, w);
    else
        ops->synth(bases, n, 0, full, stride, alpha, w);
    if (!live)
        return;
    for (size_t i = 0; i < (size_t)k; i++) {
        size_t p0 = full + i * 32;
        if (bases16)
            ops->synth_f16(bases16, n, p0, p0 + live, stride, alpha, w);
        else
            ops->synth(bases, n, p0, p0 + live, stride, alpha, w);
    }
}

void bn_p32_zero_padding(int oc, int k, float *w)
{
    const size_t full = (size_t)(oc / 32) * 32 * (size_t)k;
    const int live = oc % 32;
    if (!live)
        return;
    for (size_t i = 0; i < (size_t)k; i++)
        memset(w + full + i * 32 + (size_t)live, 0, sizeof(float) * (size_t)(32 - live));
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
void bn_bilinear_coord(int dst, int in, int out, int *i0, int *i1, float *l0, float *l1)
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
        bn_bilinear_coord(oy, h, oh, &y0, &y1, &ly0, &ly1);
        for (int ox = 0; ox < ow; ox++) {
            int x0, x1;
            float lx0, lx1;
            bn_bilinear_coord(ox, w, ow, &x0, &x1, &lx0, &lx1);
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
