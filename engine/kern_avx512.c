/* The kernels for AVX-512 (F, VL, BW, DQ) + FMA + F16C (x86-64-v4; see cpu.h). */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c,prefer-vector-width=512")
#endif
#define BN_ISA 2
#define BN_ISA_TABLE bn_kern_avx512
#define BN_ISA_NAME "avx512"
#include "isa/kern.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
