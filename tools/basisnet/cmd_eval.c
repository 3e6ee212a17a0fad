/* basisnet eval: accuracy, early-exit share and mean MAdds of a model on a labelled data
 * set, at one threshold or over a sweep. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "basisnet.h"
#include "commands.h"
#include "image.h"

typedef struct {
    uint8_t *data;
    uint32_t n, rows, cols;
} idx_file;

static int read_u32be(gzFile f, uint32_t *v)
{
    uint8_t b[4];
    if (gzread(f, b, 4) != 4)
        return -1;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

/* Reads an idx file (plain or gzip: zlib reads both); magic 0x803 images, 0x801 labels. */
static int read_idx(const char *path, uint32_t magic, idx_file *out)
{
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "basisnet eval: %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint32_t mg = 0;
    int rc = -1;
    if (read_u32be(f, &mg) || mg != magic) {
        fprintf(stderr, "basisnet eval: %s: not an idx %s file (magic 0x%08x, expected 0x%08x)\n", path,
                magic == 0x803 ? "image" : "label", mg, magic);
        goto done;
    }
    out->rows = out->cols = 1;
    if (read_u32be(f, &out->n) || (magic == 0x803 && (read_u32be(f, &out->rows) || read_u32be(f, &out->cols))) ||
        out->n == 0 || out->n > 10000000 || out->rows == 0 || out->rows > 4096 || out->cols == 0 || out->cols > 4096) {
        fprintf(stderr, "basisnet eval: %s: truncated or implausible idx header\n", path);
        goto done;
    }
    size_t bytes = (size_t)out->n * out->rows * out->cols;
    out->data = malloc(bytes);
    if (!out->data) {
        fprintf(stderr, "basisnet eval: %s: out of memory\n", path);
        goto done;
    }
    size_t got = 0;
    while (got < bytes) {
        unsigned chunk = bytes - got > (1u << 30) ? (1u << 30) : (unsigned)(bytes - got);
        int r = gzread(f, out->data + got, chunk);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got != bytes) {
        fprintf(stderr, "basisnet eval: %s: truncated: %zu of %zu data bytes\n", path, got, bytes);
        free(out->data);
        out->data = NULL;
        goto done;
    }
    rc = 0;
done:
    gzclose(f);
    return rc;
}

