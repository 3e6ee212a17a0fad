/* basisnet eval: accuracy, early-exit share and mean MAdds of a model on a labelled data
 * set (idx files or a folder of labelled images), at one threshold or over a sweep. */
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
#include "image_folder.h"

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
            "Usage: basisnet eval MODEL (--images IDX --labels IDX | --folder DIR)\n"
            "                     [--threshold T | --sweep] [--limit N] [--threads N]\n\n"
            "Evaluates a model on an idx data set (plain or gzip-compressed, as Debian's\n"
            "dataset-fashion-mnist ships them in /usr/share/datasets/fashion-mnist) or on a folder\n"
            "of labelled images, DIR/LABEL/*.png|*.jpg|*.jpeg (what basisnet grab writes and\n"
            "tools/train reads). Images are converted to the model's channels and resized to its\n"
            "input when they differ, as basisnet classify does.\n\n"
            "With --threshold (default: the model's stored threshold, else 0.9) every image is\n"
            "classified with early exit and the command prints accuracy, early-exit share (images\n"
            "answered by the light stage), mean MAdds per image and mean latency.\n"
            "With --sweep both stages run once per image and a table over thresholds is printed\n"
            "(accuracy, exit share, mean MAdds and its share of always running the specialist).\n"
            "With --folder a table per class follows.\n\n"
            "Options:\n"
            "  --images IDX   idx3 image file (magic 0x00000803)\n"
            "  --labels IDX   idx1 label file (magic 0x00000801), same count\n"
            "  --folder DIR   one sub-folder per class, named as the model's label; a '/' in a\n"
            "                 label is '_' in its folder name (T-shirt/top: DIR/T-shirt_top).\n"
            "                 Every folder must be a label and hold an image; labels without a\n"
            "                 folder are not evaluated. Folders and files are read sorted by name\n"
            "  --threshold T  early-exit threshold in [0, 2]\n"
            "  --sweep        table over thresholds instead of one threshold\n"
            "  --limit N      only the first N images (with --folder: in the order read)\n"
            "  --threads N    engine threads (default 1)\n\n"
            "Exit status: 0 success, 1 a file could not be read or does not fit the model (also a\n"
            "folder that is no label, an empty class folder, a corrupt image), 2 bad usage.\n");
    return 0;
}

/* The images being evaluated: an idx pair or a folder, read one image at a time. */
typedef struct {
    const char *source; /* IDX or DIR, as given */
    uint32_t n;         /* images evaluated (after --limit) */
    int *truth;         /* n model class ids */
    idx_file xi, yi;    /* idx */
    int is_folder;
    image_folder fo;    /* folder */
    int first_w, first_h, warned;
} eval_set;

static void eval_set_free(eval_set *es)
{
    free(es->truth);
    free(es->xi.data);
    free(es->yi.data);
    image_folder_free(&es->fo);
}

static int eval_set_open(eval_set *es, const char *images, const char *labels, const char *folder, long limit,
                         const bn_model_info *in)
{
    uint32_t total;
    if (folder) {
        es->source = folder, es->is_folder = 1;
        if (image_folder_open("basisnet eval", folder, in, &es->fo))
            return -1;
        total = es->fo.n;
    } else {
        es->source = images;
        if (read_idx(images, 0x803, &es->xi) || read_idx(labels, 0x801, &es->yi))
            return -1;
        if (es->xi.n != es->yi.n) {
            fprintf(stderr, "basisnet eval: %s has %u images but %s has %u labels\n", images, es->xi.n, labels,
                    es->yi.n);
            return -1;
        }
        total = es->xi.n;
    }
    es->n = limit && (uint32_t)limit < total ? (uint32_t)limit : total;
    if (!(es->truth = malloc(sizeof *es->truth * es->n))) {
        fprintf(stderr, "basisnet eval: out of memory\n");
        return -1;
    }
    for (uint32_t k = 0; k < es->n; k++) {
        es->truth[k] = folder ? es->fo.label[k] : es->yi.data[k];
        if (es->truth[k] >= in->num_classes) {
            fprintf(stderr, "basisnet eval: %s: label %d of image %u is not a class of the model (%d classes)\n",
                    labels, es->truth[k], k, in->num_classes);
            return -1;
        }
    }
    return 0;
}

