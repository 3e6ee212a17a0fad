/* V4L2 probing with libv4l2: open with clear errors, enumerate formats/sizes/rates/controls,
 * choose a capture mode (pure function), set controls by name with range checks. */
#include "v4l2_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libv4l2.h>
#include <linux/videodev2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bn_log.h"

#define MOD "v4l2"

/* V4L2 fourcc -> what v4l2src calls it. Only formats that v4l2src negotiates natively and
 * videoconvert/jpegdec can take downstream. */
static const struct {
    uint32_t fourcc;
    const char *gst;
} fourcc_map[] = {
    {V4L2_PIX_FMT_YUYV, "YUY2"},      {V4L2_PIX_FMT_UYVY, "UYVY"},
    {V4L2_PIX_FMT_YVYU, "YVYU"},      {V4L2_PIX_FMT_VYUY, "VYUY"},
    {V4L2_PIX_FMT_NV12, "NV12"},      {V4L2_PIX_FMT_NV21, "NV21"},
    {V4L2_PIX_FMT_NV16, "NV16"},      {V4L2_PIX_FMT_NV61, "NV61"},
    {V4L2_PIX_FMT_NV24, "NV24"},      {V4L2_PIX_FMT_YUV420, "I420"},
    {V4L2_PIX_FMT_YVU420, "YV12"},    {V4L2_PIX_FMT_YUV422P, "Y42B"},
    {V4L2_PIX_FMT_GREY, "GRAY8"},     {V4L2_PIX_FMT_Y16, "GRAY16_LE"},
    {V4L2_PIX_FMT_RGB24, "RGB"},      {V4L2_PIX_FMT_BGR24, "BGR"},
    {V4L2_PIX_FMT_RGB565, "RGB16"},   {V4L2_PIX_FMT_XBGR32, "BGRx"},
    {V4L2_PIX_FMT_ABGR32, "BGRA"},    {V4L2_PIX_FMT_XRGB32, "xRGB"},
    {V4L2_PIX_FMT_ARGB32, "ARGB"},    {V4L2_PIX_FMT_BGR32, "BGRx"},
    {V4L2_PIX_FMT_RGB32, "xRGB"},     {V4L2_PIX_FMT_MJPEG, "JPEG"},
    {V4L2_PIX_FMT_JPEG, "JPEG"},
};

const char *v4l2_fourcc_gst(uint32_t fourcc)
{
    for (size_t i = 0; i < sizeof fourcc_map / sizeof fourcc_map[0]; i++)
        if (fourcc_map[i].fourcc == fourcc)
            return fourcc_map[i].gst;
    return NULL;
}

static bool fourcc_is_jpeg(uint32_t fourcc)
{
    return fourcc == V4L2_PIX_FMT_MJPEG || fourcc == V4L2_PIX_FMT_JPEG;
}

void v4l2_fourcc_str(uint32_t fourcc, char out[5])
{
    for (int i = 0; i < 4; i++) {
        char ch = (char)((fourcc >> (8 * i)) & 0xff);
        out[i] = (ch >= 32 && ch < 127) ? ch : '?';
    }
    out[4] = '\0';
    /* Trailing spaces (e.g. "Y16 ") read better trimmed. */
    for (int i = 3; i > 0 && out[i] == ' '; i--)
        out[i] = '\0';
}

bool v4l2_mode_caps(const v4l2_mode *m, char *buf, size_t len)
{
    const char *g = v4l2_fourcc_gst(m->fourcc);
    if (!g)
        return false;
    int n;
    if (fourcc_is_jpeg(m->fourcc))
        n = snprintf(buf, len, "image/jpeg,width=%d,height=%d,framerate=%d/%d", m->width,
                     m->height, m->fps_num, m->fps_den);
    else
        n = snprintf(buf, len, "video/x-raw,format=%s,width=%d,height=%d,framerate=%d/%d", g,
                     m->width, m->height, m->fps_num, m->fps_den);
    return n > 0 && (size_t)n < len;
}

