/* basisnet bench: per-stage latency at batch 1, throughput of the specialist and the
 * synthesis, and an optional per-layer profile. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basisnet.h"
#include "commands.h"
#include "engine_internal.h"
#include "model.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return tool_ms(v[i ? i - 1 : 0]);
}

/* Mean time per layer and per op type from the session's profile (profiling adds two
 * clock reads per layer, so totals run slightly above the unprofiled ones). */
static void print_profile(const bn_model *m, const bn_session *s, size_t n, int light_only)
{
    const bn_stage_def *stages[2] = {&m->light, &m->spec};
    for (int k = 0; k < (light_only ? 1 : 2); k++) {
        const double *p = bn_session_profile(s, k ? BN_STAGE_SPECIALIST : BN_STAGE_LIGHT);
        const bn_stage_def *sd = stages[k];
        double tot = 0, per_op[BN_OP_COUNT] = {0}, dw = 0;
        for (int i = 0; i < sd->n; i++) {
            tot += p[i];
            per_op[sd->layers[i].op] += p[i];
            if (sd->layers[i].op == BN_OP_CONV && bn_conv_is_depthwise(&sd->layers[i].g))
                dw += p[i];
        }
        printf("\nprofile: %s stage, %.4f ms per run\n  %-3s %-18s %-8s %-14s %10s %6s %9s\n", k ? "specialist" : "light",
               tot / n / 1e6, "#", "layer", "op", "output", "ms", "share", "GFLOP/s");
        for (int i = 0; i < sd->n; i++) {
            const bn_layer *ly = &sd->layers[i];
            char out[32];
            snprintf(out, sizeof out, "%dx%dx%d", ly->g.oc, ly->g.oh, ly->g.ow);
            double t = p[i] / n;
            printf("  %-3d %-18.18s %-8s %-14s %10.4f %5.1f%% %9.2f\n", i, ly->name, tool_op_name(ly->op), out, t / 1e6,
                   100 * p[i] / tot, t > 0 ? 2.0 * (double)ly->madds / t : 0);
        }
        printf("  by op:");
        for (int o = 0; o < BN_OP_COUNT; o++)
            if (per_op[o] > 0)
                printf(" %s %.1f%%", tool_op_name(o), 100 * per_op[o] / tot);
        printf(" (depthwise conv %.1f%%)\n", 100 * dw / tot);
    }
}

