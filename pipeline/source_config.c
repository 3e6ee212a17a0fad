/* Spellings of the source enums: one table each, shared by the config parser and messages. */
#include "source_config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

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

bool source_crop_parse(const char *s, source_crop *out, char *err, size_t errlen)
{
    long v[4];
    const char *p = s;
    for (int i = 0; i < 4; i++) {
        char *end;
        if (!(*p >= '0' && *p <= '9') && *p != '-' && *p != '+')
            goto malformed;
        errno = 0;
        v[i] = strtol(p, &end, 10);
        if (errno || end == p)
            goto malformed;
        p = end;
        if (i < 3 && *p++ != ',')
            goto malformed;
    }
    if (*p != '\0')
        goto malformed;
    if (v[0] < 0 || v[1] < 0 || v[0] > SOURCE_CROP_MAX || v[1] > SOURCE_CROP_MAX) {
        snprintf(err, errlen, "crop '%s': x and y must be from 0 to %d", s, SOURCE_CROP_MAX);
        return false;
    }
    if (v[2] <= 0 || v[3] <= 0 || v[2] > SOURCE_CROP_MAX || v[3] > SOURCE_CROP_MAX) {
        snprintf(err, errlen, "crop '%s': width and height must be from 1 to %d", s,
                 SOURCE_CROP_MAX);
        return false;
    }
    *out = (source_crop){(int)v[0], (int)v[1], (int)v[2], (int)v[3]};
    return true;
malformed:
    snprintf(err, errlen, "crop '%s': expected X,Y,W,H (four integers in source pixels, e.g. "
                          "100,50,320,240)", s);
    return false;
}

bool source_crop_fits(const source_crop *c, int frame_w, int frame_h, char *err, size_t errlen)
{
    if (c->width <= 0)
        return true;
    long long r = (long long)c->x + c->width, b = (long long)c->y + c->height;
    if (r <= frame_w && b <= frame_h)
        return true;
    char why[96];
    if (r > frame_w)
        snprintf(why, sizeof why, "x + width = %lld > %d", r, frame_w);
    else
        snprintf(why, sizeof why, "y + height = %lld > %d", b, frame_h);
    snprintf(err, errlen, "source.crop %d,%d %dx%d lies outside the %dx%d frame (%s)", c->x, c->y,
             c->width, c->height, frame_w, frame_h, why);
    return false;
}
