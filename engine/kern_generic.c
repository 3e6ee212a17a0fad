/* The kernels for any x86-64 (SSE2): the portable fallback (see cpu.h). */
#define BN_ISA 0
#define BN_ISA_TABLE bn_kern_generic
#define BN_ISA_NAME "generic"
#include "isa/kern.inc"