/* Image k fitted to the model input (malloc'd), or NULL after printing why. */
static uint8_t *eval_set_image(eval_set *es, uint32_t k, const bn_model_info *in)
{
    uint8_t *px;
    if (!es->is_folder) {
        image im = {.px = es->xi.data + (size_t)k * es->xi.rows * es->xi.cols,
                    .w = (int)es->xi.cols, .h = (int)es->xi.rows, .c = 1};
        if (!(px = fit_image(&im, in)))
            fprintf(stderr, "basisnet eval: image %u: out of memory\n", k);
        return px;
    }
    char err[1024];
    image im = {0};
    if (load_image(es->fo.path[k], in->channels, &im, err, sizeof err)) {
        fprintf(stderr, "basisnet eval: %s\n", err);
        return NULL;
    }
    if (k == 0)
        es->first_w = im.w, es->first_h = im.h;
    else if (!es->warned && (im.w != es->first_w || im.h != es->first_h)) {
        fprintf(stderr,
                "basisnet eval: warning: %s is %dx%d but %s is %dx%d: the folder mixes image sizes "
                "(each is resized to the model input, %dx%d)\n",
                es->fo.path[k], im.w, im.h, es->fo.path[0], es->first_w, es->first_h, in->width, in->height);
        es->warned = 1;
    }
    if (!(px = fit_image(&im, in)))
        fprintf(stderr, "basisnet eval: %s: out of memory\n", es->fo.path[k]);
    free(im.px);
    return px;
}

/* Per-class lines for a folder, in the model's label order; then one line naming the labels
 * that have no folder. light/spec: sweep predictions (NULL at one threshold). */
