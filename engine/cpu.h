/* Runtime CPU dispatch of the engine's kernels. The kernels are one source
 * (engine/isa/kern.inc, engine/isa/gemm.inc) compiled three times, each time for one
 * instruction set (engine/kern_generic.c, kern_avx2.c, kern_avx512.c); the build itself
 * targets baseline x86-64. The table is picked once, on first use, from cpuid, or from
 * the environment variable BN_CPU=generic|avx2|avx512 (tests force each path with it). */
#ifndef BN_CPU_H
#define BN_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

typedef enum { BN_ISA_GENERIC = 0, BN_ISA_AVX2, BN_ISA_AVX512, BN_ISA_COUNT } bn_isa;

typedef struct {
    const char *name;
    void (*bias_act)(float *y, size_t rows, int cols, const float *bias, bn_act act);
    void (*conv2d)(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
                   bn_act act, float *out, float *col);
    void (*dwconv)(const bn_conv_shape *s, const float *in, const float *w, const float *bias,
                   bn_act act, float *out, int oy0, int oy1);
    void (*pointwise)(int m0, int m1, int K, int N, const float *x, const float *wp,
                      const float *bias, const float *res, bn_act act, float *y);
    /* bn_conv_is_gemm shapes: im2col into col (bn_conv2d_scratch floats), then the packed
     * GEMM on wp (bn_pack_p32 of the (oc, kh*kw*c) weights) */
    void (*conv_gemm)(const bn_conv_shape *s, const float *in, const float *wp, const float *bias,
                      bn_act act, float *out, float *col);
    void (*linear)(const float *x, int in, int o0, int o1, const float *w, const float *bias,
                   bn_act act, float *y);
    void (*gemv)(const float *x, int K, int N, const float *wp, const float *bias, bn_act act,
                 float *y);
    void (*add)(const float *a, const float *b, size_t n, bn_act act, float *y);
    void (*se)(const float *x, int hw, int c, int squeeze, const float *w1, const float *b1,
               const float *w2, const float *b2, bn_act act, bn_act gate, float *y, float *tmp);
    void (*gap)(const float *in, int hw, int c, float *out);
    void (*synth)(const float *bases, int n, size_t p0, size_t p1, size_t stride,
                  const float *alpha, float *w);
    void (*synth_f16)(const uint16_t *bases, int n, size_t p0, size_t p1, size_t stride,
                      const float *alpha, float *w);
    /* 8-bit HWC image -> normalized specialist input (spec) and light input (light: avgpool
     * by pool_k, or bilinear when pool_k is 0). spec NULL (avgpool only): the light input
     * alone; light NULL: the specialist input alone. */
    void (*preprocess)(const uint8_t *img, size_t stride, int H, int W, int C, const float *mean,
                       const float *stdv, float *spec, int pool_k, int oh, int ow, float *light,
                       float *tmp);
} bn_kern_ops;

extern const bn_kern_ops bn_kern_generic, bn_kern_avx2, bn_kern_avx512;

/* The best instruction set this CPU (and its OS) supports. */
bn_isa bn_cpu_best(void);
const char *bn_isa_name(bn_isa isa);
/* The selected table (selects on first call). */
const bn_kern_ops *bn_kern(void);
bn_isa bn_kern_isa(void);
/* Forces a table (tests); -1 when this CPU cannot run it. */
int bn_kern_select(bn_isa isa);

#endif