static int cmd_eval_help(FILE *f)
{
    fprintf(f,
            "Usage: basisnet eval MODEL --images IDX --labels IDX [--threshold T | --sweep]\n"
            "                     [--limit N] [--threads N]\n\n"
            "Evaluates a model on an idx data set (plain or gzip-compressed, as Debian's\n"
            "dataset-fashion-mnist ships them in /usr/share/datasets/fashion-mnist). Images are\n"
            "converted to the model's channels and resized to its input when they differ.\n\n"
            "With --threshold (default: the model's stored threshold, else 0.9) every image is\n"
            "classified with early exit and the command prints accuracy, early-exit share (images\n"
            "answered by the light stage), mean MAdds per image and mean latency.\n"
            "With --sweep both stages run once per image and a table over thresholds is printed\n"
            "(accuracy, exit share, mean MAdds and its share of always running the specialist).\n\n"
            "Options:\n"
            "  --images IDX   idx3 image file (magic 0x00000803)\n"
            "  --labels IDX   idx1 label file (magic 0x00000801), same count\n"
            "  --threshold T  early-exit threshold in [0, 2]\n"
            "  --sweep        table over thresholds instead of one threshold\n"
            "  --limit N      only the first N images\n"
            "  --threads N    OpenBLAS threads (default 1)\n\n"
            "Exit status: 0 success, 1 a file could not be read or does not fit the model, 2 bad usage.\n");
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *images = NULL, *labels = NULL;
    double threshold = NAN;
    long limit = 0, threads = 1;
    int sweep = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tool_is_help(a))
            return cmd_eval_help(stdout);
        if (!strcmp(a, "--images") && v)
            images = argv[++i];
        else if (!strcmp(a, "--labels") && v)
            labels = argv[++i];
        else if (!strcmp(a, "--threshold") && v && !tool_parse_double(v, 0, 2, &threshold))
            i++;
        else if (!strcmp(a, "--limit") && v && !tool_parse_long(v, 1, 100000000, &limit))
            i++;
        else if (!strcmp(a, "--threads") && v && !tool_parse_long(v, 1, 64, &threads))
            i++;
        else if (!strcmp(a, "--sweep"))
            sweep = 1;
        else if (a[0] != '-' && !model)
            model = a;
        else {
            fprintf(stderr, "basisnet eval: bad argument or value: %s\n\n", a);
            cmd_eval_help(stderr);
            return 2;
        }
    }
    if (!model || !images || !labels || (sweep && !isnan(threshold))) {
        cmd_eval_help(stderr);
        return 2;
    }
    bn_model *m = tool_open_model("eval", model);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    if (isnan(threshold))
        threshold = tool_default_threshold(in);
    idx_file xi, yi;
    int rc = 1;
    bn_session *s = NULL;
    uint8_t *light_pred = NULL, *spec_pred = NULL;
    float *light_score = NULL;
    if (read_idx(images, 0x803, &xi))
        goto out_model;
    if (read_idx(labels, 0x801, &yi))
        goto out_x;
    if (xi.n != yi.n) {
        fprintf(stderr, "basisnet eval: %s has %u images but %s has %u labels\n", images, xi.n, labels, yi.n);
        goto out_y;
    }
    uint32_t n = limit && (uint32_t)limit < xi.n ? (uint32_t)limit : xi.n;
    for (uint32_t k = 0; k < n; k++)
        if (yi.data[k] >= in->num_classes) {
            fprintf(stderr, "basisnet eval: %s: label %u of image %u is not a class of the model (%d classes)\n",
                    labels, yi.data[k], k, in->num_classes);
            goto out_y;
        }
    if (!(s = tool_open_session("eval", m, (int)threads)))
        goto out_y;
    light_pred = malloc(n), spec_pred = malloc(n), light_score = malloc(sizeof(float) * n);
    if (!light_pred || !spec_pred || !light_score)
        goto out_s;
    uint64_t madds = 0, ns = 0;
    uint32_t correct = 0, exits = 0;
    for (uint32_t k = 0; k < n; k++) {
        image im = {.px = xi.data + (size_t)k * xi.rows * xi.cols, .w = (int)xi.cols, .h = (int)xi.rows, .c = 1};
        uint8_t *px = fit_image(&im, in);
        if (!px)
            goto out_s;
        bn_result r;
        bn_status st = sweep ? bn_run_light(s, px, (size_t)in->width * in->channels, &r)
                             : bn_classify(s, px, (size_t)in->width * in->channels, (float)threshold, &r);
        if (st == BN_OK && sweep) {
            light_pred[k] = (uint8_t)r.light_class;
            light_score[k] = r.light_score;
            st = bn_run_specialist(s, &r);
            spec_pred[k] = (uint8_t)r.class_id;
        }
        free(px);
        if (st != BN_OK) {
            fprintf(stderr, "basisnet eval: image %u: %s\n", k, bn_status_str(st));
            goto out_s;
        }
        correct += r.class_id == yi.data[k];
        exits += r.stage == BN_STAGE_LIGHT;
        madds += r.madds;
        ns += r.ns_light + r.ns_synth + r.ns_specialist;
    }
    const uint64_t full = in->madds_light + in->madds_synth + in->madds_specialist;
    printf("model %s, %u images from %s\n", in->name, n, images);
    if (!sweep) {
        printf("threshold        %.4f\naccuracy         %.4f (%u/%u)\nearly-exit share %.4f\n"
               "mean MAdds       %.0f (%.1f%% of always running the specialist: %llu)\n"
               "mean latency     %.3f ms per image\n",
               threshold, (double)correct / n, correct, n, (double)exits / n, (double)madds / n,
               100.0 * (double)madds / n / (double)full, (unsigned long long)full, tool_ms(ns) / n);
        rc = 0;
        goto out_s;
    }
    uint32_t lc = 0, sc = 0;
    for (uint32_t k = 0; k < n; k++) {
        lc += light_pred[k] == yi.data[k];
        sc += spec_pred[k] == yi.data[k];
    }
    printf("light only       accuracy %.4f, %llu MAdds\n", (double)lc / n, (unsigned long long)in->madds_light);
    printf("specialist       accuracy %.4f, %llu MAdds (light + synthesis + specialist)\n\n", (double)sc / n,
           (unsigned long long)full);
    static const double ts[] = {0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1.01};
    printf("%9s %9s %10s %12s %8s\n", "threshold", "accuracy", "exit share", "mean MAdds", "vs full");
    for (size_t t = 0; t < sizeof ts / sizeof ts[0]; t++) {
        uint32_t c = 0, e = 0;
        for (uint32_t k = 0; k < n; k++) {
            int ex = light_score[k] >= ts[t];
            e += ex;
            c += (ex ? light_pred[k] : spec_pred[k]) == yi.data[k];
        }
        double mean = in->madds_light + (double)(n - e) / n * (double)(in->madds_synth + in->madds_specialist);
        printf("%9.3f %9.4f %10.4f %12.0f %7.1f%%\n", ts[t], (double)c / n, (double)e / n, mean,
               100.0 * mean / (double)full);
    }
    rc = 0;
out_s:
    free(light_pred);
    free(spec_pred);
    free(light_score);
    bn_session_free(s);
out_y:
    free(yi.data);
out_x:
    free(xi.data);
out_model:
    bn_model_close(m);
    return rc;
}
