/* basisnet info: a model's architecture, cost, labels and stored accuracy, from the public
 * engine API plus the engine's internal layer table. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "basisnet.h"
#include "commands.h"
#include "engine_internal.h"
#include "model.h"

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
        printf("  %-3d %-18.18s %-8s %-14s %-14s %-18s %-9s %-5s %10s %9s\n", i, ly->name, tool_op_name(ly->op), in,
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
            "Prints a model's architecture and cost: whether the file's checksum was verified,\n"
            "input and preprocessing, one table per stage\n"
            "(layer, op, input and output shape, kernel/stride/padding/groups, activation,\n"
            "whether the layer is synthesized from bases, MAdds and parameters), MAdds per stage as\n"
            "the engine computes them (docs/model-format.md), parameters, labels, the accuracy the\n"
            "exporter measured, and the bytes one inference session allocates.\n\n"
            "Exit status: 0 success, 1 the model cannot be loaded, 2 bad usage.\n");
    return 0;
}

int cmd_info(int argc, char **argv)
{
    if (argc == 2 && tool_is_help(argv[1]))
        return cmd_info_help(stdout);
    if (argc != 2 || argv[1][0] == '-') {
        cmd_info_help(stderr);
        return 2;
    }
    bn_model *m = tool_open_model("info", argv[1]);
    if (!m)
        return 1;
    const bn_model_info *in = bn_model_get_info(m);
    printf("model      %s (%s)\n", in->name, argv[1]);
    if (in->data_checksum)
        printf("checksum   data_crc32 %08x, verified\n", (unsigned)in->data_crc32);
    else
        printf("checksum   none in the file: not verified (tools/train/add_checksum.py adds it)\n");
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
    bn_session *s = tool_open_session("info", m, 1, 0);
    if (!s) {
        bn_model_close(m);
        return 1;
    }
    printf("session    %zu bytes (activations, scratch, synthesized weights)\n", bn_session_bytes(s));
    bn_session_free(s);
    bn_model_close(m);
    return 0;
}
