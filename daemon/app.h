/* basisnetd's runtime: config -> model/session/budget -> capture -> inference thread ->
 * result queue -> event loop (socket server, stats, change events, sd_notify, reload,
 * signals). basisnetd.c parses the command line and calls app_run. */
#ifndef BN_APP_H
#define BN_APP_H

#include <stdbool.h>
#include <stddef.h>

#include "basisnet.h"
#include "bn_error.h"

#define BASISNETD_VERSION BASISNET_VERSION

typedef struct {
    const char *config_path;
    const char *socket_override;    /* --socket: replaces publish.socket */
    bool print;                     /* --print: one human line per label on stdout */
    bool exit_on_eos;               /* --exit-on-eos: exit 0 when a non-looping file ends */
    int listen_fd;                  /* socket passed by systemd, or -1 */
} app_options;

/* Runs until SIGTERM/SIGINT (or the end of the clip with exit_on_eos). Returns the process
 * exit code: 0 on a clean stop, 1 when start-up failed (the reason is logged). */
int app_run(const app_options *opt);

/* --check-config: parses the config and opens its model. BN_OK or the error text. */
bn_status app_check_config(const char *path, char *err, size_t errlen);

#endif