void v4l2_control_key(const char *name, char *out, size_t len)
{
    size_t o = 0;
    bool sep = false;
    for (const char *p = name; *p && o + 1 < len; p++) {
        char ch = *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
        } else if (ch >= 'A' && ch <= 'Z') {
            ch = (char)(ch - 'A' + 'a');
        } else {
            sep = o > 0;
            continue;
        }
        if (sep && o + 2 < len)
            out[o++] = '_';
        sep = false;
        out[o++] = ch;
    }
    if (len)
        out[o < len ? o : len - 1] = '\0';
}

/* ---- choosing a mode ------------------------------------------------------------------ */

static double mode_fps(const v4l2_mode *m)
{
    return m->fps_den > 0 ? (double)m->fps_num / m->fps_den : 0.0;
}

static bool mode_allowed(const v4l2_mode *m, source_format pref)
{
    if (m->emulated || !v4l2_fourcc_gst(m->fourcc))
        return false;
    bool jpeg = fourcc_is_jpeg(m->fourcc);
    if (pref == PIXFMT_RAW)
        return !jpeg;
    if (pref == PIXFMT_MJPEG)
        return jpeg;
    return true;
}

/* Returns <0 when a is better than b. The rules are a lexicographic key, in the order the
 * header documents. */
static int mode_compare(const v4l2_mode *a, const v4l2_mode *b, int w, int h, int fps)
{
    double fa = mode_fps(a), fb = mode_fps(b);
    bool ra = fa + 1e-3 >= fps, rb = fb + 1e-3 >= fps;
    if (ra != rb)
        return ra ? -1 : 1;
    if (!ra && fa != fb)   /* neither reaches the rate: the faster one */
        return fa > fb ? -1 : 1;
    bool ca = a->width >= w && a->height >= h, cb = b->width >= w && b->height >= h;
    if (ca != cb)
        return ca ? -1 : 1;
    bool ja = fourcc_is_jpeg(a->fourcc), jb = fourcc_is_jpeg(b->fourcc);
    if (ja != jb)
        return ja ? 1 : -1;
    long long da = llabs((long long)a->width * a->height - (long long)w * h);
    long long db = llabs((long long)b->width * b->height - (long long)w * h);
    if (da != db)
        return da < db ? -1 : 1;
    if (fa != fb)          /* both reach the rate: the lower one wastes less */
        return fa < fb ? -1 : 1;
    return 0;
}

int v4l2_choose_mode(const v4l2_mode *modes, size_t n, int width, int height, int fps,
                     source_format pref)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!mode_allowed(&modes[i], pref) || modes[i].fps_num <= 0 || modes[i].fps_den <= 0)
            continue;
        if (best < 0 || mode_compare(&modes[i], &modes[best], width, height, fps) < 0)
            best = (int)i;
    }
    return best;
}

void v4l2_describe_modes(const v4l2_mode *modes, size_t n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < len; i++) {
        /* One entry per format x size at its highest rate. */
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++) {
            if (j == i || modes[j].fourcc != modes[i].fourcc || modes[j].width != modes[i].width ||
                modes[j].height != modes[i].height || modes[j].emulated != modes[i].emulated)
                continue;
            double fj = mode_fps(&modes[j]), fi = mode_fps(&modes[i]);
            seen = fj > fi || (fj == fi && j < i);
        }
        if (seen)
            continue;
        char cc[5];
        v4l2_fourcc_str(modes[i].fourcc, cc);
        int k = snprintf(buf + o, len - o, "%s%s %dx%d@%g%s", o ? ", " : "", cc, modes[i].width,
                         modes[i].height, mode_fps(&modes[i]),
                         modes[i].emulated ? " (libv4l2 emulation)" : "");
        if (k < 0 || (size_t)k >= len - o) {
            if (len > 4)
                strcpy(buf + len - 4, "...");
            return;
        }
        o += (size_t)k;
    }
}

/* ---- opening -------------------------------------------------------------------------- */

