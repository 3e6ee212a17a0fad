/* Machine limits for docs/results-engine.md: OpenBLAS sgemm at 1024^3 and sgemv in the
 * synthesis shape (8 x 1M floats), one thread, CPU time. Build and run:
 *   cc -O2 $(pkg-config --cflags openblas) bench/engine/limits.c $(pkg-config --libs openblas) -o /tmp/limits && /tmp/limits */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
    openblas_set_num_threads(1);
    const int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c)
        return 1;
    for (long i = 0; i < (long)n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double t0 = cpu_s();
    for (int i = 0; i < 5; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double t = (cpu_s() - t0) / 5;
    printf("sgemm 1024^3 (OpenBLAS core %s): %.1f GFLOP/s\n", openblas_get_corename(), 2.0 * n * n * n / t / 1e9);
    const int N = 8, P = 1 << 20; /* 32 MB of bases */
    float *m = malloc(sizeof(float) * (size_t)N * P), *y = malloc(sizeof(float) * P), x[8];
    if (!m || !y)
        return 1;
    for (long i = 0; i < (long)N * P; i++)
        m[i] = 0.5f;
    for (int i = 0; i < N; i++)
        x[i] = 0.125f;
    cblas_sgemv(CblasRowMajor, CblasTrans, N, P, 1, m, P, x, 1, 0, y, 1);
    t0 = cpu_s();
    for (int i = 0; i < 10; i++)
        cblas_sgemv(CblasRowMajor, CblasTrans, N, P, 1, m, P, x, 1, 0, y, 1);
    t = (cpu_s() - t0) / 10;
    printf("sgemv %d x %d (synthesis shape, 32 MB): %.1f GB/s\n", N, P, 4.0 * N * P / t / 1e9);
    free(a), free(b), free(c), free(m), free(y);
    return 0;
}
