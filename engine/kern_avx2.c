/* The kernels for AVX2 + FMA + F16C (x86-64-v3; see cpu.h). */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
#define BN_ISA 1
#define BN_ISA_TABLE bn_kern_avx2
#define BN_ISA_NAME "avx2"
#include "isa/kern.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