static void group_hint(const struct stat *st, char *buf, size_t len)
{
    struct group grbuf, *gr = NULL;
    char tmp[1024];
    if (getgrgid_r(st->st_gid, &grbuf, tmp, sizeof tmp, &gr) == 0 && gr)
        snprintf(buf, len, "add the user to group '%s' (usermod -aG %s USER, or "
                           "SupplementaryGroups=%s in the service)",
                 gr->gr_name, gr->gr_name, gr->gr_name);
    else
        snprintf(buf, len, "the node belongs to gid %u: give the user that group", (unsigned)st->st_gid);
}

bn_status v4l2_probe_open(const char *device, int *fd_out, char *err, size_t errlen)
{
    *fd_out = -1;
    struct stat st;
    if (stat(device, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "no such device '%s': %s (is the camera plugged in? "
                              "'basisnet probe' lists the devices)", device, strerror(e));
        return e == EACCES ? BN_ERR_PERMISSION : BN_ERR_NO_DEVICE;
    }
    if (!S_ISCHR(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a device node (not a character device)", device);
        return BN_ERR_UNSUPPORTED;
    }
    /* Plain open + QUERYCAP first: libv4l2 prints its own complaints to stderr for nodes
     * that are not V4L2 devices; wrap the fd with v4l2_fd_open once it is known to be one. */
    int fd = open(device, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM) {
            char hint[256];
            group_hint(&st, hint, sizeof hint);
            snprintf(err, errlen, "permission denied opening '%s' (mode %04o, uid %u gid %u): %s",
                     device, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
                     (unsigned)st.st_gid, hint);
            return BN_ERR_PERMISSION;
        }
        if (e == EBUSY) {
            snprintf(err, errlen, "device '%s' is busy: another process holds it (fuser %s)",
                     device, device);
            return BN_ERR_BUSY;
        }
        snprintf(err, errlen, "cannot open '%s': %s", device, strerror(e));
        return (e == ENOENT || e == ENODEV || e == ENXIO) ? BN_ERR_NO_DEVICE : BN_ERR_IO;
    }
    struct v4l2_capability cap;
    memset(&cap, 0, sizeof cap);
    if (ioctl(fd, VIDIOC_QUERYCAP, &cap) != 0) {
        int e = errno;
        close(fd);
        if (e == ENODEV) {
            snprintf(err, errlen, "device '%s' is gone (unplugged)", device);
            return BN_ERR_NO_DEVICE;
        }
        snprintf(err, errlen, "'%s' is not a V4L2 device (VIDIOC_QUERYCAP: %s)", device,
                 strerror(e));
        return BN_ERR_UNSUPPORTED;
    }
    uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
    if (!(caps & V4L2_CAP_VIDEO_CAPTURE) || !(caps & V4L2_CAP_STREAMING)) {
        close(fd);
        snprintf(err, errlen, "'%s' (%s, driver %s) is not a video capture device with streaming "
                              "I/O (device caps 0x%08x%s); UVC cameras often have a second node "
                              "for metadata: try the other /dev/video*",
                 device, (const char *)cap.card, (const char *)cap.driver, caps,
                 (caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE) ? ", multi-planar capture is not supported" : "");
        return BN_ERR_UNSUPPORTED;
    }
    int lfd = v4l2_fd_open(fd, 0);
    if (lfd < 0) {
        close(fd);
        snprintf(err, errlen, "libv4l2 cannot take '%s': %s", device, strerror(errno));
        return BN_ERR_IO;
    }
    *fd_out = lfd;
    return BN_OK;
}

void v4l2_probe_close(int fd)
{
    if (fd >= 0)
        v4l2_close(fd);
}

/* ---- enumeration ---------------------------------------------------------------------- */

typedef struct {
    v4l2_mode *v;
    size_t n, cap;
} mode_vec;

