/* `basisnet grab SOURCE --out DIR`: saves frames of a camera, a video file or a test pattern
 * as PNG files in DIR/LABEL/, the image-folder layout tools/train reads (docs/training.md).
 * Frames come through the daemon's own capture code, so they are cropped and scaled exactly
 * as basisnetd would see them. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "commands.h"

#define PROG "basisnet grab"
#define MAX_DIRS 64          /* path components mkdir -p may create */
#define FIRST_FRAME_WARN_S 10

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: basisnet grab SOURCE --out DIR [--label NAME] [--count N] [--every SECONDS]\n"
            "                     [--size WxH] [--gray] [--crop X,Y,W,H]\n"
            "                     [--aspect crop|letterbox|stretch]\n\n"
            "Saves frames of SOURCE as PNG files in DIR/NAME/, one folder per label: the layout\n"
            "tools/train/train.py reads (see docs/training.md, \"Collect frames\"). Frames pass\n"
            "through basisnetd's capture pipeline, centre-cropped to the aspect ratio of WxH\n"
            "(source.aspect: crop) and scaled to WxH, as training would crop them too; with\n"
            "--crop, the region is cut out first and padded to WxH (letterbox) unless --aspect\n"
            "says otherwise, exactly as basisnetd does with source.crop.\n\n"
            "SOURCE\n"
            "  /dev/videoN, /dev/v4l/by-id/...   a V4L2 camera, captured at 640x480 (or WxH if\n"
            "                                    larger) at 30 fps\n"
            "  FILE                              a video file GStreamer can decode; read as fast\n"
            "                                    as it decodes, ends at the end of the file\n"
            "  test:PATTERN                      a GStreamer videotestsrc pattern (test:smpte,\n"
            "                                    test:ball, ...), 640x480 at 30 fps\n\n"
            "Options\n"
            "  --out DIR        output folder (required); DIR/NAME is created if missing\n"
            "  --label NAME     label folder under DIR (default: unlabelled); one path component\n"
            "  --count N        frames to save (default 100, 1..1000000)\n"
            "  --every SECONDS  minimum interval between saved frames (default 0.5; 0 saves every\n"
            "                   frame delivered), measured on frame timestamps: stream time for\n"
            "                   a file (the picks do not depend on how fast it decodes), capture\n"
            "                   time for a camera or test pattern\n"
            "  --size WxH       saved image size (default 224x224, each side 1..4096)\n"
            "  --gray           save 8-bit gray PNGs (default: 8-bit RGB)\n"
            "  --crop X,Y,W,H   region of interest in source pixels, cut out before scaling:\n"
            "                   the daemon's source.crop {x: X, y: Y, width: W, height: H}, so\n"
            "                   training sees what inference sees. A crop outside the frame\n"
            "                   fails once the frame size is known (exit status 1)\n"
            "  --aspect MODE    how the frame (or crop) is fitted to WxH: crop (centre crop),\n"
            "                   letterbox (pad) or stretch; the daemon's source.aspect. Default:\n"
            "                   crop, or letterbox with --crop (the whole region is kept), as\n"
            "                   in the daemon\n\n"
            "Files are named PREFIX-NNNNNN.png, PREFIX being the UTC start time (e.g.\n"
            "20261126T134501) and NNNNNN counting from 000001; an existing file is never\n"
            "overwritten (the number moves on instead), so runs can be repeated into one folder.\n"
            "Progress goes to stderr, one summary line to stdout. The grab ends after N frames,\n"
            "at the end of a file, or on Ctrl-C (SIGINT) or SIGTERM after the frame being saved;\n"
            "the frames saved so far are kept. A source lost during the grab (camera unplugged,\n"
            "stream error) ends it with status 1. A run that saves nothing leaves no empty\n"
            "folder behind (the training loader refuses empty class folders).\n\n"
            "A file is decoded as fast as the grab takes its frames, none skipped: --every 0\n"
            "saves every frame, and two runs over one file save the same frames.\n\n"
            "Exit status: 0 success (also when stopped by Ctrl-C or the end of a file), 1 source,\n"
            "decode or write failure (a file with no frame at all included), 2 bad usage.\n\n"
            "Examples\n"
            "  basisnet grab /dev/video0 --out frames/train --label parcel --count 300 --every 1\n"
            "  basisnet grab clip.mkv --out frames/train --label empty --every 0.2 --gray\n");
}

