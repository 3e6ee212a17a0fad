/* `basisnet probe [DEVICE]`: what the V4L2 probe sees (capabilities, formats, sizes, rates,
 * controls) and the mode capture would choose; without DEVICE, a line per /dev/video* node. */
#include <glob.h>
#include <linux/videodev2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "v4l2_probe.h"

static const struct {
    uint32_t bit;
    const char *name;
} cap_names[] = {
    {V4L2_CAP_VIDEO_CAPTURE, "video-capture"},
    {V4L2_CAP_VIDEO_CAPTURE_MPLANE, "video-capture-mplane"},
    {V4L2_CAP_VIDEO_OUTPUT, "video-output"},
    {V4L2_CAP_VIDEO_M2M, "m2m"},
    {V4L2_CAP_META_CAPTURE, "metadata-capture"},
    {V4L2_CAP_VBI_CAPTURE, "vbi-capture"},
    {V4L2_CAP_SDR_CAPTURE, "sdr-capture"},
    {V4L2_CAP_TUNER, "tuner"},
    {V4L2_CAP_AUDIO, "audio"},
    {V4L2_CAP_READWRITE, "read/write"},
    {V4L2_CAP_STREAMING, "streaming"},
    {V4L2_CAP_EXT_PIX_FORMAT, "ext-pix-format"},
};

static const struct {
    uint32_t type;
    const char *name;
} ctrl_types[] = {
    {V4L2_CTRL_TYPE_INTEGER, "int"},     {V4L2_CTRL_TYPE_BOOLEAN, "bool"},
    {V4L2_CTRL_TYPE_MENU, "menu"},       {V4L2_CTRL_TYPE_INTEGER_MENU, "intmenu"},
    {V4L2_CTRL_TYPE_BUTTON, "button"},   {V4L2_CTRL_TYPE_INTEGER64, "int64"},
    {V4L2_CTRL_TYPE_STRING, "string"},   {V4L2_CTRL_TYPE_BITMASK, "bitmask"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: basisnet probe [--width W] [--height H] [--fps F] [--format auto|raw|mjpeg] [DEVICE]\n\n"
            "Prints what basisnetd's V4L2 probe sees on DEVICE (e.g. /dev/video0 or a\n"
            "/dev/v4l/by-id/ path): capabilities, pixel formats with their frame sizes and\n"
            "rates, controls with ranges and current values (the names to use under\n"
            "source.controls in the config), and the capture mode basisnetd would choose for\n"
            "W x H at F fps (default 640x480@30). Without DEVICE, lists every /dev/video* node.\n"
            "Exit status: 0 success, 1 device problem, 2 bad usage.\n");
}

static void print_caps(uint32_t caps)
{
    printf("  capabilities:");
    for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0]; i++)
        if (caps & cap_names[i].bit)
            printf(" %s", cap_names[i].name);
    printf(" (0x%08x)\n", caps);
}

static void print_formats(const v4l2_probe_info *info)
{
    printf("  formats:\n");
    for (size_t f = 0; f < info->n_formats; f++) {
        const v4l2_format_info *fi = &info->formats[f];
        char cc[5];
        v4l2_fourcc_str(fi->fourcc, cc);
        const char *g = v4l2_fourcc_gst(fi->fourcc);
        const char *use = (fi->flags & V4L2_FMT_FLAG_EMULATED) ? "libv4l2 emulation, not used"
                          : !g                                 ? "not usable by basisnetd"
                          : !strcmp(g, "JPEG")                 ? "image/jpeg + jpegdec"
                                                               : g;
        printf("    %-4s  %-28s %s[%s]\n", cc, fi->description,
               (fi->flags & V4L2_FMT_FLAG_COMPRESSED) ? "compressed " : "", use);
        /* Modes are stored format by format, size by size: print each size once with its rates. */
        for (size_t i = 0; i < info->n_modes; i++) {
            const v4l2_mode *m = &info->modes[i];
            if (m->fourcc != fi->fourcc)
                continue;
            if (i > 0 && info->modes[i - 1].fourcc == m->fourcc &&
                info->modes[i - 1].width == m->width && info->modes[i - 1].height == m->height)
                continue;
            printf("          %5dx%-5d fps:", m->width, m->height);
            for (size_t j = i; j < info->n_modes && info->modes[j].fourcc == m->fourcc &&
                               info->modes[j].width == m->width && info->modes[j].height == m->height;
                 j++)
                printf(" %g", (double)info->modes[j].fps_num / info->modes[j].fps_den);
            printf("\n");
        }
    }
}

