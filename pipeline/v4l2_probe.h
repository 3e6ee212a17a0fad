/* V4L2 device probing through libv4l2: capabilities, formats, frame sizes and intervals,
 * controls; the choice of a capture mode for a requested size and rate; controls set by
 * name with range checks. Used by capture (before building a v4l2src pipeline) and by
 * `basisnet probe`. Every failure comes back as a bn_status plus a message naming the device. */
#ifndef BN_V4L2_PROBE_H
#define BN_V4L2_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"
#include "source_config.h"

/* One capture mode: a pixel format at one frame size and one frame rate. */
typedef struct {
    uint32_t fourcc;
    int width, height;
    int fps_num, fps_den;   /* frames per second as a fraction (inverse of the interval) */
    bool compressed;        /* V4L2_FMT_FLAG_COMPRESSED (MJPEG, H.264 ...) */
    bool emulated;          /* offered only through libv4l2's conversion (GStreamer will not see it) */
} v4l2_mode;

typedef struct {
    uint32_t fourcc;
    uint32_t flags;         /* V4L2_FMT_FLAG_* */
    char description[32];
} v4l2_format_info;

typedef struct {
    uint32_t id;
    uint32_t type;          /* V4L2_CTRL_TYPE_* */
    char name[32];          /* as the driver reports it */
    char key[32];           /* normalized: lower-case, runs of other characters as one '_' */
    long long min, max, step, def, value;
    uint32_t flags;
    bool value_valid;
} v4l2_control_info;

typedef struct {
    char device[256];
    char driver[16], card[32], bus_info[32];
    uint32_t version;
    uint32_t caps;          /* device capabilities (device_caps when the driver sets it) */
    v4l2_format_info *formats;
    size_t n_formats;
    v4l2_mode *modes;       /* every format x size x rate, stepwise ranges sampled */
    size_t n_modes;
    v4l2_control_info *controls;
    size_t n_controls;
} v4l2_probe_info;

/* Opens DEVICE with v4l2_open and checks that it is a streaming video capture device.
 * Errors: BN_ERR_NO_DEVICE (missing node), BN_ERR_PERMISSION (names the group owning the node),
 * BN_ERR_BUSY, BN_ERR_UNSUPPORTED (not a capture device), BN_ERR_IO. *fd_out = -1 on error. */
bn_status v4l2_probe_open(const char *device, int *fd_out, char *err, size_t errlen);
void v4l2_probe_close(int fd);

/* Everything `basisnet probe` prints. info is zeroed first; free with v4l2_probe_free. */
bn_status v4l2_probe_device(const char *device, v4l2_probe_info *info, char *err, size_t errlen);
/* Same on an already open fd (from v4l2_probe_open). */
bn_status v4l2_probe_fd(int fd, const char *device, v4l2_probe_info *info, char *err, size_t errlen);
void v4l2_probe_free(v4l2_probe_info *info);

/* Best mode for width x height at fps: a pure function over the table, so it is unit-tested.
 * Order of preference: formats GStreamer's v4l2src can deliver and the config allows
 * (format raw/mjpeg/auto), then reaching the rate, then a size at least as large as asked
 * (downscaling keeps detail), raw before compressed (no decode cost), the size closest to
 * the request, the lowest rate that still reaches fps. Returns the index, or -1 when no
 * usable mode exists. */
int v4l2_choose_mode(const v4l2_mode *modes, size_t n, int width, int height, int fps,
                     source_format pref);

/* GStreamer caps for a mode: "video/x-raw,format=YUY2,width=640,height=480,framerate=30/1"
 * or "image/jpeg,...". Returns false for fourccs the project does not map. */
bool v4l2_mode_caps(const v4l2_mode *m, char *buf, size_t len);
/* GStreamer raw format name for a V4L2 fourcc ("YUY2"), "JPEG" for MJPEG/JPEG, NULL if unmapped. */
const char *v4l2_fourcc_gst(uint32_t fourcc);
/* "YUYV" */
void v4l2_fourcc_str(uint32_t fourcc, char out[5]);

/* Writes "YUYV 640x480@30, MJPG 1280x720@30, ..." (one entry per format x size at its
 * highest rate) into buf, for "no format fits" messages. */
void v4l2_describe_modes(const v4l2_mode *modes, size_t n, char *buf, size_t len);

/* "White Balance, Automatic" -> "white_balance_automatic". */
void v4l2_control_key(const char *name, char *out, size_t len);

/* Sets each control by normalized name after checking it exists, is writable and lies in
 * [min, max] (and on the step grid). Stops at the first problem: BN_ERR_CONFIG with a message
 * naming the control, the value, the allowed range and the device (or the list of controls
 * the device has, when the name is unknown). */
bn_status v4l2_apply_controls(int fd, const char *device, const source_control *ctrls, int n,
                              char *err, size_t errlen);

/* Probes DEVICE and chooses the mode for cfg (size, fps, format); applies cfg's controls.
 * BN_ERR_UNSUPPORTED with the offered modes listed when nothing fits. */
bn_status v4l2_prepare_source(const source_config *cfg, v4l2_mode *chosen, char *err,
                              size_t errlen);

#endif
