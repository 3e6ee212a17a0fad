/* basisnetd: command line, logging and systemd socket activation; the runtime itself is in
 * app.c. Runs in the foreground (systemd style). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "app.h"
#include "basisnet.h"
#include "bn_log.h"

static const char usage[] =
    "Usage: basisnetd --config FILE [--print] [--exit-on-eos] [--socket PATH]\n"
    "       basisnetd --check-config FILE\n"
    "       basisnetd --version | --help\n"
    "\n"
    "Captures camera frames through GStreamer, classifies every frame with a two-stage\n"
    "BasisNet on the CPU under a latency budget, and publishes labels as JSON lines on a\n"
    "Unix socket (protocol v1, docs/protocol.md). Runs in the foreground; logs go to\n"
    "stderr (the journal under systemd).\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE        run with this YAML config (keys: docs/config.md)\n"
    "      --check-config FILE  parse FILE and open its model; print \"FILE: OK\" and exit 0,\n"
    "                           or print every problem as FILE:LINE:COLUMN: ... and exit 1\n"
    "  -p, --print              also print one line per classified frame on stdout:\n"
    "                           time, label, score, stage, latency\n"
    "      --exit-on-eos        exit 0 when a non-looping file source ends (after\n"
    "                           publishing every frame)\n"
    "  -s, --socket PATH        listen on PATH instead of publish.socket (one instance per\n"
    "                           camera: basisnetd@.service)\n"
    "  -V, --version            print the version and exit\n"
    "  -h, --help               print this help and exit\n"
    "\n"
    "Signals:\n"
    "  SIGTERM, SIGINT  stop: finish the current frame, flush subscribers, remove the socket\n"
    "  SIGHUP           reload the config and the model; a config or model that does not\n"
    "                   load is rejected and the running one stays (see 'stats')\n"
    "\n"
    "systemd: Type=notify (READY=1 after the first classified frame, STATUS= with fps,\n"
    "latency and exit share, WATCHDOG=1 while inference makes progress); a listening\n"
    "socket passed by socket activation is used instead of binding publish.socket.\n"
    "\n"
    "Exit status: 0 clean stop or end of stream with --exit-on-eos; 1 start-up failed\n"
    "(config, model, socket or source; the reason is logged); 2 bad command line.\n"
    "\n"
    "Clients: basisnetctl(1) subscribe | stats | set | reload | ping.\n";

int main(int argc, char **argv)
{
    bn_log_set_callback(bn_log_stderr, NULL);
    enum { OPT_CHECK = 256, OPT_EOS };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, OPT_CHECK},
        {"print", no_argument, NULL, 'p'},
        {"exit-on-eos", no_argument, NULL, OPT_EOS},
        {"socket", required_argument, NULL, 's'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    app_options opt = {.listen_fd = -1};
    const char *check = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:ps:Vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': opt.config_path = optarg; break;
        case OPT_CHECK: check = optarg; break;
        case 'p': opt.print = true; break;
        case OPT_EOS: opt.exit_on_eos = true; break;
        case 's': opt.socket_override = optarg; break;
        case 'V': printf("basisnetd %s (protocol v1)\n", BASISNETD_VERSION); return 0;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs("Try 'basisnetd --help'.\n", stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "basisnetd: unexpected argument '%s'\nTry 'basisnetd --help'.\n",
                argv[optind]);
        return 2;
    }
    if (check) {
        char err[8192];
        if (app_check_config(check, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        printf("%s: OK\n", check);
        return 0;
    }
    if (!opt.config_path) {
        fputs("basisnetd: --config FILE is required\nTry 'basisnetd --help'.\n", stderr);
        return 2;
    }
    if (opt.socket_override && strlen(opt.socket_override) == 0) {
        fputs("basisnetd: --socket needs a path\n", stderr);
        return 2;
    }
    /* systemd socket activation: one listening AF_UNIX stream socket. */
    int n = sd_listen_fds(1);
    if (n == 1 && sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) > 0) {
        opt.listen_fd = SD_LISTEN_FDS_START;
    } else if (n > 0) {
        fprintf(stderr, "basisnetd: systemd passed %d sockets; expected one listening Unix "
                        "stream socket\n", n);
        return 1;
    }
    if (opt.print)
        setvbuf(stdout, NULL, _IOLBF, 0);
    /* A closed stdout (--print | head) must not kill the daemon mid-flight; socket writes
     * use MSG_NOSIGNAL already. */
    signal(SIGPIPE, SIG_IGN);
    return app_run(&opt);
}
