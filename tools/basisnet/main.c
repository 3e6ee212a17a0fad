/* basisnet: offline model toolbox (inspect, classify, evaluate, benchmark, probe cameras,
 * grab training frames). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basisnet.h"
#include "bn_log.h"
#include "commands.h"


static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"info", cmd_info, "info MODEL                 architecture, MAdds, parameters, labels, accuracy"},
    {"classify", cmd_classify, "classify MODEL IMAGE...    classify PNG/JPEG images"},
    {"eval", cmd_eval, "eval MODEL --images IDX --labels IDX | --folder DIR   accuracy, exit share, MAdds"},
    {"bench", cmd_bench, "bench MODEL [--threads N] [--seconds S]   per-stage latency p50/p99"},
    {"probe", cmd_probe, "probe [DEVICE]             formats, sizes, rates and controls of a V4L2 device"},
    {"grab", cmd_grab, "grab SOURCE --out DIR      save camera/file/test frames as PNG training images"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: basisnet COMMAND [ARGS...]\n\n"
               "Offline toolbox for basisnetd models and cameras.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].summary);
    fprintf(f, "\nRun 'basisnet COMMAND --help' for a command's options.\n"
               "Exit status: 0 success, 1 failure, 2 bad usage.\n");
}

int main(int argc, char **argv)
{
    bn_log_set_callback(bn_log_stderr, NULL);
    /* BASISNET_LOG=error|warn|info|debug (default warn; debug shows the engine's plan) */
    const char *lv = getenv("BASISNET_LOG");
    int level = lv && *lv ? bn_log_level_parse(lv) : -1;
    bn_log_set_level(level >= 0 ? (bn_log_level)level : BN_LOG_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("basisnet %s\n", BASISNET_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "basisnet: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
