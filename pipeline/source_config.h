/* What the user asked of a video source: the plain-value struct the capture module opens
 * and the daemon's config parser fills (daemon/config.c). Owned by pipeline/ so that capture
 * depends on nothing above it; the daemon's bn_config embeds it. */
#ifndef BN_SOURCE_CONFIG_H
#define BN_SOURCE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define BN_PATH_MAX 4096
#define BN_NAME_MAX 64
#define BN_PIPELINE_MAX 2048
#define BN_MAX_CONTROLS 32

typedef enum { SOURCE_V4L2 = 0, SOURCE_FILE, SOURCE_TEST, SOURCE_PIPELINE, SOURCE_RTSP } source_kind;
/* rtsp: lower transports rtspsrc may use (auto: UDP first, then TCP interleaved). */
typedef enum { RTSP_TRANSPORT_AUTO = 0, RTSP_TRANSPORT_TCP, RTSP_TRANSPORT_UDP } rtsp_transport;
typedef enum { ASPECT_CROP = 0, ASPECT_LETTERBOX, ASPECT_STRETCH } aspect_mode;
typedef enum { PIXFMT_AUTO = 0, PIXFMT_RAW, PIXFMT_MJPEG } source_format;

/* NULL-terminated spellings, indexed by the enums above (config keys, messages). */
extern const char *const source_kind_names[];
extern const char *const source_format_names[];
extern const char *const aspect_mode_names[];
extern const char *const rtsp_transport_names[];

typedef struct {
    char name[BN_NAME_MAX];     /* V4L2 control name as the driver reports it, lower-cased,
                                   spaces as '_' (e.g. "brightness", "white_balance_automatic") */
    long long value;
} source_control;

/* source.crop: a region of the source frame in source pixels, cut out before scaling.
 * width == 0: no crop (the whole frame). */
typedef struct {
    int x, y, width, height;
} source_crop;

typedef struct {
    source_kind kind;
    char device[BN_PATH_MAX];       /* v4l2: /dev/videoN or /dev/v4l/by-id/... */
    char path[BN_PATH_MAX];         /* file: path of a file GStreamer can decode */
    bool loop;                      /* file: start again at EOS */
    char pattern[BN_NAME_MAX];      /* test: videotestsrc pattern name (smpte, ball, ...) */
    char pipeline[BN_PIPELINE_MAX]; /* pipeline: gst-launch description without a sink */
    int width, height, fps;         /* requested capture size and rate */
    source_format format;           /* v4l2: auto, raw or mjpeg */
    aspect_mode aspect;             /* how to fit the capture into the model's input */
    source_control controls[BN_MAX_CONTROLS];
    int n_controls;
    int retry_initial_ms, retry_max_ms; /* reconnect back-off */
    char url[BN_PATH_MAX];          /* rtsp: rtsp://[user:password@]host[:port]/path */
    rtsp_transport transport;       /* rtsp: auto, tcp or udp */
    int latency_ms;                 /* rtsp: jitter buffer (rtspsrc latency) */
    char credentials_file[BN_PATH_MAX]; /* rtsp: file whose first line is user:password;
                                       read at each (re)connect, never logged */
    int timeout_ms;                 /* rtsp: no frame for this long while running = lost */
    source_crop crop;               /* region of interest, applied before scaling */
} source_config;

/* Largest crop offset or side accepted (the largest source side). */
#define SOURCE_CROP_MAX 7680

/* "X,Y,W,H" (basisnet grab --crop) into *out. false with a message in err when malformed,
 * a side is zero or negative, or a value is out of range. */
bool source_crop_parse(const char *s, source_crop *out, char *err, size_t errlen);
/* Does the crop lie inside a frame_w x frame_h frame? false with the message
 *   source.crop 600,400 100x100 lies outside the 640x360 frame (x + width = 700 > 640)
 * in err when it does not. */
bool source_crop_fits(const source_crop *c, int frame_w, int frame_h, char *err, size_t errlen);

/* "v4l2", "file", "test", "pipeline", "rtsp"; "unknown" out of range. */
const char *source_kind_name(source_kind k);

#endif