static int mode_push(mode_vec *mv, const v4l2_mode *m)
{
    for (size_t i = 0; i < mv->n; i++)   /* stepwise sampling can repeat a point */
        if (!memcmp(&mv->v[i], m, sizeof *m))
            return 0;
    if (mv->n == mv->cap) {
        size_t nc = mv->cap ? mv->cap * 2 : 64;
        v4l2_mode *nv = realloc(mv->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        mv->v = nv;
        mv->cap = nc;
    }
    mv->v[mv->n++] = *m;
    return 0;
}

static int add_rates(int fd, mode_vec *mv, v4l2_mode base)
{
    struct v4l2_frmivalenum fi;
    memset(&fi, 0, sizeof fi);
    fi.pixel_format = base.fourcc;
    fi.width = (uint32_t)base.width;
    fi.height = (uint32_t)base.height;
    if (v4l2_ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &fi) != 0) {
        /* Drivers without interval enumeration: assume the common 30 fps. */
        base.fps_num = 30;
        base.fps_den = 1;
        return mode_push(mv, &base);
    }
    if (fi.type == V4L2_FRMIVAL_TYPE_DISCRETE) {
        for (fi.index = 0; v4l2_ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &fi) == 0; fi.index++) {
            if (!fi.discrete.numerator)
                continue;
            base.fps_num = (int)fi.discrete.denominator;
            base.fps_den = (int)fi.discrete.numerator;
            if (mode_push(mv, &base))
                return -1;
        }
        return 0;
    }
    /* Stepwise/continuous: the fastest and slowest rate plus the usual ones in between. */
    double fmax = fi.stepwise.min.numerator ? (double)fi.stepwise.min.denominator / fi.stepwise.min.numerator : 0;
    double fmin = fi.stepwise.max.numerator ? (double)fi.stepwise.max.denominator / fi.stepwise.max.numerator : 0;
    base.fps_num = (int)fi.stepwise.min.denominator;
    base.fps_den = (int)fi.stepwise.min.numerator;
    if (mode_push(mv, &base))
        return -1;
    static const int common[] = {60, 30, 25, 15, 10, 5};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        if (common[i] < fmin || common[i] > fmax)
            continue;
        base.fps_num = common[i];
        base.fps_den = 1;
        if (mode_push(mv, &base))
            return -1;
    }
    return 0;
}

static int add_sizes(int fd, mode_vec *mv, const struct v4l2_fmtdesc *fd_desc)
{
    v4l2_mode base = {.fourcc = fd_desc->pixelformat,
                      .compressed = (fd_desc->flags & V4L2_FMT_FLAG_COMPRESSED) != 0,
                      .emulated = (fd_desc->flags & V4L2_FMT_FLAG_EMULATED) != 0};
    struct v4l2_frmsizeenum fs;
    memset(&fs, 0, sizeof fs);
    fs.pixel_format = fd_desc->pixelformat;
    if (v4l2_ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &fs) != 0) {
        struct v4l2_format f = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
        if (v4l2_ioctl(fd, VIDIOC_G_FMT, &f) != 0)
            return 0;
        base.width = (int)f.fmt.pix.width;
        base.height = (int)f.fmt.pix.height;
        return add_rates(fd, mv, base);
    }
    if (fs.type == V4L2_FRMSIZE_TYPE_DISCRETE) {
        for (fs.index = 0; v4l2_ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &fs) == 0; fs.index++) {
            base.width = (int)fs.discrete.width;
            base.height = (int)fs.discrete.height;
            if (add_rates(fd, mv, base))
                return -1;
        }
        return 0;
    }
    /* Stepwise: the extremes plus the usual sizes that lie on the grid. */
    static const int common[][2] = {{320, 240}, {640, 480}, {1280, 720}, {1920, 1080}};
    const struct v4l2_frmsize_stepwise *sw = &fs.stepwise;
    int pts[6][2] = {{(int)sw->min_width, (int)sw->min_height}, {(int)sw->max_width, (int)sw->max_height}};
    int np = 2;
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        uint32_t w = (uint32_t)common[i][0], h = (uint32_t)common[i][1];
        if (w < sw->min_width || w > sw->max_width || h < sw->min_height || h > sw->max_height)
            continue;
        if ((sw->step_width && (w - sw->min_width) % sw->step_width) ||
            (sw->step_height && (h - sw->min_height) % sw->step_height))
            continue;
        pts[np][0] = (int)w;
        pts[np][1] = (int)h;
        np++;
    }
    for (int i = 0; i < np; i++) {
        base.width = pts[i][0];
        base.height = pts[i][1];
        if (add_rates(fd, mv, base))
            return -1;
    }
    return 0;
}

