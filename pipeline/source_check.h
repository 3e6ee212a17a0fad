/* What can be checked of a source_config without starting it (basisnetd --check-config and
 * start-up): the GStreamer elements it needs exist, a user pipeline parses (it is never
 * played), the test pattern exists, files exist and are readable. */
#ifndef BN_SOURCE_CHECK_H
#define BN_SOURCE_CHECK_H

#include <gst/gst.h>
#include <stddef.h>

#include "bn_error.h"
#include "source_config.h"

/* BN_OK, or the first problem found: *key names the config key at fault ("source.pipeline")
 * and err says what is wrong in the user's terms. A V4L2 device or RTSP server that is
 * absent is not a problem here: the daemon waits for it. */
bn_status source_check(const source_config *s, const char **key, char *err, size_t errlen);

/* The value of videotestsrc's pattern called name on element src (any videotestsrc), or -1
 * with err listing the known names. */
int source_test_pattern(GstElement *src, const char *name, char *err, size_t errlen);

#endif
