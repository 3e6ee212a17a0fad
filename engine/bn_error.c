/* Names for bn_status codes. */
#include "bn_error.h"

static const char *const names[BN_STATUS_COUNT] = {
    [BN_OK] = "ok",
    [BN_ERR_INVALID_ARG] = "invalid-argument",
    [BN_ERR_NOMEM] = "out-of-memory",
    [BN_ERR_IO] = "io-error",
    [BN_ERR_FORMAT] = "bad-format",
    [BN_ERR_CONFIG] = "bad-config",
    [BN_ERR_UNSUPPORTED] = "unsupported",
    [BN_ERR_PERMISSION] = "permission-denied",
    [BN_ERR_INTERNAL] = "internal-error",
    [BN_ERR_NO_DEVICE] = "no-device",
    [BN_ERR_BUSY] = "busy",
    [BN_ERR_NO_DATA] = "no-data",
    [BN_ERR_TIMEOUT] = "timeout",
    [BN_ERR_EOS] = "end-of-stream",
    [BN_ERR_SOURCE_LOST] = "source-lost",
    [BN_ERR_AGAIN] = "again",
    [BN_ERR_CLOSED] = "closed",
};

const char *bn_status_str(bn_status st)
{
    if ((unsigned)st >= BN_STATUS_COUNT || !names[st])
        return "unknown";
    return names[st];
}

int bn_status_recoverable(bn_status st)
{
    return st >= BN_ERR_NO_DEVICE && st < BN_STATUS_COUNT;
}
