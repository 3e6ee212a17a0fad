/* --check-config: what can be checked of a config without starting the daemon, with the
 * messages start-up gives for the same problems (config_check.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        /* Warnings first (they do not change the exit status), then every problem at once:
         * the resources, then the model. */
        char warn[4 * BN_PATH_MAX + 1024];
        if (config_check_warnings(cfg, warn, sizeof warn) > 0)
            fprintf(stderr, "%s\n", warn);
        st = config_check_resources(cfg, CONFIG_CHECK_NO_WARN_LOG, err, errlen);
        bn_model *m = NULL;
        char msg[1024];
        bn_status mst = bn_model_open(cfg->model, &m, msg, sizeof msg);
        if (mst != BN_OK) {
            size_t used = strlen(err);
            if (used + 2 < errlen) {
                if (used)
                    err[used++] = '\n';
                config_model_error(cfg, msg, err + used, errlen - used);
            }
            st = st != BN_OK ? st : mst;
        }
        bn_model_close(m);
    }
    free(cfg);
    return st;
}