static int enum_controls(int fd, v4l2_probe_info *info)
{
    size_t cap = 0;
    struct v4l2_queryctrl q;
    memset(&q, 0, sizeof q);
    q.id = V4L2_CTRL_FLAG_NEXT_CTRL;
    while (v4l2_ioctl(fd, VIDIOC_QUERYCTRL, &q) == 0) {
        uint32_t id = q.id;
        if (q.type != V4L2_CTRL_TYPE_CTRL_CLASS && !(q.flags & V4L2_CTRL_FLAG_DISABLED)) {
            if (info->n_controls == cap) {
                size_t nc = cap ? cap * 2 : 32;
                v4l2_control_info *nv = realloc(info->controls, nc * sizeof *nv);
                if (!nv)
                    return -1;
                info->controls = nv;
                cap = nc;
            }
            v4l2_control_info *ci = &info->controls[info->n_controls++];
            memset(ci, 0, sizeof *ci);
            ci->id = q.id;
            ci->type = q.type;
            snprintf(ci->name, sizeof ci->name, "%s", (const char *)q.name);
            v4l2_control_key(ci->name, ci->key, sizeof ci->key);
            ci->min = q.minimum;
            ci->max = q.maximum;
            ci->step = q.step;
            ci->def = q.default_value;
            ci->flags = q.flags;
            if (q.type == V4L2_CTRL_TYPE_INTEGER || q.type == V4L2_CTRL_TYPE_BOOLEAN ||
                q.type == V4L2_CTRL_TYPE_MENU || q.type == V4L2_CTRL_TYPE_INTEGER_MENU) {
                struct v4l2_control c = {.id = q.id};
                if (!(q.flags & V4L2_CTRL_FLAG_WRITE_ONLY) && v4l2_ioctl(fd, VIDIOC_G_CTRL, &c) == 0) {
                    ci->value = c.value;
                    ci->value_valid = true;
                }
            }
        }
        memset(&q, 0, sizeof q);
        q.id = id | V4L2_CTRL_FLAG_NEXT_CTRL;
    }
    return 0;
}

bn_status v4l2_probe_fd(int fd, const char *device, v4l2_probe_info *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    snprintf(info->device, sizeof info->device, "%s", device);
    struct v4l2_capability cap;
    memset(&cap, 0, sizeof cap);
    if (v4l2_ioctl(fd, VIDIOC_QUERYCAP, &cap) != 0) {
        snprintf(err, errlen, "VIDIOC_QUERYCAP on '%s': %s", device, strerror(errno));
        return errno == ENODEV ? BN_ERR_NO_DEVICE : BN_ERR_IO;
    }
    snprintf(info->driver, sizeof info->driver, "%s", (const char *)cap.driver);
    snprintf(info->card, sizeof info->card, "%s", (const char *)cap.card);
    snprintf(info->bus_info, sizeof info->bus_info, "%s", (const char *)cap.bus_info);
    info->version = cap.version;
    info->caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;

    mode_vec mv = {0};
    size_t fcap = 0;
    struct v4l2_fmtdesc fdsc;
    memset(&fdsc, 0, sizeof fdsc);
    fdsc.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    for (fdsc.index = 0; v4l2_ioctl(fd, VIDIOC_ENUM_FMT, &fdsc) == 0; fdsc.index++) {
        if (info->n_formats == fcap) {
            size_t nc = fcap ? fcap * 2 : 16;
            v4l2_format_info *nv = realloc(info->formats, nc * sizeof *nv);
            if (!nv)
                goto nomem;
            info->formats = nv;
            fcap = nc;
        }
        v4l2_format_info *f = &info->formats[info->n_formats++];
        f->fourcc = fdsc.pixelformat;
        f->flags = fdsc.flags;
        snprintf(f->description, sizeof f->description, "%s", (const char *)fdsc.description);
        if (add_sizes(fd, &mv, &fdsc))
            goto nomem;
    }
    info->modes = mv.v;
    info->n_modes = mv.n;
    if (enum_controls(fd, info))
        goto nomem;
    return BN_OK;
nomem:
    if (!info->modes)
        free(mv.v);
    v4l2_probe_free(info);
    snprintf(err, errlen, "out of memory probing '%s'", device);
    return BN_ERR_NOMEM;
}