static int cmd_bench_help(FILE *f)
{
    fprintf(f,
            "Usage: basisnet bench MODEL [--threads N] [--seconds S] [--light-only] [--synth-reuse T]\n"
            "                      [--json] [--profile]\n\n"
            "Measures per-stage latency at batch 1 on a fixed pseudo-random image: both stages run\n"
            "every iteration (as with threshold > 1), or the light stage alone. After 10 warm-up\n"
            "runs it loops for S seconds (at least 20 iterations) and prints p50, p99 and mean for\n"
            "the stages light (preprocessing + light network), synth (weight synthesis), specialist\n"
            "and total, plus the specialist's GFLOP/s (2 x MAdds / time), the synthesis bandwidth\n"
            "(bases bytes read / time), the synthesis share of specialist time and the session's\n"
            "bytes. With more than one thread a worker synthesizes ahead of the convolutions and\n"
            "synth is the time they waited for it (no bandwidth is printed).\n\n"
            "Options:\n"
            "  --threads N   engine threads (default 1; 1 is the safe choice on 2 cores)\n"
            "  --light-only  run only the light stage (preprocessing + light network) every\n"
            "                iteration, as a peer runs the light network alone; synth and\n"
            "                specialist then read 0\n"
            "  --seconds S   measuring time (default 5)\n"
            "  --synth-reuse T\n"
            "                synthesis reuse tolerance (engine.synth_reuse, 0 - 0.5; default 0:\n"
            "                off). The image is the same every time, so after the first run every\n"
            "                layer keeps its weights: synth reads ~0 and specialist is the cost of\n"
            "                a frame whose weights are all reused\n"
            "  --json        one JSON object instead of the table\n"
            "  --profile     also print the time per layer (mean ms) and per op type\n\n"
            "Exit status: 0 success, 1 the model cannot be loaded or run, 2 bad usage.\n");
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *model = NULL;
    long threads = 1;
    double seconds = 5, reuse = 0;
    int json = 0, profile = 0, light_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tool_is_help(a))
            return cmd_bench_help(stdout);
        if (!strcmp(a, "--threads") && v && !tool_parse_long(v, 1, 64, &threads))
            i++;
        else if (!strcmp(a, "--seconds") && v && !tool_parse_double(v, 0.01, 3600, &seconds))
            i++;
        else if (!strcmp(a, "--synth-reuse") && v && !tool_parse_double(v, 0, 0.5, &reuse))
            i++;
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--profile"))
            profile = 1;
        else if (!strcmp(a, "--light-only"))
            light_only = 1;
        else if (a[0] != '-' && !model)
            model = a;
        else {
            fprintf(stderr, "basisnet bench: bad argument or value: %s\n\n", a);
            cmd_bench_help(stderr);
            return 2;
        }
    }
    if (!model) {
        cmd_bench_help(stderr);
        return 2;
    }
    bn_model *m = tool_open_model("bench", model);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    bn_session *s = tool_open_session("bench", m, (int)threads, (float)reuse);
    size_t cap = 1 << 16, n = 0;
    uint64_t *t[5] = {0};
    uint8_t *img = malloc((size_t)in->width * in->height * in->channels);
    int rc = 1;
    for (int k = 0; k < 5; k++)
        t[k] = malloc(cap * sizeof(uint64_t));
    if (!s || !img || !t[0] || !t[1] || !t[2] || !t[3] || !t[4])
        goto out;
    uint32_t seed = 12345;
    for (size_t i = 0; i < (size_t)in->width * in->height * in->channels; i++) {
        seed = seed * 1664525u + 1013904223u;
        img[i] = (uint8_t)(seed >> 24);
    }
    const size_t stride = (size_t)in->width * in->channels;
    bn_result r;
    for (int w = 0; w < 10; w++)
        if (bn_classify(s, img, stride, 2.0f, &r) != BN_OK)
            goto out;
    struct timespec c0, c1;
    if (profile)
        bn_session_set_profiling(s, 1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    uint64_t end = tool_mono_ns() + (uint64_t)(seconds * 1e9), kept = 0, layers = 0;
    while (n < cap && (n < 20 || tool_mono_ns() < end)) {
        uint64_t t0 = tool_mono_ns();
        if (light_only)
            bn_run_light(s, img, stride, &r);
        else
            bn_classify(s, img, stride, 2.0f, &r);
        uint64_t tot = tool_mono_ns() - t0;
        t[0][n] = r.ns_light, t[1][n] = r.ns_synth, t[2][n] = r.ns_specialist, t[3][n] = tot;
        t[4][n] = r.ns_synth + r.ns_specialist;
        if (r.stage == BN_STAGE_SPECIALIST) {
            kept += (uint64_t)r.synth_reused;
            layers += (uint64_t)r.synth_layers;
        }
        n++;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    /* CPU time per inference: robust when other processes share the cores */
    double cpu_ms = ((double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6) / (double)n;
    double mean[5] = {0};
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; i < n; i++)
            mean[k] += tool_ms(t[k][i]);
        mean[k] /= (double)n;
    }
    double p50[5], p99[5];
    for (int k = 0; k < 5; k++) {
        p50[k] = pct(t[k], n, 50);
        p99[k] = pct(t[k], n, 99);
    }
    /* bases bytes synthesis reads: N * weights * 4 (F32) or 2 (bases kept as F16) */
    double synth_bytes = 0;
    for (int l = 0; l < in->num_synth_layers; l++) {
        const bn_layer *ly = &m->spec.layers[m->synth_layer[l]];
        synth_bytes += (double)in->num_bases * (double)ly->wcount * (ly->bases16 ? 2.0 : 4.0);
    }
    double gflops = p50[2] > 0 ? 2.0 * (double)in->madds_specialist / (p50[2] * 1e6) : 0;
    double light_gflops = 2.0 * (double)in->madds_light / (p50[0] * 1e6);
    double gbs = p50[1] > 0 ? synth_bytes / (p50[1] * 1e6) : 0;
    double synth_share = p50[1] + p50[2] > 0 ? p50[1] / (p50[1] + p50[2]) : 0;
    const double kept_share = layers ? (double)kept / (double)layers : 0;
    static const char *const names[5] = {"light", "synth", "specialist", "total", "synth_specialist"};
    if (json) {
        printf("{\"model\":\"%s\",\"threads\":%ld,\"light_only\":%s,\"iterations\":%zu", in->name, threads,
               light_only ? "true" : "false", n);
        for (int k = 0; k < 5; k++)
            printf(",\"%s\":{\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"mean_ms\":%.4f}", names[k], p50[k], p99[k], mean[k]);
        printf(",\"madds\":{\"light\":%llu,\"synth\":%llu,\"specialist\":%llu},\"specialist_gflops\":%.2f,"
               "\"light_gflops\":%.2f,\"synth_bytes\":%.0f,\"synth_gbytes_per_s\":%.2f,\"synth_share_of_specialist\":%.4f,"
               "\"session_bytes\":%zu,\"cpu_ms_per_inference\":%.4f,\"kernels\":\"%s\",\"synth_reuse\":%g,"
               "\"layers_kept\":%.4f}\n",
               (unsigned long long)in->madds_light, (unsigned long long)in->madds_synth,
               (unsigned long long)in->madds_specialist, gflops, light_gflops, synth_bytes, gbs, synth_share,
               bn_session_bytes(s), cpu_ms, bn_engine_kernels(), reuse, kept_share);
    } else {
        printf("model %s, %ld thread%s, %zu iterations (batch 1, %s)\n", in->name, threads,
               threads > 1 ? "s" : "", n, light_only ? "light stage only" : "both stages every time");
        printf("%-11s %9s %9s %9s\n", "stage", "p50 ms", "p99 ms", "mean ms");
        for (int k = 0; k < 4; k++)
            printf("%-11s %9.4f %9.4f %9.4f\n", names[k], p50[k], p99[k], mean[k]);
        printf("\nlight       %llu MAdds, %.2f GFLOP/s at p50\n", (unsigned long long)in->madds_light, light_gflops);
        printf("specialist  %llu MAdds, %.2f GFLOP/s at p50\n", (unsigned long long)in->madds_specialist, gflops);
        if (threads > 1) /* a worker synthesizes ahead: synth is the time the convolutions waited */
            printf("synthesis   %.0f bytes of bases read by a worker ahead of the convolutions, which waited "
                   "%.1f%% of synth + specialist time\n", synth_bytes, 100.0 * synth_share);
        else
            printf("synthesis   %.0f bytes of bases read, %.2f GB/s, %.1f%% of synth + specialist time\n", synth_bytes,
                   gbs, 100.0 * synth_share);
        if (reuse > 0)
            printf("reuse       tolerance %g: %.1f%% of the synthesized layers kept\n", reuse, 100.0 * kept_share);
        printf("session     %zu bytes\n", bn_session_bytes(s));
        printf("cpu time    %.4f ms per inference (process CPU time / iterations); kernels %s\n", cpu_ms,
               bn_engine_kernels());
    }
    if (profile)
        print_profile(m, s, n, light_only);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "basisnet bench: %s: cannot run the model\n", model);
    for (int k = 0; k < 5; k++)
        free(t[k]);
    free(img);
    bn_session_free(s);
    bn_model_close(m);
    return rc;
}
