/* Subcommands of the `basisnet` offline toolbox. Each returns the process exit code:
 * 0 success, 1 failure of the work itself, 2 bad usage. */
#ifndef BN_TOOL_COMMANDS_H
#define BN_TOOL_COMMANDS_H

#include <stdint.h>

int cmd_info(int argc, char **argv);      /* cmd_model.c */
int cmd_classify(int argc, char **argv);  /* cmd_model.c */
int cmd_eval(int argc, char **argv);      /* cmd_model.c */
int cmd_bench(int argc, char **argv);     /* cmd_model.c */
int cmd_probe(int argc, char **argv);     /* cmd_probe.c */
int cmd_grab(int argc, char **argv);      /* cmd_grab.c */

/* tool_util.c: shared helpers. */
/* A whole decimal integer from lo to hi (s may be NULL): 0, or -1 and *out untouched. */
int tool_parse_long(const char *s, long lo, long hi, long *out);
/* The same, printing "PROG: OPT expects an integer from LO to HI, got 'S'" on failure. */
int tool_parse_long_opt(const char *prog, const char *opt, const char *s, long lo, long hi,
                        long *out);
uint64_t tool_mono_ns(void);             /* CLOCK_MONOTONIC in ns */

#endif
