/* Kernel table selection: cpuid (through GCC's __builtin_cpu_supports, which also checks
 * that the OS saves the AVX-512 state) or BN_CPU from the environment. */
#include "cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "basisnet.h"
#include "bn_log.h"

static const bn_kern_ops *const tables[BN_ISA_COUNT] = {&bn_kern_generic, &bn_kern_avx2,
                                                         &bn_kern_avx512};
static _Atomic int selected = -1;

bn_isa bn_cpu_best(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma"))
        return BN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return BN_ISA_AVX2;
    return BN_ISA_GENERIC;
}

const char *bn_isa_name(bn_isa isa)
{
    return (unsigned)isa < BN_ISA_COUNT ? tables[isa]->name : "?";
}

int bn_kern_select(bn_isa isa)
{
    if ((unsigned)isa >= BN_ISA_COUNT || isa > bn_cpu_best())
        return -1;
    atomic_store(&selected, (int)isa);
    return 0;
}

static void select_once(void)
{
    bn_isa best = bn_cpu_best(), want = best;
    const char *env = getenv("BN_CPU");
    if (env && *env && strcmp(env, "auto") != 0) {
        int found = -1;
        for (int i = 0; i < BN_ISA_COUNT; i++)
            if (strcmp(env, tables[i]->name) == 0)
                found = i;
        if (found < 0)
            BN_LOGW("engine", "BN_CPU=%s is not one of generic, avx2, avx512, auto; using %s", env,
                    bn_isa_name(best));
        else if ((bn_isa)found > best)
            BN_LOGW("engine", "BN_CPU=%s: this CPU cannot run it; using %s", env, bn_isa_name(best));
        else
            want = (bn_isa)found;
    }
    int expected = -1; /* a bn_kern_select that came first wins */
    atomic_compare_exchange_strong(&selected, &expected, (int)want);
}

bn_isa bn_kern_isa(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    int s = atomic_load_explicit(&selected, memory_order_relaxed);
    if (s < 0) {
        pthread_once(&once, select_once);
        s = atomic_load(&selected);
    }
    return (bn_isa)s;
}

const bn_kern_ops *bn_kern(void) { return tables[bn_kern_isa()]; }

const char *bn_engine_kernels(void) { return bn_kern()->name; }
