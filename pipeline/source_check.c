/* Source checks without starting (see source_check.h). */
#include "source_check.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rtsp.h"

int source_test_pattern(GstElement *src, const char *name, char *err, size_t errlen)
{
    GParamSpec *ps = g_object_class_find_property(G_OBJECT_GET_CLASS(src), "pattern");
    GEnumClass *ec = ps && G_IS_PARAM_SPEC_ENUM(ps) ? G_PARAM_SPEC_ENUM(ps)->enum_class : NULL;
    GEnumValue *ev = ec ? g_enum_get_value_by_nick(ec, name) : NULL;
    if (ev)
        return ev->value;
    int n = snprintf(err, errlen, "unknown test pattern '%s'; videotestsrc knows:", name);
    size_t off = n > 0 && (size_t)n < errlen ? (size_t)n : errlen - 1;
    for (guint i = 0; ec && i < ec->n_values; i++) {
        n = snprintf(err + off, errlen - off, " %s", ec->values[i].value_nick);
        if (n < 0 || (size_t)n >= errlen - off)
            break;
        off += (size_t)n;
    }
    return -1;
}

/* The element the source kind starts with, and the plugin package that has it. */
static bn_status need_element(const char *factory, const char *package, char *err,
                              size_t errlen)
{
    GstElementFactory *f = gst_element_factory_find(factory);
    if (f) {
        gst_object_unref(f);
        return BN_OK;
    }
    snprintf(err, errlen, "GStreamer element '%s' is not installed (Debian package %s)", factory,
             package);
    return BN_ERR_UNSUPPORTED;
}

static bn_status readable(const char *path, const char *what, char *err, size_t errlen)
{
    if (access(path, R_OK) == 0)
        return BN_OK;
    int e = errno;
    snprintf(err, errlen, "cannot read %s '%s': %s", what, path, strerror(e));
    return e == EACCES ? BN_ERR_PERMISSION : BN_ERR_IO;
}

static bn_status check_pipeline(const char *desc, char *err, size_t errlen)
{
    GError *ge = NULL;
    GstParseContext *pctx = gst_parse_context_new();
    GstElement *p = gst_parse_launch_full(desc, pctx, GST_PARSE_FLAG_FATAL_ERRORS, &ge);
    bn_status st = BN_OK;
    if (!p || ge) {
        gchar **missing = gst_parse_context_get_missing_elements(pctx);
        snprintf(err, errlen, "the GStreamer description does not parse: %s%s%s%s",
                 ge ? ge->message : "unknown parse error",
                 missing && missing[0] ? " (missing element: " : "",
                 missing && missing[0] ? missing[0] : "", missing && missing[0] ? ")" : "");
        g_strfreev(missing);
        st = BN_ERR_CONFIG;
    }
    if (ge)
        g_error_free(ge);
    if (p)
        gst_object_unref(p);   /* parsed, never played: NULL state, no device opened */
    gst_parse_context_free(pctx);
    return st;
}

bn_status source_check(const source_config *s, const char **key, char *err, size_t errlen)
{
    GError *ge = NULL;
    *key = "source.kind";
    if (!gst_init_check(NULL, NULL, &ge)) {
        snprintf(err, errlen, "cannot initialise GStreamer: %s", ge ? ge->message : "?");
        if (ge)
            g_error_free(ge);
        return BN_ERR_INTERNAL;
    }
    bn_status st = BN_OK;
    switch (s->kind) {
    case SOURCE_V4L2:
        st = need_element("v4l2src", "gstreamer1.0-plugins-good", err, errlen);
        break;
    case SOURCE_FILE:
        st = need_element("decodebin", "gstreamer1.0-plugins-base", err, errlen);
        if (st == BN_OK) {
            *key = "source.path";
            st = readable(s->path, "video file", err, errlen);
        }
        break;
    case SOURCE_TEST: {
        st = need_element("videotestsrc", "gstreamer1.0-plugins-base", err, errlen);
        GstElement *src = st == BN_OK ? gst_element_factory_make("videotestsrc", NULL) : NULL;
        if (src) {
            gst_object_ref_sink(src);
            *key = "source.pattern";
            if (source_test_pattern(src, s->pattern[0] ? s->pattern : "smpte", err, errlen) < 0)
                st = BN_ERR_CONFIG;
            gst_object_unref(src);
        }
        break;
    }
    case SOURCE_PIPELINE:
        *key = "source.pipeline";
        st = check_pipeline(s->pipeline, err, errlen);
        break;
    case SOURCE_RTSP: {
        st = need_element("rtspsrc", "gstreamer1.0-plugins-good", err, errlen);
        if (st == BN_OK && s->credentials_file[0]) {
            char user[256], pw[256];
            *key = "source.credentials_file";
            st = rtsp_read_credentials(s->credentials_file, user, sizeof user, pw, sizeof pw,
                                       err, errlen);
            explicit_bzero(pw, sizeof pw);
        }
        break;
    }
    }
    return st;
}
