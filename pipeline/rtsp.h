/* RTSP sources: the URL and credential handling that keeps passwords out of every log line,
 * message and stats field, and the rtspsrc settings capture.c applies. The password is read
 * from the URL or from source.credentials_file at each (re)connect and handed to rtspsrc as a
 * property; what is printed is always the URL with its user info masked. */
#ifndef BN_RTSP_H
#define BN_RTSP_H

#include <gst/gst.h>
#include <stdbool.h>
#include <stddef.h>

#include "bn_error.h"
#include "source_config.h"

/* Checks that url is rtsp:// or rtsps:// with a host (config-time). BN_OK or BN_ERR_CONFIG
 * with a message that never contains the URL's password. */
bn_status rtsp_url_check(const char *url, char *err, size_t errlen);

/* url with its user info (user:password before the host) replaced by three stars:
 * safe to print. */
void rtsp_url_mask(const char *url, char *out, size_t len);

/* Splits url into the same URL without user info and the user and password it carried
 * (percent-decoded; empty when absent). */
bn_status rtsp_url_split(const char *url, char *clean, size_t clean_len, char *user,
                         size_t user_len, char *pw, size_t pw_len, char *err, size_t errlen);

/* First line of path as user:password (the password may contain ':'). */
bn_status rtsp_read_credentials(const char *path, char *user, size_t user_len, char *pw,
                                size_t pw_len, char *err, size_t errlen);

/* Sets location, protocols, latency and credentials on an rtspsrc element. */
bn_status rtsp_configure_src(GstElement *src, const source_config *s, char *err, size_t errlen);

/* A reason a user can act on for an rtspsrc ERROR (wrong credentials, nothing listening,
 * unknown host) and its status (BN_ERR_NO_DEVICE for a server that does not answer: retried
 * even at start), or false when the error is not one of those. */
bool rtsp_explain_error(const GError *e, const char *debug, char *buf, size_t len, bn_status *st);

#endif
