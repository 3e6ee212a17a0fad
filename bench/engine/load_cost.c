/* What loading a model costs: the first bn_model_open in a fresh process, the median of
 * repeated loads in the same process (as a reload does), and the growth of RSS (anonymous
 * and file-backed) after the first load. docs/engine.md, "Loading and validation".
 *
 *   cc -O2 -D_GNU_SOURCE -Iengine bench/engine/load_cost.c build/libbasisnet.a \
 *      $(pkg-config --libs jansson openblas) -lz -lm -pthread -o /tmp/load_cost
 *   /tmp/load_cost models/fmnist-basisnet.bnm 9
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basisnet.h"

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0)
            v = strtol(line + strlen(key) + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: load_cost MODEL [REPEATS]\n");
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 9;
    if (reps < 1 || reps > 100)
        reps = 9;
    char err[1024];
    bn_model *m;
    long anon0 = status_kb("RssAnon"), file0 = status_kb("RssFile");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (bn_model_open(argv[1], &m, err, sizeof err) != BN_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double first = ms_since(&t0);
    long anon1 = status_kb("RssAnon"), file1 = status_kb("RssFile");
    bn_model_close(m);
    double t[100];
    for (int i = 0; i < reps; i++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (bn_model_open(argv[1], &m, err, sizeof err) != BN_OK)
            return 1;
        t[i] = ms_since(&t0);
        bn_model_close(m);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("%s: first load %.1f ms, repeated median %.1f ms (min %.1f, max %.1f, n=%d); "
           "RSS after the first load +%ld kB anonymous, +%ld kB file-backed\n",
           argv[1], first, t[reps / 2], t[0], t[reps - 1], reps, anon1 - anon0, file1 - file0);
    return 0;
}
