/* --check-config: what can be checked of a config without starting the daemon. */
#include <stdio.h>
#include <stdlib.h>

#include "app_internal.h"

bn_status app_check_config(const char *path, char *err, size_t errlen)
{
    bn_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    config_init(cfg);
    bn_status st = config_load(path, cfg, err, errlen);
    if (st == BN_OK) {
        bn_model *m = NULL;
        char msg[1024];
        st = bn_model_open(cfg->model, &m, msg, sizeof msg);
        if (st != BN_OK)
            snprintf(err, errlen, "%s: model %s: %s", path, cfg->model, msg);
        bn_model_close(m);
    }
    free(cfg);
    return st;
}
