/* Subcommands of the `basisnet` offline toolbox. Each returns the process exit code:
 * 0 success, 1 failure of the work itself, 2 bad usage. */
#ifndef BN_TOOL_COMMANDS_H
#define BN_TOOL_COMMANDS_H

#include <stdint.h>

#include "basisnet.h"

int cmd_info(int argc, char **argv);      /* cmd_info.c */
int cmd_classify(int argc, char **argv);  /* cmd_classify.c */
int cmd_eval(int argc, char **argv);      /* cmd_eval.c */
int cmd_bench(int argc, char **argv);     /* cmd_bench.c */
int cmd_probe(int argc, char **argv);     /* cmd_probe.c */
int cmd_grab(int argc, char **argv);      /* cmd_grab.c */

/* tool_util.c: shared helpers. */
/* A whole decimal integer from lo to hi (s may be NULL): 0, or -1 and *out untouched. */
int tool_parse_long(const char *s, long lo, long hi, long *out);
/* The same, printing "PROG: OPT expects an integer from LO to HI, got 'S'" on failure. */
int tool_parse_long_opt(const char *prog, const char *opt, const char *s, long lo, long hi,
                        long *out);
/* A whole decimal number from lo to hi: 0, or -1 and *out untouched. */
int tool_parse_double(const char *s, double lo, double hi, double *out);
int tool_is_help(const char *arg);       /* --help or -h */
uint64_t tool_mono_ns(void);             /* CLOCK_MONOTONIC in ns */
double tool_ms(uint64_t ns);             /* ns -> ms */

/* The model at path, or NULL after printing "basisnet CMD: <reason naming the file>". */
bn_model *tool_open_model(const char *cmd, const char *path);
/* A session with `threads` engine threads, or NULL after printing why. */
/* synth_reuse: bn_session_params.synth_reuse (0: off) */
bn_session *tool_open_session(const char *cmd, const bn_model *m, int threads, float synth_reuse);
/* Default early-exit threshold: the one the exporter measured accuracy at, else 0.9. */
double tool_default_threshold(const bn_model_info *in);
/* The name of a layer op (bn_op of model.h) as info and bench print it. */
const char *tool_op_name(int op);

#endif