bn_status v4l2_probe_device(const char *device, v4l2_probe_info *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    int fd;
    bn_status st = v4l2_probe_open(device, &fd, err, errlen);
    if (st != BN_OK)
        return st;
    st = v4l2_probe_fd(fd, device, info, err, errlen);
    v4l2_probe_close(fd);
    return st;
}

void v4l2_probe_free(v4l2_probe_info *info)
{
    if (!info)
        return;
    free(info->formats);
    free(info->modes);
    free(info->controls);
    info->formats = NULL;
    info->modes = NULL;
    info->controls = NULL;
    info->n_formats = info->n_modes = info->n_controls = 0;
}

/* ---- controls ------------------------------------------------------------------------- */

static void list_keys(const v4l2_probe_info *info, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < info->n_controls && o + 1 < len; i++) {
        int k = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", info->controls[i].key);
        if (k < 0 || (size_t)k >= len - o)
            break;
        o += (size_t)k;
    }
}

bn_status v4l2_apply_controls(int fd, const char *device, const source_control *ctrls, int n,
                              char *err, size_t errlen)
{
    if (n <= 0)
        return BN_OK;
    v4l2_probe_info info;
    memset(&info, 0, sizeof info);
    if (enum_controls(fd, &info)) {
        v4l2_probe_free(&info);
        snprintf(err, errlen, "out of memory listing controls of '%s'", device);
        return BN_ERR_NOMEM;
    }
    bn_status st = BN_OK;
    for (int i = 0; i < n && st == BN_OK; i++) {
        char want[BN_NAME_MAX];
        v4l2_control_key(ctrls[i].name, want, sizeof want);
        const v4l2_control_info *ci = NULL;
        for (size_t j = 0; j < info.n_controls && !ci; j++)
            if (!strcmp(info.controls[j].key, want))
                ci = &info.controls[j];
        long long v = ctrls[i].value;
        if (!ci) {
            char keys[1024];
            list_keys(&info, keys, sizeof keys);
            snprintf(err, errlen, "no control '%s' on '%s'; it has: %s", ctrls[i].name, device,
                     keys[0] ? keys : "(no controls)");
            st = BN_ERR_CONFIG;
        } else if (ci->flags & (V4L2_CTRL_FLAG_READ_ONLY | V4L2_CTRL_FLAG_GRABBED)) {
            snprintf(err, errlen, "control '%s' on '%s' is %s", ci->key, device,
                     (ci->flags & V4L2_CTRL_FLAG_READ_ONLY) ? "read-only" : "locked while streaming");
            st = (ci->flags & V4L2_CTRL_FLAG_READ_ONLY) ? BN_ERR_CONFIG : BN_ERR_BUSY;
        } else if (ci->type != V4L2_CTRL_TYPE_INTEGER && ci->type != V4L2_CTRL_TYPE_BOOLEAN &&
                   ci->type != V4L2_CTRL_TYPE_MENU && ci->type != V4L2_CTRL_TYPE_INTEGER_MENU &&
                   ci->type != V4L2_CTRL_TYPE_BUTTON) {
            snprintf(err, errlen, "control '%s' on '%s' has a type (%u) that cannot be set from "
                                  "the config", ci->key, device, ci->type);
            st = BN_ERR_UNSUPPORTED;
        } else if (ci->type != V4L2_CTRL_TYPE_BUTTON &&
                   (v < ci->min || v > ci->max ||
                    (ci->type == V4L2_CTRL_TYPE_INTEGER && ci->step > 1 && (v - ci->min) % ci->step))) {
            snprintf(err, errlen, "control '%s' on '%s': value %lld is out of range %lld..%lld "
                                  "(step %lld, default %lld)",
                     ci->key, device, v, ci->min, ci->max, ci->step, ci->def);
            st = BN_ERR_CONFIG;
        } else {
            if (ci->type == V4L2_CTRL_TYPE_MENU || ci->type == V4L2_CTRL_TYPE_INTEGER_MENU) {
                struct v4l2_querymenu qm = {.id = ci->id, .index = (uint32_t)v};
                if (v4l2_ioctl(fd, VIDIOC_QUERYMENU, &qm) != 0) {
                    snprintf(err, errlen, "control '%s' on '%s': %lld is not one of its menu "
                                          "entries", ci->key, device, v);
                    st = BN_ERR_CONFIG;
                    break;
                }
            }
            struct v4l2_control c = {.id = ci->id, .value = (int32_t)v};
            if (v4l2_ioctl(fd, VIDIOC_S_CTRL, &c) != 0) {
                int e = errno;
                snprintf(err, errlen, "setting control '%s' = %lld on '%s': %s", ci->key, v,
                         device, strerror(e));
                st = e == EBUSY ? BN_ERR_BUSY : e == ENODEV ? BN_ERR_NO_DEVICE : BN_ERR_IO;
            } else {
                BN_LOGI(MOD, "%s: control %s = %lld", device, ci->key, v);
            }
        }
    }
    v4l2_probe_free(&info);
    return st;
}

