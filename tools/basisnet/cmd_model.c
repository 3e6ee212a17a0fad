/* basisnet info / classify / eval / bench: the offline model commands, built on the
 * public engine API (plus the engine's internal layer table for `info`). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <jpeglib.h> /* needs stddef.h and stdio.h first */
#include <png.h>
#include <zlib.h>

#include "basisnet.h"
#include "commands.h"
#include "engine_internal.h"
#include "model.h"

/* ------------------------------------------------------------------------------------ */
/* shared helpers                                                                        */

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

static bn_model *open_model(const char *cmd, const char *path)
{
    char err[1024];
    bn_model *m = NULL;
    bn_status st = bn_model_open(path, &m, err, sizeof err);
    if (st != BN_OK) {
        fprintf(stderr, "basisnet %s: %s\n", cmd, err);
        return NULL;
    }
    return m;
}

static bn_session *open_session(const char *cmd, const bn_model *m, int threads)
{
    char err[512] = "";
    bn_session *s = NULL;
    if (bn_session_new(m, (bn_session_params){.threads = threads}, &s, err, sizeof err) != BN_OK) {
        fprintf(stderr, "basisnet %s: %s\n", cmd, err[0] ? err : "cannot create a session");
        return NULL;
    }
    return s;
}

/* Default early-exit threshold: the one the exporter measured accuracy at, else 0.9. */
static double default_threshold(const bn_model_info *in)
{
    return isfinite(in->acc_threshold) && in->acc_threshold > 0 ? in->acc_threshold : 0.9;
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static const char *fmt_count(uint64_t v, char *buf, size_t len)
{
    if (v >= 10000000)
        snprintf(buf, len, "%.1fM", (double)v / 1e6);
    else if (v >= 10000)
        snprintf(buf, len, "%.1fk", (double)v / 1e3);
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

/* ------------------------------------------------------------------------------------ */
/* info                                                                                  */

static const char *const op_names[BN_OP_COUNT] = {"conv2d", "linear", "add", "se", "avgpool", "maxpool",
                                                  "gap", "act"};

static void print_stage(const char *title, const bn_stage_def *sd)
{
    printf("\n%s stage (input %dx%dx%d, %d layers)\n", title, sd->c, sd->h, sd->w, sd->n);
    printf("  %-3s %-18s %-8s %-14s %-14s %-18s %-9s %-5s %10s %9s\n", "#", "name", "op", "input", "output",
           "k/s/p/groups", "act", "synth", "MAdds", "params");
    for (int i = 0; i < sd->n; i++) {
        const bn_layer *ly = &sd->layers[i];
        const bn_conv_shape *g = &ly->g;
        char in[32], out[32], win[40] = "", act[24] = "", cm[16], cp[16];
        snprintf(in, sizeof in, "%dx%dx%d", g->c, g->h, g->w);
        snprintf(out, sizeof out, "%dx%dx%d", g->oc, g->oh, g->ow);
        if (ly->op == BN_OP_CONV || ly->op == BN_OP_AVGPOOL || ly->op == BN_OP_MAXPOOL)
            snprintf(win, sizeof win, "%dx%d/%d/%d/%d", g->kh, g->kw, g->sh, g->ph, g->groups);
        else if (ly->op == BN_OP_SE)
            snprintf(win, sizeof win, "squeeze %d", ly->squeeze);
        if (ly->op == BN_OP_SE)
            snprintf(act, sizeof act, "%s/%s", bn_act_name(ly->act), bn_act_name(ly->gate));
        else if (ly->op == BN_OP_CONV || ly->op == BN_OP_LINEAR || ly->op == BN_OP_ADD || ly->op == BN_OP_ACT)
            snprintf(act, sizeof act, "%s%s", bn_act_name(ly->act),
                     ly->fuse_add ? (ly->op == BN_OP_ADD ? " fused" : " +add") : "");
        printf("  %-3d %-18.18s %-8s %-14s %-14s %-18s %-9s %-5s %10s %9s\n", i, ly->name, op_names[ly->op], in,
               out, win, act, ly->synth ? "yes" : "", fmt_count(ly->madds, cm, sizeof cm),
               fmt_count(ly->params, cp, sizeof cp));
    }
}

static void print_acc(const char *name, double v)
{
    if (isfinite(v))
        printf("  %-22s %.4f\n", name, v);
}

static int cmd_info_help(FILE *f)
{
    fprintf(f,
            "Usage: basisnet info MODEL\n\n"
            "Prints a model's architecture and cost: input and preprocessing, one table per stage\n"
            "(layer, op, input and output shape, kernel/stride/padding/groups, activation,\n"
            "whether the layer is synthesized from bases, MAdds and parameters), MAdds per stage as\n"
            "the engine computes them (docs/model-format.md), parameters, labels, the accuracy the\n"
            "exporter measured, and the bytes one inference session allocates.\n\n"
            "Exit status: 0 success, 1 the model cannot be loaded, 2 bad usage.\n");
    return 0;
}

int cmd_info(int argc, char **argv)
{
    if (argc == 2 && is_help(argv[1]))
        return cmd_info_help(stdout);
    if (argc != 2 || argv[1][0] == '-') {
        cmd_info_help(stderr);
        return 2;
    }
    bn_model *m = open_model("info", argv[1]);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    printf("model      %s (%s)\n", in->name, argv[1]);
    printf("input      %dx%d, %d channel%s (HWC 8-bit), normalized with mean [", in->width, in->height,
           in->channels, in->channels > 1 ? "s" : "");
    for (int c = 0; c < in->channels; c++)
        printf("%s%.4f", c ? ", " : "", m->mean[c]);
    printf("], std [");
    for (int c = 0; c < in->channels; c++)
        printf("%s%.4f", c ? ", " : "", m->std[c]);
    printf("]\nlight in   %dx%d (%s of the normalized image)\n", in->light_width, in->light_height,
           m->resize == BN_RESIZE_AVGPOOL ? "avgpool" : "bilinear");
    printf("bases      N = %d, %d synthesized layers (alpha has %d values)\n", in->num_bases,
           in->num_synth_layers, in->num_bases * in->num_synth_layers);
    print_stage("light", &m->light);
    print_stage("specialist", &m->spec);
    uint64_t full = in->madds_light + in->madds_synth + in->madds_specialist;
    printf("\nMAdds      light %llu, synthesis %llu, specialist %llu, both stages %llu\n",
           (unsigned long long)in->madds_light, (unsigned long long)in->madds_synth,
           (unsigned long long)in->madds_specialist, (unsigned long long)full);
    printf("params     light %llu, specialist %llu (bases count N times), total %llu\n",
           (unsigned long long)in->params_light, (unsigned long long)in->params_specialist,
           (unsigned long long)(in->params_light + in->params_specialist));
    printf("labels     %d:", in->num_classes);
    for (int i = 0; i < in->num_classes && i < 20; i++)
        printf(" %d=%s%s", i, in->labels[i], i + 1 < in->num_classes ? "," : "");
    printf("%s\n", in->num_classes > 20 ? " ..." : "");
    if (isfinite(in->acc_test_full) || isfinite(in->acc_test_light)) {
        printf("accuracy (from the exporter)\n");
        print_acc("specialist (always)", in->acc_test_full);
        print_acc("light only", in->acc_test_light);
        print_acc("early-exit threshold", in->acc_threshold);
        print_acc("with early exit", in->acc_test_early_exit);
        print_acc("early-exit share", in->acc_exit_share);
    } else {
        printf("accuracy   not recorded in the file\n");
    }
    if (in->n_val_light_confidence)
        printf("calibration %d validation light confidences\n", in->n_val_light_confidence);
    bn_session *s = open_session("info", m, 1);
    if (!s) {
        bn_model_close(m);
        return 1;
    }
    printf("session    %zu bytes (activations, scratch, synthesized weights)\n", bn_session_bytes(s));
    bn_session_free(s);
    bn_model_close(m);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* images: PNG / JPEG decode, channel conversion, resize                                 */

typedef struct {
    uint8_t *px;
    int w, h, c;
} image;

static int load_png(const char *path, int want_c, image *im, char *err, size_t errlen)
{
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&p, path)) {
        snprintf(err, errlen, "%s: %s", path, p.message);
        return -1;
    }
    p.format = want_c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    im->w = (int)p.width, im->h = (int)p.height, im->c = want_c == 1 ? 1 : 3;
    im->px = malloc(PNG_IMAGE_SIZE(p));
    if (!im->px || !png_image_finish_read(&p, NULL, im->px, 0, NULL)) {
        snprintf(err, errlen, "%s: %s", path, im->px ? p.message : "out of memory");
        png_image_free(&p);
        free(im->px);
        im->px = NULL;
        return -1;
    }
    return 0;
}

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

static int load_jpeg(const char *path, FILE *f, int want_c, image *im, char *err, size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile px = NULL;
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = jpeg_on_error;
    if (setjmp(jerr.jmp)) {
        snprintf(err, errlen, "%s: JPEG: %s", path, jerr.msg);
        jpeg_destroy_decompress(&cinfo);
        free(px);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = want_c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    im->w = (int)cinfo.output_width, im->h = (int)cinfo.output_height, im->c = cinfo.output_components;
    px = malloc((size_t)im->w * im->h * im->c);
    if (!px)
        longjmp(jerr.jmp, 1);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * im->w * im->c;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    im->px = px;
    return 0;
}

/* Decodes PNG or JPEG (by magic bytes) into gray (want_c == 1) or RGB. */
static int load_image(const char *path, int want_c, image *im, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t magic[4] = {0};
    size_t n = fread(magic, 1, 4, f);
    rewind(f);
    int rc;
    if (n == 4 && !memcmp(magic, "\x89PNG", 4)) {
        fclose(f);
        return load_png(path, want_c, im, err, errlen);
    }
    if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF)
        rc = load_jpeg(path, f, want_c, im, err, errlen);
    else {
        snprintf(err, errlen, "%s: not a PNG or JPEG file", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* Resizes HWC 8-bit: area average when shrinking (each output pixel averages the source
 * box it covers, with fractional edge weights), bilinear when enlarging. Channels kept. */
static void resize_u8(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh)
{
    const double fx = (double)sw / dw, fy = (double)sh / dh;
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++)
            for (int k = 0; k < c; k++) {
                double v = 0;
                if (fx >= 1.0 && fy >= 1.0) {
                    double y0 = y * fy, y1 = y0 + fy, x0 = x * fx, x1 = x0 + fx, wsum = 0;
                    for (int sy = (int)y0; sy < (int)ceil(y1) && sy < sh; sy++) {
                        double wy = fmin(y1, sy + 1) - fmax(y0, sy);
                        for (int sx = (int)x0; sx < (int)ceil(x1) && sx < sw; sx++) {
                            double wgt = wy * (fmin(x1, sx + 1) - fmax(x0, sx));
                            v += wgt * src[((size_t)sy * sw + sx) * c + k];
                            wsum += wgt;
                        }
                    }
                    v = wsum > 0 ? v / wsum : 0;
                } else {
                    double sy = fmax((y + 0.5) * fy - 0.5, 0), sx = fmax((x + 0.5) * fx - 0.5, 0);
                    int y0 = (int)sy, x0 = (int)sx;
                    int y1 = y0 + 1 < sh ? y0 + 1 : y0, x1 = x0 + 1 < sw ? x0 + 1 : x0;
                    double ly = sy - y0, lx = sx - x0;
                    v = (1 - ly) * ((1 - lx) * src[((size_t)y0 * sw + x0) * c + k] +
                                    lx * src[((size_t)y0 * sw + x1) * c + k]) +
                        ly * ((1 - lx) * src[((size_t)y1 * sw + x0) * c + k] +
                              lx * src[((size_t)y1 * sw + x1) * c + k]);
                }
                int q = (int)lrint(v);
                dst[((size_t)y * dw + x) * c + k] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
}

/* Converts a decoded image (1 or 3 channels) to the model's channels and size. */
static uint8_t *fit_image(const image *im, const bn_model_info *in)
{
    const int c = in->channels;
    uint8_t *conv = malloc((size_t)im->w * im->h * c);
    uint8_t *out = malloc((size_t)in->width * in->height * c);
    if (!conv || !out) {
        free(conv);
        free(out);
        return NULL;
    }
    for (size_t p = 0; p < (size_t)im->w * im->h; p++)
        for (int k = 0; k < c; k++) {
            const uint8_t *s = im->px + p * im->c;
            uint8_t v;
            if (im->c == c)
                v = s[k];
            else if (im->c == 1)
                v = s[0];
            else /* RGB -> gray, ITU-R BT.601 luma */
                v = (uint8_t)lrint(0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]);
            conv[p * c + k] = (c == 1 || k < im->c) ? v : s[k % im->c];
        }
    if (im->w == in->width && im->h == in->height) {
        free(out);
        return conv;
    }
    resize_u8(conv, im->w, im->h, c, out, in->width, in->height);
    free(conv);
    return out;
}

/* ------------------------------------------------------------------------------------ */
/* classify                                                                              */

static int cmd_classify_help(FILE *f)
{
    fprintf(f,
            "Usage: basisnet classify [--threshold T] [--threads N] MODEL IMAGE...\n\n"
            "Classifies PNG or JPEG images with a model. Each image is converted to the model's\n"
            "channels (gray or RGB) and resized to its input size (area average when shrinking,\n"
            "bilinear when enlarging), then runs the light stage; the specialist runs when the\n"
            "light confidence is below the threshold. One line per image:\n"
            "  IMAGE  LABEL  score S  stage light|specialist  (light: LABEL S)  T ms\n\n"
            "Options:\n"
            "  --threshold T  early-exit threshold in [0, 2]: > 1 always runs the specialist, 0\n"
            "                 never does (default: the threshold stored in the model, else 0.9)\n"
            "  --threads N    OpenBLAS threads (default 1)\n\n"
            "Exit status: 0 all images classified, 1 a model or image could not be read, 2 bad usage.\n");
    return 0;
}

int cmd_classify(int argc, char **argv)
{
    double threshold = NAN;
    long threads = 1;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (is_help(argv[i]))
            return cmd_classify_help(stdout);
        if (!strcmp(argv[i], "--threshold") && i + 1 < argc && !parse_double(argv[i + 1], 0, 2, &threshold))
            i++;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc && !tool_parse_long(argv[i + 1], 1, 64, &threads))
            i++;
        else {
            fprintf(stderr, "basisnet classify: bad option or value: %s\n\n", argv[i]);
            cmd_classify_help(stderr);
            return 2;
        }
    }
    if (argc - i < 2) {
        cmd_classify_help(stderr);
        return 2;
    }
    bn_model *m = open_model("classify", argv[i]);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    if (isnan(threshold))
        threshold = default_threshold(in);
    bn_session *s = open_session("classify", m, (int)threads);
    if (!s) {
        bn_model_close(m);
        return 1;
    }
    int rc = 0;
    for (int k = i + 1; k < argc; k++) {
        char err[512];
        image im = {0};
        if (load_image(argv[k], in->channels, &im, err, sizeof err) != 0) {
            fprintf(stderr, "basisnet classify: %s\n", err);
            rc = 1;
            continue;
        }
        uint8_t *px = fit_image(&im, in);
        free(im.px);
        bn_result r;
        if (!px || bn_classify(s, px, (size_t)in->width * in->channels, (float)threshold, &r) != BN_OK) {
            fprintf(stderr, "basisnet classify: %s: classification failed\n", argv[k]);
            free(px);
            rc = 1;
            continue;
        }
        printf("%s\t%s\tscore %.4f\tstage %s\t(light: %s %.4f)\t%.3f ms\n", argv[k], in->labels[r.class_id],
               r.score, r.stage == BN_STAGE_LIGHT ? "light" : "specialist", in->labels[r.light_class],
               r.light_score, ms(r.ns_light + r.ns_synth + r.ns_specialist));
        free(px);
    }
    bn_session_free(s);
    bn_model_close(m);
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* eval                                                                                  */

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
        if (is_help(a))
            return cmd_eval_help(stdout);
        if (!strcmp(a, "--images") && v)
            images = argv[++i];
        else if (!strcmp(a, "--labels") && v)
            labels = argv[++i];
        else if (!strcmp(a, "--threshold") && v && !parse_double(v, 0, 2, &threshold))
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
    bn_model *m = open_model("eval", model);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    if (isnan(threshold))
        threshold = default_threshold(in);
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
    if (!(s = open_session("eval", m, (int)threads)))
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
               100.0 * (double)madds / n / (double)full, (unsigned long long)full, ms(ns) / n);
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

/* ------------------------------------------------------------------------------------ */
/* bench                                                                                 */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return ms(v[i ? i - 1 : 0]);
}