static void print_per_class(const eval_set *es, const bn_model_info *in, const int *pred, const uint8_t *exited,
                            const int *light, const int *spec)
{
    printf("\n%-16s %-16s %7s %17s %17s\n", "class", "folder", "images", light ? "light only" : "accuracy",
           light ? "specialist" : "exit share");
    int missing = 0;
    for (int c = 0; c < in->num_classes; c++) {
        int fi = -1;
        for (int i = 0; i < es->fo.nfolders; i++)
            if (es->fo.folder_label[i] == c)
                fi = i;
        if (fi < 0) {
            missing++;
            continue;
        }
        uint32_t n = 0, a = 0, b = 0;
        for (uint32_t k = 0; k < es->n; k++)
            if (es->truth[k] == c) {
                n++;
                a += (light ? light[k] : pred[k]) == c;
                b += light ? spec[k] == c : exited[k];
            }
        char ca[32] = "-", cb[32] = "-";
        if (n) {
            snprintf(ca, sizeof ca, "%.4f (%u/%u)", (double)a / n, a, n);
            if (light)
                snprintf(cb, sizeof cb, "%.4f (%u/%u)", (double)b / n, b, n);
            else
                snprintf(cb, sizeof cb, "%.4f", (double)b / n);
        }
        printf("%-16s %-16s %7u %17s %17s\n", in->labels[c], es->fo.folder[fi], n, ca, cb);
    }
    if (missing) {
        printf("not evaluated    %d model label%s without a folder:", missing, missing > 1 ? "s" : "");
        for (int c = 0, j = 0; c < in->num_classes; c++) {
            int found = 0;
            for (int i = 0; i < es->fo.nfolders; i++)
                found |= es->fo.folder_label[i] == c;
            if (!found)
                printf("%s %s", j++ ? "," : "", in->labels[c]);
        }
        printf("\n");
    }
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *images = NULL, *labels = NULL, *folder = NULL;
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
        else if (!strcmp(a, "--folder") && v)
            folder = argv[++i];
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
    if (folder && (images || labels)) {
        fprintf(stderr, "basisnet eval: --folder and --images/--labels are mutually exclusive\n\n");
        cmd_eval_help(stderr);
        return 2;
    }
    if (!model || (!folder && (!images || !labels)) || (sweep && !isnan(threshold))) {
        cmd_eval_help(stderr);
        return 2;
    }
    bn_model *m = tool_open_model("eval", model);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    if (isnan(threshold))
        threshold = tool_default_threshold(in);
    eval_set es = {0};
    int rc = 1;
    bn_session *s = NULL;
    int *pred = NULL, *light_pred = NULL, *spec_pred = NULL;
    uint8_t *exited = NULL;
    float *light_score = NULL;
    if (eval_set_open(&es, images, labels, folder, limit, in))
        goto out;
    const uint32_t n = es.n;
    const int *truth = es.truth;
    if (!(s = tool_open_session("eval", m, (int)threads, 0)))
        goto out;
    pred = malloc(sizeof(int) * n), exited = malloc(n);
    light_pred = malloc(sizeof(int) * n), spec_pred = malloc(sizeof(int) * n), light_score = malloc(sizeof(float) * n);
    if (!pred || !exited || !light_pred || !spec_pred || !light_score) {
        fprintf(stderr, "basisnet eval: out of memory\n");
        goto out;
    }
    uint64_t madds = 0, ns = 0;
    uint32_t correct = 0, exits = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint8_t *px = eval_set_image(&es, k, in);
        if (!px)
            goto out;
        bn_result r;
        bn_status st = sweep ? bn_run_light(s, px, (size_t)in->width * in->channels, &r)
                             : bn_classify(s, px, (size_t)in->width * in->channels, (float)threshold, &r);
        if (st == BN_OK && sweep) {
            light_pred[k] = r.light_class;
            light_score[k] = r.light_score;
            st = bn_run_specialist(s, &r);
            spec_pred[k] = r.class_id;
        }
        free(px);
        if (st != BN_OK) {
            if (es.is_folder)
                fprintf(stderr, "basisnet eval: %s: %s\n", es.fo.path[k], bn_status_str(st));
            else
                fprintf(stderr, "basisnet eval: image %u: %s\n", k, bn_status_str(st));
            goto out;
        }
        pred[k] = r.class_id;
        exited[k] = r.stage == BN_STAGE_LIGHT;
        correct += r.class_id == truth[k];
        exits += r.stage == BN_STAGE_LIGHT;
        madds += r.madds;
        ns += r.ns_light + r.ns_synth + r.ns_specialist;
    }
    const uint64_t full = in->madds_light + in->madds_synth + in->madds_specialist;
    printf("model %s, %u images from %s\n", in->name, n, es.source);
    if (!sweep) {
        printf("threshold        %.4f\naccuracy         %.4f (%u/%u)\nearly-exit share %.4f\n"
               "mean MAdds       %.0f (%.1f%% of always running the specialist: %llu)\n"
               "mean latency     %.3f ms per image\n",
               threshold, (double)correct / n, correct, n, (double)exits / n, (double)madds / n,
               100.0 * (double)madds / n / (double)full, (unsigned long long)full, tool_ms(ns) / n);
        if (es.is_folder)
            print_per_class(&es, in, pred, exited, NULL, NULL);
        rc = 0;
        goto out;
    }
    uint32_t lc = 0, sc = 0;
    for (uint32_t k = 0; k < n; k++) {
        lc += light_pred[k] == truth[k];
        sc += spec_pred[k] == truth[k];
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
            c += (ex ? light_pred[k] : spec_pred[k]) == truth[k];
        }
        double mean = in->madds_light + (double)(n - e) / n * (double)(in->madds_synth + in->madds_specialist);
        printf("%9.3f %9.4f %10.4f %12.0f %7.1f%%\n", ts[t], (double)c / n, (double)e / n, mean,
               100.0 * mean / (double)full);
    }
    if (es.is_folder)
        print_per_class(&es, in, pred, exited, light_pred, spec_pred);
    rc = 0;
out:
    free(pred);
    free(exited);
    free(light_pred);
    free(spec_pred);
    free(light_score);
    bn_session_free(s);
    eval_set_free(&es);
    bn_model_close(m);
    return rc;
}
