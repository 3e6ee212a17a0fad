/* Helpers shared by the toolbox's commands (declared in commands.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "engine_internal.h"
#include "model.h"

int tool_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int tool_parse_long_opt(const char *prog, const char *opt, const char *s, long lo, long hi,
                        long *out)
{
    if (tool_parse_long(s, lo, hi, out) == 0)
        return 0;
    fprintf(stderr, "%s: %s expects an integer from %ld to %ld, got '%s'\n", prog, opt, lo, hi,
            s ? s : "");
    return -1;
}

int tool_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int tool_is_help(const char *arg) { return !strcmp(arg, "--help") || !strcmp(arg, "-h"); }

uint64_t tool_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double tool_ms(uint64_t ns) { return (double)ns / 1e6; }

bn_model *tool_open_model(const char *cmd, const char *path)
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

bn_session *tool_open_session(const char *cmd, const bn_model *m, int threads, float synth_reuse)
{
    char err[512] = "";
    bn_session *s = NULL;
    if (bn_session_new(m, (bn_session_params){.threads = threads, .synth_reuse = synth_reuse}, &s, err, sizeof err) != BN_OK) {
        fprintf(stderr, "basisnet %s: %s\n", cmd, err[0] ? err : "cannot create a session");
        return NULL;
    }
    return s;
}

double tool_default_threshold(const bn_model_info *in)
{
    return isfinite(in->acc_threshold) && in->acc_threshold > 0 ? in->acc_threshold : 0.9;
}

const char *tool_op_name(int op)
{
    static const char *const names[BN_OP_COUNT] = {"conv2d", "linear", "add", "se", "avgpool",
                                                   "maxpool", "gap", "act"};
    return op >= 0 && op < BN_OP_COUNT ? names[op] : "?";
}
