/* libFuzzer target for the YAML config loader: any bytes must give either BN_OK with
 * NUL-terminated strings or BN_ERR_CONFIG with a non-empty message; never a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void check_terminated(const char *s, size_t size)
{
    if (!memchr(s, '\0', size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bn_config cfg; /* ~40 KiB: keep it off the fuzzer's stack */
    char err[2048];
    bn_status st = config_load_buffer("/etc/basisnetd/fuzz.yaml", (const char *)data, size, &cfg,
                                      err, sizeof err);
    check_terminated(err, sizeof err);
    if (st == BN_OK) {
        if (err[0] != '\0')
            abort();
        check_terminated(cfg.camera, sizeof cfg.camera);
        check_terminated(cfg.model, sizeof cfg.model);
        check_terminated(cfg.source.device, sizeof cfg.source.device);
        check_terminated(cfg.source.path, sizeof cfg.source.path);
        check_terminated(cfg.source.pipeline, sizeof cfg.source.pipeline);
        check_terminated(cfg.publish.socket, sizeof cfg.publish.socket);
        check_terminated(cfg.mqtt.topic_prefix, sizeof cfg.mqtt.topic_prefix);
        check_terminated(cfg.mqtt.client_id, sizeof cfg.mqtt.client_id);
        if (cfg.model[0] == '\0' || cfg.source.n_controls < 0 ||
            cfg.source.n_controls > BN_MAX_CONTROLS || cfg.budget.min > cfg.budget.max ||
            (cfg.mqtt.enabled && cfg.mqtt.host[0] == '\0'))
            abort();
    } else if (st != BN_ERR_CONFIG || err[0] == '\0') {
        abort();
    }
    return 0;
}
