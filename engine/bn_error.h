/* Project-wide status codes. Recoverable states (no device, no data, timeout, ...) have
 * their own codes so that callers can switch on them instead of parsing messages. */
#ifndef BN_ERROR_H
#define BN_ERROR_H

typedef enum {
    BN_OK = 0,
    /* programmer or user errors: not recoverable by retrying */
    BN_ERR_INVALID_ARG,   /* bad argument to an API call */
    BN_ERR_NOMEM,         /* allocation failed */
    BN_ERR_IO,            /* read/write/open of a file failed */
    BN_ERR_FORMAT,        /* malformed file or message (model, image, idx, JSON) */
    BN_ERR_CONFIG,        /* config file rejected */
    BN_ERR_UNSUPPORTED,   /* valid but not supported (op, dtype, pixel format) */
    BN_ERR_PERMISSION,    /* EACCES/EPERM on a device or socket; peer not authorized */
    BN_ERR_INTERNAL,      /* broken invariant inside the project */
    /* recoverable states: retry later */
    BN_ERR_NO_DEVICE,     /* device node missing or unplugged */
    BN_ERR_BUSY,          /* device or resource in use */
    BN_ERR_NO_DATA,       /* nothing available yet */
    BN_ERR_TIMEOUT,       /* waited the allowed time */
    BN_ERR_EOS,           /* end of stream */
    BN_ERR_SOURCE_LOST,   /* source failed while streaming; reconnecting */
    BN_ERR_AGAIN,         /* try the same call again */
    BN_ERR_CLOSED,        /* peer or object closed */
    BN_STATUS_COUNT
} bn_status;

/* Short stable name of a status, e.g. "no-device". Never NULL. */
const char *bn_status_str(bn_status st);

/* True for the codes a caller should retry after a delay. */
int bn_status_recoverable(bn_status st);

#endif
