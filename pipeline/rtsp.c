/* RTSP source helpers (see rtsp.h): URL parsing and masking through GLib's GUri, the
 * credentials file, rtspsrc properties and error wording. */
#include "rtsp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>


/* Connecting to a host that does not answer fails after this long instead of rtspsrc's 20 s;
 * the capture's frame timeout bounds the rest of the set-up. */
#define RTSP_TCP_TIMEOUT_US (5 * G_USEC_PER_SEC)

static bool is_rtsp_scheme(const char *scheme)
{
    return scheme && (g_ascii_strcasecmp(scheme, "rtsp") == 0 ||
                      g_ascii_strcasecmp(scheme, "rtsps") == 0 ||
                      g_ascii_strcasecmp(scheme, "rtspt") == 0);
}

bn_status rtsp_url_check(const char *url, char *err, size_t errlen)
{
    char masked[BN_PATH_MAX];
    rtsp_url_mask(url, masked, sizeof masked);
    GError *ge = NULL;
    GUri *u = g_uri_parse(url, G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_ENCODED, &ge);
    bn_status st = BN_OK;
    if (!u) {
        /* GLib's message quotes the URL (with its password): say what is wrong ourselves. */
        snprintf(err, errlen, "'%s' is not a valid URL (expected rtsp://[user:password@]host[:port]/path)",
                 masked);
        st = BN_ERR_CONFIG;
    } else if (!is_rtsp_scheme(g_uri_get_scheme(u))) {
        snprintf(err, errlen, "'%s' is not an RTSP URL: the scheme must be rtsp:// or rtsps://",
                 masked);
        st = BN_ERR_CONFIG;
    } else if (!g_uri_get_host(u) || !g_uri_get_host(u)[0]) {
        snprintf(err, errlen, "'%s' names no host", masked);
        st = BN_ERR_CONFIG;
    }
    if (ge)
        g_error_free(ge);
    if (u)
        g_uri_unref(u);
    return st;
}

void rtsp_url_mask(const char *url, char *out, size_t len)
{
    /* Plain string work, no parsing: it must mask even a URL that does not parse. */
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    if (!at)
        snprintf(out, len, "%s", url);
    else
        snprintf(out, len, "%.*s***%s", (int)(auth - url), url, at);
}

bn_status rtsp_url_split(const char *url, char *clean, size_t clean_len, char *user,
                         size_t user_len, char *pw, size_t pw_len, char *err, size_t errlen)
{
    bn_status st = rtsp_url_check(url, err, errlen);
    if (st != BN_OK)
        return st;
    GUri *u = g_uri_parse(url, G_URI_FLAGS_HAS_PASSWORD, NULL);
    if (!u) {  /* valid encoded but not decodable (e.g. %00 in the password) */
        char masked[BN_PATH_MAX];
        rtsp_url_mask(url, masked, sizeof masked);
        snprintf(err, errlen, "'%s': its user info does not decode", masked);
        return BN_ERR_CONFIG;
    }
    snprintf(user, user_len, "%s", g_uri_get_user(u) ? g_uri_get_user(u) : "");
    snprintf(pw, pw_len, "%s", g_uri_get_password(u) ? g_uri_get_password(u) : "");
    GUri *bare = g_uri_build(G_URI_FLAGS_NONE, g_uri_get_scheme(u), NULL, g_uri_get_host(u),
                             g_uri_get_port(u), g_uri_get_path(u), g_uri_get_query(u),
                             g_uri_get_fragment(u));
    char *s = g_uri_to_string(bare);
    snprintf(clean, clean_len, "%s", s);
    g_free(s);
    g_uri_unref(bare);
    g_uri_unref(u);
    return BN_OK;
}

bn_status rtsp_read_credentials(const char *path, char *user, size_t user_len, char *pw,
                                size_t pw_len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot read source.credentials_file '%s': %s", path, strerror(e));
        return e == EACCES ? BN_ERR_PERMISSION : BN_ERR_IO;
    }
    char line[1024];
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[got ? strcspn(line, "\r\n") : 0] = '\0';
    char *colon = strchr(line, ':');
    bn_status st = BN_OK;
    if (!colon || colon == line) {
        snprintf(err, errlen, "source.credentials_file '%s': the first line must be user:password",
                 path);
        st = BN_ERR_CONFIG;
    } else {
        *colon = '\0';
        snprintf(user, user_len, "%s", line);
        snprintf(pw, pw_len, "%s", colon + 1);
    }
    explicit_bzero(line, sizeof line);
    return st;
}

bn_status rtsp_configure_src(GstElement *src, const source_config *s, char *err, size_t errlen)
{
    char clean[BN_PATH_MAX], user[256], pw[256];
    bn_status st = rtsp_url_split(s->url, clean, sizeof clean, user, sizeof user, pw, sizeof pw,
                                  err, errlen);
    if (st == BN_OK && s->credentials_file[0])
        st = rtsp_read_credentials(s->credentials_file, user, sizeof user, pw, sizeof pw, err,
                                   errlen);
    if (st == BN_OK) {
        static const char *const protocols[] = {"udp+udp-mcast+tcp", "tcp", "udp+udp-mcast"};
        g_object_set(src, "location", clean, "latency", (guint)s->latency_ms, "tcp-timeout",
                     (guint64)RTSP_TCP_TIMEOUT_US, NULL);
        gst_util_set_object_arg(G_OBJECT(src), "protocols", protocols[s->transport]);
        if (user[0])
            g_object_set(src, "user-id", user, "user-pw", pw, NULL);
    }
    explicit_bzero(pw, sizeof pw);
    return st;
}

bool rtsp_explain_error(const GError *e, const char *debug, char *buf, size_t len, bn_status *st)
{
    if (!e || e->domain != GST_RESOURCE_ERROR)
        return false;
    if (e->code == GST_RESOURCE_ERROR_NOT_AUTHORIZED ||
        (debug && strstr(debug, "Unauthorized"))) {
        snprintf(buf, len, "the RTSP server refused the credentials (401 Unauthorized): check "
                           "the user and password in source.url or source.credentials_file");
        *st = BN_ERR_PERMISSION;
        return true;
    }
    if (e->code == GST_RESOURCE_ERROR_NOT_FOUND && debug && strstr(debug, "Not Found")) {
        snprintf(buf, len, "the RTSP server has no stream at this path (404 Not Found)");
        *st = BN_ERR_IO;
        return true;
    }
    if (e->code == GST_RESOURCE_ERROR_OPEN_READ_WRITE || e->code == GST_RESOURCE_ERROR_OPEN_READ) {
        const char *d = debug ? strrchr(debug, '\n') : NULL;
        snprintf(buf, len, "cannot connect to the RTSP server (nothing listens there, the host "
                           "is unreachable or its name does not resolve): %s",
                 d ? d + 1 : e->message);
        *st = BN_ERR_NO_DEVICE;   /* a camera that is down or still booting: wait for it */
        return true;
    }
    return false;
}
