/* Subcommands of the `basisnet` offline toolbox. Each returns the process exit code:
 * 0 success, 1 failure of the work itself, 2 bad usage. */
#ifndef BN_TOOL_COMMANDS_H
#define BN_TOOL_COMMANDS_H

int cmd_info(int argc, char **argv);      /* cmd_model.c */
int cmd_classify(int argc, char **argv);  /* cmd_model.c */
int cmd_eval(int argc, char **argv);      /* cmd_model.c */
int cmd_bench(int argc, char **argv);     /* cmd_model.c */
int cmd_probe(int argc, char **argv);     /* cmd_probe.c */
int cmd_grab(int argc, char **argv);      /* cmd_grab.c */

#endif