/* ---- arguments ------------------------------------------------------------------------------ */

static int parse_seconds(const char *s, double *out)
{
    char *end;
    double v = s ? strtod(s, &end) : 0;
    if (!s || *end || end == s || !isfinite(v) || v < 0 || v > 86400) {
        fprintf(stderr, PROG ": --every expects seconds from 0 to 86400 (e.g. 0.5), got '%s'\n",
                s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_size(const char *s, int *w, int *h)
{
    char *x = s ? strchr(s, 'x') : NULL;
    char *end1, *end2;
    long vw = x ? strtol(s, &end1, 10) : 0, vh = x ? strtol(x + 1, &end2, 10) : 0;
    if (!x || end1 != x || x == s || *end2 || end2 == x + 1 || vw < 1 || vw > 4096 || vh < 1 ||
        vh > 4096) {
        fprintf(stderr, PROG ": --size expects WxH with each side from 1 to 4096 (e.g. 224x224), "
                        "got '%s'\n", s ? s : "");
        return -1;
    }
    *w = (int)vw;
    *h = (int)vh;
    return 0;
}

/* SOURCE -> source_config. A character device or anything under /dev/ is a camera (so a
 * missing /dev/videoN is reported as a missing device, not as a missing file). */
static int parse_source(const char *arg, source_config *s, int w, int h)
{
    memset(s, 0, sizeof *s);
    s->aspect = ASPECT_CROP;        /* what training does: centre crop */
    s->fps = 30;
    s->width = w > 640 ? w : 640;   /* capture at least the saved size */
    s->height = h > 480 ? h : 480;
    struct stat st;
    if (!strncmp(arg, "test:", 5)) {
        s->kind = SOURCE_TEST;
        if (!arg[5] || strlen(arg + 5) >= sizeof s->pattern) {
            fprintf(stderr, PROG ": test source needs a videotestsrc pattern, e.g. test:smpte\n");
            return -1;
        }
        snprintf(s->pattern, sizeof s->pattern, "%s", arg + 5);
    } else if (!strncmp(arg, "/dev/", 5) || (stat(arg, &st) == 0 && S_ISCHR(st.st_mode))) {
        s->kind = SOURCE_V4L2;
        if (strlen(arg) >= sizeof s->device) {
            fprintf(stderr, PROG ": device path too long\n");
            return -1;
        }
        snprintf(s->device, sizeof s->device, "%s", arg);
    } else {
        s->kind = SOURCE_FILE;
        s->loop = false;
        if (strlen(arg) >= sizeof s->path) {
            fprintf(stderr, PROG ": file path too long\n");
            return -1;
        }
        snprintf(s->path, sizeof s->path, "%s", arg);
    }
    return 0;
}

static void describe_source(const source_config *s, char *buf, size_t len)
{
    switch (s->kind) {
    case SOURCE_V4L2: snprintf(buf, len, "device '%s'", s->device); break;
    case SOURCE_FILE: snprintf(buf, len, "video file '%s'", s->path); break;
    default: snprintf(buf, len, "test pattern '%s'", s->pattern); break;
    }
}

/* ---- output folder ------------------------------------------------------------------------- */

typedef struct {
    char *made[MAX_DIRS];   /* folders this run created, outermost first */
    int n;
} made_dirs;

/* mkdir -p, remembering what it created so that a run that saves nothing can remove it
 * again: an empty class folder would make the training loader refuse the whole tree. */
static int make_dirs(const char *path, made_dirs *md, char *err, size_t errlen)
{
    char buf[BN_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "output folder path too long");
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0755) == 0) {
            if (md->n < MAX_DIRS)
                md->made[md->n++] = strdup(buf);
        } else {
            struct stat st;
            int e = errno;
            if (e != EEXIST) {
                snprintf(err, errlen, "cannot create output folder '%s': %s", buf, strerror(e));
                return -1;
            }
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "cannot create output folder '%s': '%s' exists and is not "
                                      "a folder", path, buf);
                return -1;
            }
        }
        *p = saved;
        if (!saved)
            break;
        while (p[1] == '/')   /* "a//b" */
            p++;
    }
    /* Root passes W_OK everywhere but a read-only file system still fails here. */
    if (access(path, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "output folder '%s' is not writable: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void remove_made_dirs(made_dirs *md, bool remove)
{
    for (int i = md->n - 1; i >= 0; i--) {
        if (remove)
            rmdir(md->made[i]);   /* fails harmlessly if something else put a file there */
        free(md->made[i]);
    }
    md->n = 0;
}

/* ---- PNG ------------------------------------------------------------------------------------ */

/* Writes f as DIR/PREFIX-NNNNNN.png with the first free number from *next on. O_EXCL rather
 * than png_image_write_to_file (which truncates): two runs started in the same second, or
 * two grabs into one folder, must never overwrite each other's frames. */
static int write_png(const char *dir, const char *prefix, unsigned *next, const capture_frame *f,
                     char *name, size_t namelen, char *err, size_t errlen)
{
    char path[BN_PATH_MAX + 64];
    int fd;
    for (;;) {
        snprintf(name, namelen, "%s-%06u.png", prefix, *next);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST)
            break;
        (*next)++;
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)f->width;
    img.height = (png_uint_32)f->height;
    img.format = f->channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    /* Fast compression: the one-slot capture hand-off drops frames while we write, and
     * these files are training input, not an archive. */
    img.flags = PNG_IMAGE_FLAG_FAST;
    /* 8-bit samples: the row stride in components equals GStreamer's stride in bytes. */
    int ok = png_image_write_to_stdio(&img, fp, 0, f->data, (png_int_32)f->stride, NULL);
    char pngmsg[sizeof img.message];
    snprintf(pngmsg, sizeof pngmsg, "%s", img.message);
    png_image_free(&img);
    int e = ferror(fp) ? errno : 0;
    if (fclose(fp) != 0 && !e)
        e = errno;
    if (!ok || e) {
        snprintf(err, errlen, "cannot write '%s': %s", path,
                 e ? strerror(e) : pngmsg[0] ? pngmsg : "libpng error");
        unlink(path);   /* a truncated PNG would stop the training loader */
        return -1;
    }
    (*next)++;
    return 0;
}

/* ---- the grab loop ---------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef struct {
    bool lost;
    char message[1200];
} grab_state;

/* Runs on our main context (iterated by the grab loop): a loss ends the grab, since a retry
 * of a file would start it again from the beginning and duplicate frames. The capture is
 * opened with no_retry, so this message is the only report of the loss. */
static void on_capture_state(capture_state st, const char *msg, void *user)
{
    grab_state *gs = user;
    if (st == CAPTURE_LOST && !gs->lost) {
        gs->lost = true;
        snprintf(gs->message, sizeof gs->message, "%s", msg ? msg : "source lost");
    }
}

int cmd_grab(int argc, char **argv)
{
    const char *src_arg = NULL, *out = NULL, *label = "unlabelled";
    long count = 100;
    double every = 0.5;
    int w = 224, h = 224;
    bool gray = false;
    source_crop crop = {0}; /* width 0: no --crop */
    int aspect = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out")) {
            if (!v || !v[0]) {
                fprintf(stderr, PROG ": --out expects a folder\n");
                return 2;
            }
            out = v, i++;
        } else if (!strcmp(a, "--label")) {
            if (!v || !v[0] || strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, "..") ||
                strlen(v) > 255) {
                fprintf(stderr, PROG ": --label expects a folder name without '/' (it becomes "
                                "the label the model reports), got '%s'\n", v ? v : "");
                return 2;
            }
            label = v, i++;
        } else if (!strcmp(a, "--count")) {
            if (tool_parse_long_opt(PROG, a, v, 1, 1000000, &count))
                return 2;
            i++;
        } else if (!strcmp(a, "--every")) {
            if (parse_seconds(v, &every))
                return 2;
            i++;
        } else if (!strcmp(a, "--size")) {
            if (parse_size(v, &w, &h))
                return 2;
            i++;
        } else if (!strcmp(a, "--gray")) {
            gray = true;
        } else if (!strcmp(a, "--crop")) {
            char why[256];
            if (!v || !source_crop_parse(v, &crop, why, sizeof why)) {
                fprintf(stderr, PROG ": --crop: %s\n", v ? why : "expects X,Y,W,H");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--aspect")) {
            aspect = -1;
            for (int k = 0; v && aspect_mode_names[k]; k++)
                if (!strcmp(v, aspect_mode_names[k]))
                    aspect = k;
            if (aspect < 0) {
                fprintf(stderr, PROG ": --aspect expects crop, letterbox or stretch, got '%s'\n",
                        v ? v : "");
                return 2;
            }
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, PROG ": unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (src_arg) {
            fprintf(stderr, PROG ": one source at a time ('%s' and '%s')\n", src_arg, a);
            return 2;
        } else {
            src_arg = a;
        }
    }
    if (!src_arg || !out) {
        fprintf(stderr, PROG ": %s\n\n", !src_arg ? "missing SOURCE" : "missing --out DIR");
        usage(stderr);
        return 2;
    }
    source_config src;
    if (parse_source(src_arg, &src, w, h))
        return 2;
    if (crop.width > 0) {
        char why[256];
        src.crop = crop;
        src.aspect = ASPECT_LETTERBOX;  /* the daemon's default with source.crop */
        if (src.kind == SOURCE_TEST && !source_crop_fits(&src.crop, src.width, src.height, why,
                                                         sizeof why)) {
            fprintf(stderr, PROG ": --crop: %s (test sources are %dx%d)\n", why, src.width,
                    src.height);
            return 2;
        }
    }
    if (aspect >= 0)
        src.aspect = (aspect_mode)aspect;
    char what[BN_PATH_MAX + 32];
    describe_source(&src, what, sizeof what);

    char dir[BN_PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/%s", out, label) >= (int)sizeof dir) {
        fprintf(stderr, PROG ": output folder path too long\n");
        return 2;
    }
    /* The folder first: a typo in --out should not cost a camera start-up. */
    made_dirs md = {.n = 0};
    char err[3 * BN_PATH_MAX];   /* room for two full paths in one message */
    if (make_dirs(dir, &md, err, sizeof err)) {
        fprintf(stderr, PROG ": %s\n", err);
        remove_made_dirs(&md, true);
        return 1;
    }

    /* The prefix is taken once: every frame of a run shares it, and a later run sorts after. */
    char prefix[32];
    time_t t0 = time(NULL);
    struct tm tm;
    gmtime_r(&t0, &tm);
    strftime(prefix, sizeof prefix, "%Y%m%dT%H%M%S", &tm);

    /* Our own context, iterated by the loop below: the bus watch (errors, end of file)
     * runs there, on this thread, between pulls. */
    GMainContext *ctx = g_main_context_new();
    grab_state gs = {.lost = false};
    capture_params params = {.width = w, .height = h, .channels = gray ? 1 : 3, .context = ctx,
                             .on_state = on_capture_state, .user = &gs,
                             .no_sync = src.kind == SOURCE_FILE,
                             .every_frame = src.kind == SOURCE_FILE, .no_retry = true};
    capture *cap = NULL;
    bn_status st = capture_open(&src, &params, &cap, err, sizeof err);
    if (st != BN_OK) {
        fprintf(stderr, PROG ": %s\n", err);
        remove_made_dirs(&md, true);
        g_main_context_unref(ctx);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* A second Ctrl-C kills at once, should the source hang. */
    sa.sa_flags = (int)SA_RESETHAND;
    struct sigaction old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    fprintf(stderr, PROG ": saving %ld frames of %s (%dx%d %s, every %g s) to %s; Ctrl-C stops\n",
            count, what, w, h, gray ? "gray" : "RGB", every, dir);

    const bool is_file = src.kind == SOURCE_FILE;
    /* Containers round timestamps (Matroska to the millisecond): a 1 ms slack keeps frame 3 of
     * a 30 fps file (pts 99 or 100 ms) due at --every 0.1. */
    const uint64_t every_ns = (uint64_t)llround(every * 1e9);
    const uint64_t slack_ns = 1000000;
    uint64_t last_t = 0, dropped = 0, start = tool_mono_ns(), last_progress = start;
    long saved = 0;
    unsigned next = 1;
    char first_name[64] = "", last_name[64] = "";
    const char *ended = NULL;
    int rc = 0;
    bool warned_wait = false;

    while (saved < count && !stop_requested) {
        capture_frame f;
        st = capture_pull(cap, &f, 100);
        if (st == BN_ERR_TIMEOUT || st == BN_ERR_SOURCE_LOST) {
            /* The bus watch only has news (error, end of file) when frames stop coming, so
             * the context is iterated here, off the per-frame path: every microsecond spent
             * between pulls lets a decoded file frame be replaced unseen. */
            while (g_main_context_iteration(ctx, FALSE))
                ;
            if (gs.lost) {
                fprintf(stderr, PROG ": %s\n", gs.message);
                rc = 1;
                break;
            }
            if (!saved && !warned_wait && tool_mono_ns() - start > FIRST_FRAME_WARN_S * 1000000000ull) {
                fprintf(stderr, PROG ": no frame from %s after %d s; still waiting\n", what,
                        FIRST_FRAME_WARN_S);
                warned_wait = true;
            }
            continue;   /* STARTING (a camera warming up): keep waiting */
        }
        if (st == BN_ERR_EOS) {
            ended = "end of file";
            break;
        }
        if (st != BN_OK) {
            fprintf(stderr, PROG ": reading %s: %s\n", what, bn_status_str(st));
            rc = 1;
            break;
        }
        dropped += f.dropped;
        uint64_t t = is_file ? f.pts_ns : f.capture_mono_ns;
        bool due = saved == 0 || t < last_t || t - last_t + slack_ns >= every_ns;
        if (!due) {
            capture_release(cap, &f);
            continue;
        }
        char name[64];
        int r = write_png(dir, prefix, &next, &f, name, sizeof name, err, sizeof err);
        capture_release(cap, &f);
        if (r) {
            fprintf(stderr, PROG ": %s\n", err);
            rc = 1;
            break;
        }
        if (!saved)
            snprintf(first_name, sizeof first_name, "%s", name);
        snprintf(last_name, sizeof last_name, "%s", name);
        saved++;
        last_t = t;
        uint64_t now = tool_mono_ns();
        if (saved == count || now - last_progress >= 1000000000ull) {
            fprintf(stderr, "saved %ld/%ld frames to %s\n", saved, count, dir);
            last_progress = now;
        }
    }
    if (stop_requested && saved < count && !rc)
        ended = "interrupted";
    capture_close(cap);
    while (g_main_context_iteration(ctx, FALSE))
        ;
    g_main_context_unref(ctx);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    remove_made_dirs(&md, saved == 0);

    if (saved == 0 && !rc && ended && !strcmp(ended, "end of file")) {
        fprintf(stderr, PROG ": %s gave no frames\n", what);
        rc = 1;
    }
    if (saved)
        printf("saved %ld frame%s to %s (%s .. %s)%s%s%s\n", saved, saved == 1 ? "" : "s", dir,
               first_name, last_name, ended || rc ? " [" : "",
               rc ? "stopped by an error" : ended ? ended : "", ended || rc ? "]" : "");
    else
        printf("saved 0 frames%s%s%s\n", ended || rc ? " [" : "",
               rc ? "stopped by an error" : ended ? ended : "", ended || rc ? "]" : "");
    if (is_file && dropped) /* capture's every_frame should make this impossible */
        fprintf(stderr, PROG ": warning: %llu decoded frames were skipped\n",
                (unsigned long long)dropped);
    return rc;
}
