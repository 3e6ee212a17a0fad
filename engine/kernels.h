/* CPU kernels of libbasisnet. Activations are HWC (channels innermost) float32: depthwise
 * convolutions vectorize over channels and 1x1 convolutions are a GEMM on packed weights.
 * Each call goes to the table of the instruction set chosen at run time (cpu.h). */
#ifndef BN_KERNELS_H
#define BN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    BN_ACT_NONE = 0, BN_ACT_RELU, BN_ACT_RELU6, BN_ACT_HSWISH, BN_ACT_HSIGMOID, BN_ACT_SIGMOID,
    BN_ACT_COUNT
} bn_act;

/* Parses "none", "relu", ... ; returns -1 when unknown. */
int bn_act_parse(const char *s);
const char *bn_act_name(bn_act a);
float bn_act_scalar(float x, bn_act a);

/* Geometry of a convolution or pooling window (dilation 1). */
typedef struct {
    int c, h, w;        /* input (C, H, W) */
    int oc, oh, ow;     /* output */
    int kh, kw, sh, sw, ph, pw;
    int groups;
} bn_conv_shape;

/* floor((in + 2p - k) / s) + 1, or 0 when the window does not fit. */
int bn_out_size(int in, int k, int s, int p);

/* y[r][c] = act(y[r][c] + bias[c]) over rows x cols (bias may be NULL). */
void bn_bias_act(float *y, size_t rows, int cols, const float *bias, bn_act act);

/* Scratch floats bn_conv2d needs for this shape (0 when it goes straight to sgemm). */
size_t bn_conv2d_scratch(const bn_conv_shape *s);
/* True when the shape is a depthwise convolution (groups == c == oc). */
int bn_conv_is_depthwise(const bn_conv_shape *s);
/* True for a 1x1, stride 1, unpadded, ungrouped convolution (the session runs these through
 * bn_pointwise on weights packed with bn_pack_p32). */
int bn_conv_is_pointwise(const bn_conv_shape *s);
/* True for a stem-like convolution with at most 4 input channels (direct kernel). */
int bn_conv_is_thin(const bn_conv_shape *s);
/* True for the other ungrouped convolutions (kxk, strided 1x1): the session runs them as
 * im2col + the packed GEMM on weights packed with bn_pack_p32 as an (oc, kh*kw*c) matrix. */
int bn_conv_is_gemm(const bn_conv_shape *s);
/* Convolution, HWC in and out. Weights packed (oc, kh, kw, c/groups); depthwise weights
 * packed (kh, kw, c). bias (oc) may be NULL. col: bn_conv2d_scratch floats. */
void bn_conv2d(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
               bn_act act, float *out, float *col);
/* The direct depthwise kernel (called by bn_conv2d). */
void bn_dwconv(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
               bn_act act, float *out);

/* Packed pointwise weights: panels of 32 output channels, W[n][k] of panel n / 32 at
 * k * 32 + n % 32, zero past n. bn_p32_floats: floats of the packed (n, k) matrix. */
size_t bn_p32_floats(int n, int k);
static inline size_t bn_p32_index(int o, int i, int k)
{
    return (size_t)(o / 32) * 32 * (size_t)k + (size_t)i * 32 + (size_t)(o % 32);
}
/* Packs W (n, k) row-major into wp (bn_p32_floats(n, k) floats). */
void bn_pack_p32(const float *w, int n, int k, float *wp);
/* Pointwise convolution of m pixels: y (m, n) = act(x (m, k) W^T + bias + res), W packed by
 * bn_pack_p32; bias and res (m, n) may be NULL. y must not alias x or res. */
void bn_pointwise(int m, int k, int n, const float *x, const float *wp, const float *bias,
                  const float *res, bn_act act, float *y);

/* y = act(W x + b), W (out, in) row-major. */
void bn_linear(const float *x, int in, int out, const float *w, const float *bias, bn_act act,
               float *y);
/* The same on weights packed by bn_pack_p32 as an (N, K) matrix: y (N) = act(W x + bias). */
void bn_gemv(const float *x, int K, int N, const float *wp, const float *bias, bn_act act, float *y);
/* y = act(a + b) over n values. */
void bn_add(const float *a, const float *b, size_t n, bn_act act, float *y);
/* Squeeze-excitation over HWC x (hw positions, c channels). w1 (squeeze, c) and w2
 * (c, squeeze) packed by bn_pack_p32. tmp: c + squeeze floats. */
void bn_se(const float *x, int hw, int c, int squeeze, const float *w1, const float *b1,
           const float *w2, const float *b2, bn_act act, bn_act gate, float *y, float *tmp);
/* Pooling, HWC. Average pooling counts the padding (PyTorch's count_include_pad=True);
 * max pooling pads with -inf. s->oc is ignored (channels are kept). */
void bn_avgpool(const bn_conv_shape *s, const float *in, float *out);
void bn_maxpool(const bn_conv_shape *s, const float *in, float *out);
/* Global average pooling: (hw, c) -> (c). */
void bn_gap(const float *in, int hw, int c, float *out);
/* PyTorch F.interpolate(mode="bilinear", align_corners=False, antialias=False), HWC. */
void bn_resize_bilinear(const float *in, int h, int w, int c, float *out, int oh, int ow);
/* Source rows/columns i0, i1 and weights l0, l1 of output coordinate dst, as PyTorch's
 * upsample_bilinear2d computes them. */
void bn_bilinear_coord(int dst, int in, int out, int *i0, int *i1, float *l0, float *l1);
/* Floats of scratch the preprocessing kernel needs (cpu.h, preprocess). */
static inline size_t bn_prep_scratch(int w, int c, int ow)
{
    return (size_t)w * c + 4 * (size_t)ow * c;
}
/* Numerically stable softmax of n values (in and out may alias). */
void bn_softmax(const float *x, int n, float *y);
/* Synthesis: w[p] = sum_n alpha[n] * bases[n][p] (one sgemv over contiguous bases). */
void bn_synthesize(const float *bases, int n, size_t p, const float *alpha, float *w);
/* Same from IEEE half bases (F16C when available): half the bytes to stream. */
void bn_synthesize_f16(const uint16_t *bases, int n, size_t p, const float *alpha, float *w);
/* Synthesis of a bn_pack_p32 matrix (oc, k): full panels in one pass, the last panel row by
 * row over its oc % 32 live lanes only, so zero padding is neither read nor written (w's
 * padding lanes must be zero already). Exactly one of bases / bases16 is non-NULL. */
void bn_synthesize_p32(const float *bases, const uint16_t *bases16, int n, int oc, int k,
                       const float *alpha, float *w);
/* Zeroes the padding lanes (channels oc.. of the last 32-wide panel) of p32-packed (oc, k)
 * weights: the lanes bn_synthesize_p32 does not write. */
void bn_p32_zero_padding(int oc, int k, float *w);

#endif
