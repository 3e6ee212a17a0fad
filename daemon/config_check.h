/* Checks of a parsed config against the machine, without starting anything: the source
 * (pipeline_check via pipeline/source_check.h), the socket's directory, MQTT's files, and
 * the model file. Used by --check-config and at start-up and reload, so that the same
 * problem gets the same message, at the key's FILE:LINE:COLUMN, in all three. */
#ifndef BN_CONFIG_CHECK_H
#define BN_CONFIG_CHECK_H

#include <stddef.h>

#include "bn_error.h"
#include "config.h"

enum {
    CONFIG_CHECK_NO_SOCKET = 1u << 0,   /* the socket is passed by systemd: no directory */
    CONFIG_CHECK_NO_WARN_LOG = 1u << 1, /* do not log the warnings (the caller prints them) */
};

/* Every problem found, one per line ("FILE:LINE:COL: key 'source.path': cannot read ...").
 * The model is not opened here (see config_model_error). The warnings of
 * config_check_warnings are logged (BN_LOG_WARN) unless flags has CONFIG_CHECK_NO_WARN_LOG. */
bn_status config_check_resources(const bn_config *cfg, unsigned flags, char *err, size_t errlen);

/* Files any local user could change: the config, the model, the MQTT password and key files
 * and the RTSP credentials file when they, or their directory (without the sticky bit), are
 * writable by every user. Writes one line per file ("FILE:LINE:COL: key 'model': warning:
 * ...") and returns how many; the daemon starts anyway. */
int config_check_warnings(const bn_config *cfg, char *buf, size_t len);

/* Prefixes a model-open message with the position of the `model` key. */
void config_model_error(const bn_config *cfg, const char *msg, char *err, size_t errlen);

#endif
