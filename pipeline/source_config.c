/* Spellings of the source enums: one table each, shared by the config parser and messages. */
#include "source_config.h"

#include <stddef.h>

const char *const source_kind_names[] = {"v4l2", "file", "test", "pipeline", "rtsp", NULL};
const char *const rtsp_transport_names[] = {"auto", "tcp", "udp", NULL};
const char *const source_format_names[] = {"auto", "raw", "mjpeg", NULL};
const char *const aspect_mode_names[] = {"crop", "letterbox", "stretch", NULL};

const char *source_kind_name(source_kind k)
{
    for (int i = 0; source_kind_names[i]; i++)
        if ((int)k == i)
            return source_kind_names[i];
    return "unknown";
}
