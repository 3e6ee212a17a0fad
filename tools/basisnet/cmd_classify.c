/* basisnet classify: PNG/JPEG images through both stages with early exit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basisnet.h"
#include "commands.h"
#include "image.h"

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
            "  --threads N    engine threads (default 1)\n\n"
            "Exit status: 0 all images classified, 1 a model or image could not be read, 2 bad usage.\n");
    return 0;
}

int cmd_classify(int argc, char **argv)
{
    double threshold = NAN;
    long threads = 1;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (tool_is_help(argv[i]))
            return cmd_classify_help(stdout);
        if (!strcmp(argv[i], "--threshold") && i + 1 < argc && !tool_parse_double(argv[i + 1], 0, 2, &threshold))
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
    bn_model *m = tool_open_model("classify", argv[i]);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    if (isnan(threshold))
        threshold = tool_default_threshold(in);
    bn_session *s = tool_open_session("classify", m, (int)threads, 0);
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
               r.light_score, tool_ms(r.ns_light + r.ns_synth + r.ns_specialist));
        free(px);
    }
    bn_session_free(s);
    bn_model_close(m);
    return rc;
}