/* ---- what capture uses ---------------------------------------------------------------- */

bn_status v4l2_prepare_source(const source_config *cfg, v4l2_mode *chosen, char *err, size_t errlen)
{
    int fd;
    bn_status st = v4l2_probe_open(cfg->device, &fd, err, errlen);
    if (st != BN_OK)
        return st;
    v4l2_probe_info info;
    st = v4l2_probe_fd(fd, cfg->device, &info, err, errlen);
    if (st != BN_OK) {
        v4l2_probe_close(fd);
        return st;
    }
    int idx = v4l2_choose_mode(info.modes, info.n_modes, cfg->width, cfg->height, cfg->fps, cfg->format);
    if (idx < 0) {
        char offered[1536];
        v4l2_describe_modes(info.modes, info.n_modes, offered, sizeof offered);
        snprintf(err, errlen, "no capture format of '%s' (%s) fits %dx%d@%d %s; it offers: %s",
                 cfg->device, info.card, cfg->width, cfg->height, cfg->fps,
                 cfg->format == PIXFMT_RAW     ? "raw"
                 : cfg->format == PIXFMT_MJPEG ? "mjpeg"
                                               : "(raw or mjpeg)",
                 offered[0] ? offered : "nothing");
        st = BN_ERR_UNSUPPORTED;
    } else {
        *chosen = info.modes[idx];
        /* A queue owned by another process answers REQBUFS with EBUSY: say "busy" now rather
         * than let v4l2src fail with a generic message. count = 0 allocates nothing. */
        struct v4l2_requestbuffers rb = {.count = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                         .memory = V4L2_MEMORY_MMAP};
        if (v4l2_ioctl(fd, VIDIOC_REQBUFS, &rb) != 0 && errno == EBUSY) {
            snprintf(err, errlen, "device '%s' is busy: another process is streaming from it "
                                  "(fuser %s)", cfg->device, cfg->device);
            st = BN_ERR_BUSY;
        } else {
            st = v4l2_apply_controls(fd, cfg->device, cfg->controls, cfg->n_controls, err, errlen);
        }
    }
    v4l2_probe_free(&info);
    v4l2_probe_close(fd);
    return st;
}