/* Mean time per layer and per op type from the session's profile (profiling adds two
 * clock reads per layer, so totals run slightly above the unprofiled ones). */
static void print_profile(const bn_model *m, const bn_session *s, size_t n)
{
    const bn_stage_def *stages[2] = {&m->light, &m->spec};
    for (int k = 0; k < 2; k++) {
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
            printf("  %-3d %-18.18s %-8s %-14s %10.4f %5.1f%% %9.2f\n", i, ly->name, op_names[ly->op], out, t / 1e6,
                   100 * p[i] / tot, t > 0 ? 2.0 * (double)ly->madds / t : 0);
        }
        printf("  by op:");
        for (int o = 0; o < BN_OP_COUNT; o++)
            if (per_op[o] > 0)
                printf(" %s %.1f%%", op_names[o], 100 * per_op[o] / tot);
        printf(" (depthwise conv %.1f%%)\n", 100 * dw / tot);
    }
}

static int cmd_bench_help(FILE *f)
{
    fprintf(f,
            "Usage: basisnet bench MODEL [--threads N] [--seconds S] [--json] [--profile]\n\n"
            "Measures per-stage latency at batch 1 on a fixed pseudo-random image: both stages run\n"
            "every iteration (as with threshold > 1). After 10 warm-up runs it loops for S seconds\n"
            "(at least 20 iterations) and prints p50, p99 and mean for the stages light (preprocessing\n"
            "+ light network), synth (weight synthesis), specialist and total, plus the specialist's\n"
            "GFLOP/s (2 x MAdds / time), the synthesis bandwidth (bases bytes read / time), the\n"
            "synthesis share of specialist time and the session's bytes.\n\n"
            "Options:\n"
            "  --threads N   OpenBLAS threads (default 1; 1 is the safe choice on 2 cores)\n"
            "  --seconds S   measuring time (default 5)\n"
            "  --json        one JSON object instead of the table\n"
            "  --profile     also print the time per layer (mean ms) and per op type\n\n"
            "Exit status: 0 success, 1 the model cannot be loaded or run, 2 bad usage.\n");
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *model = NULL;
    long threads = 1;
    double seconds = 5;
    int json = 0, profile = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (is_help(a))
            return cmd_bench_help(stdout);
        if (!strcmp(a, "--threads") && v && !tool_parse_long(v, 1, 64, &threads))
            i++;
        else if (!strcmp(a, "--seconds") && v && !parse_double(v, 0.01, 3600, &seconds))
            i++;
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--profile"))
            profile = 1;
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
    bn_model *m = open_model("bench", model);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    bn_session *s = open_session("bench", m, (int)threads);
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
    uint64_t end = tool_mono_ns() + (uint64_t)(seconds * 1e9);
    while (n < cap && (n < 20 || tool_mono_ns() < end)) {
        uint64_t t0 = tool_mono_ns();
        bn_classify(s, img, stride, 2.0f, &r);
        uint64_t tot = tool_mono_ns() - t0;
        t[0][n] = r.ns_light, t[1][n] = r.ns_synth, t[2][n] = r.ns_specialist, t[3][n] = tot;
        t[4][n] = r.ns_synth + r.ns_specialist;
        n++;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    /* CPU time per inference: robust when other processes share the cores */
    double cpu_ms = ((double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6) / (double)n;
    double mean[5] = {0};
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; i < n; i++)
            mean[k] += ms(t[k][i]);
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
    double gflops = 2.0 * (double)in->madds_specialist / (p50[2] * 1e6);
    double light_gflops = 2.0 * (double)in->madds_light / (p50[0] * 1e6);
    double gbs = p50[1] > 0 ? synth_bytes / (p50[1] * 1e6) : 0;
    double synth_share = p50[1] / (p50[1] + p50[2]);
    static const char *const names[5] = {"light", "synth", "specialist", "total", "synth_specialist"};
    if (json) {
        printf("{\"model\":\"%s\",\"threads\":%ld,\"iterations\":%zu", in->name, threads, n);
        for (int k = 0; k < 5; k++)
            printf(",\"%s\":{\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"mean_ms\":%.4f}", names[k], p50[k], p99[k], mean[k]);
        printf(",\"madds\":{\"light\":%llu,\"synth\":%llu,\"specialist\":%llu},\"specialist_gflops\":%.2f,"
               "\"light_gflops\":%.2f,\"synth_bytes\":%.0f,\"synth_gbytes_per_s\":%.2f,\"synth_share_of_specialist\":%.4f,"
               "\"session_bytes\":%zu,\"cpu_ms_per_inference\":%.4f,\"kernels\":\"%s\"}\n",
               (unsigned long long)in->madds_light, (unsigned long long)in->madds_synth,
               (unsigned long long)in->madds_specialist, gflops, light_gflops, synth_bytes, gbs, synth_share,
               bn_session_bytes(s), cpu_ms, bn_engine_kernels());
    } else {
        printf("model %s, %ld thread%s, %zu iterations (batch 1, both stages every time)\n", in->name,
               threads, threads > 1 ? "s" : "", n);
        printf("%-11s %9s %9s %9s\n", "stage", "p50 ms", "p99 ms", "mean ms");
        for (int k = 0; k < 4; k++)
            printf("%-11s %9.4f %9.4f %9.4f\n", names[k], p50[k], p99[k], mean[k]);
        printf("\nlight       %llu MAdds, %.2f GFLOP/s at p50\n", (unsigned long long)in->madds_light, light_gflops);
        printf("specialist  %llu MAdds, %.2f GFLOP/s at p50\n", (unsigned long long)in->madds_specialist, gflops);
        printf("synthesis   %.0f bytes of bases read, %.2f GB/s, %.1f%% of synth + specialist time\n", synth_bytes, gbs,
               100.0 * synth_share);
        printf("session     %zu bytes\n", bn_session_bytes(s));
        printf("cpu time    %.4f ms per inference (process CPU time / iterations); kernels %s\n", cpu_ms,
               bn_engine_kernels());
    }
    if (profile)
        print_profile(m, s, n);
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