static void print_controls(const v4l2_probe_info *info)
{
    printf("  controls (config name: type range = current):\n");
    if (!info->n_controls)
        printf("    (none)\n");
    for (size_t i = 0; i < info->n_controls; i++) {
        const v4l2_control_info *c = &info->controls[i];
        const char *t = "other";
        for (size_t k = 0; k < sizeof ctrl_types / sizeof ctrl_types[0]; k++)
            if (ctrl_types[k].type == c->type)
                t = ctrl_types[k].name;
        printf("    %-32s %-7s", c->key, t);
        if (c->type == V4L2_CTRL_TYPE_INTEGER || c->type == V4L2_CTRL_TYPE_BOOLEAN ||
            c->type == V4L2_CTRL_TYPE_MENU || c->type == V4L2_CTRL_TYPE_INTEGER_MENU ||
            c->type == V4L2_CTRL_TYPE_INTEGER64)
            printf(" %lld..%lld step %lld default %lld", c->min, c->max, c->step, c->def);
        if (c->value_valid)
            printf(" = %lld", c->value);
        if (c->flags & V4L2_CTRL_FLAG_READ_ONLY)
            printf(" (read-only)");
        if (c->flags & V4L2_CTRL_FLAG_INACTIVE)
            printf(" (inactive)");
        printf("   \"%s\"\n", c->name);
    }
}

static int probe_one(const char *dev, int w, int h, int fps, source_format pref)
{
    v4l2_probe_info info;
    char err[1024];
    bn_status st = v4l2_probe_device(dev, &info, err, sizeof err);
    if (st != BN_OK) {
        fprintf(stderr, "basisnet probe: %s\n", err);
        return 1;
    }
    printf("%s: %s (driver %s, bus %s, version %u.%u.%u)\n", dev, info.card, info.driver,
           info.bus_info, (info.version >> 16) & 0xff, (info.version >> 8) & 0xff,
           info.version & 0xff);
    print_caps(info.caps);
    print_formats(&info);
    print_controls(&info);
    int idx = v4l2_choose_mode(info.modes, info.n_modes, w, h, fps, pref);
    if (idx >= 0) {
        char caps[160];
        v4l2_mode_caps(&info.modes[idx], caps, sizeof caps);
        printf("  basisnetd would capture %dx%d@%d as: %s%s\n", w, h, fps, caps,
               info.modes[idx].compressed ? " ! jpegdec" : "");
    } else {
        char offered[1024];
        v4l2_describe_modes(info.modes, info.n_modes, offered, sizeof offered);
        printf("  no mode fits %dx%d@%d; offered: %s\n", w, h, fps, offered);
    }
    v4l2_probe_free(&info);
    return 0;
}

static int list_all(void)
{
    glob_t g;
    if (glob("/dev/video*", 0, NULL, &g) != 0) {
        fprintf(stderr, "basisnet probe: no V4L2 devices (no /dev/video* nodes)\n");
        return 1;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        v4l2_probe_info info;
        char err[1024];
        bn_status st = v4l2_probe_device(g.gl_pathv[i], &info, err, sizeof err);
        if (st != BN_OK) {
            printf("%s: %s\n", g.gl_pathv[i], err);
            continue;
        }
        printf("%s: %s (driver %s, %zu formats, %zu controls)\n", g.gl_pathv[i], info.card,
               info.driver, info.n_formats, info.n_controls);
        v4l2_probe_free(&info);
    }
    globfree(&g);
    printf("run 'basisnet probe DEVICE' for formats, sizes, rates and controls\n");
    return 0;
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    long v;
    if (tool_parse_long_opt("basisnet probe", opt, s, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

int cmd_probe(int argc, char **argv)
{
    int w = 640, h = 480, fps = 30;
    source_format pref = PIXFMT_AUTO;
    const char *dev = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--width")) {
            if (parse_int(a, i + 1 < argc ? argv[++i] : NULL, 1, 16384, &w))
                return 2;
        } else if (!strcmp(a, "--height")) {
            if (parse_int(a, i + 1 < argc ? argv[++i] : NULL, 1, 16384, &h))
                return 2;
        } else if (!strcmp(a, "--fps")) {
            if (parse_int(a, i + 1 < argc ? argv[++i] : NULL, 1, 1000, &fps))
                return 2;
        } else if (!strcmp(a, "--format")) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            if (!strcmp(v, "auto"))
                pref = PIXFMT_AUTO;
            else if (!strcmp(v, "raw"))
                pref = PIXFMT_RAW;
            else if (!strcmp(v, "mjpeg"))
                pref = PIXFMT_MJPEG;
            else {
                fprintf(stderr, "basisnet probe: --format expects auto, raw or mjpeg, got '%s'\n", v);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "basisnet probe: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (dev) {
            fprintf(stderr, "basisnet probe: one device at a time ('%s' and '%s')\n", dev, a);
            return 2;
        } else {
            dev = a;
        }
    }
    return dev ? probe_one(dev, w, h, fps, pref) : list_all();
}
