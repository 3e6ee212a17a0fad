/* The optional HTTP server (docs/http.md): libsoup-3.0's SoupServer on the daemon's GLib
 * main context, serving GET /metrics, /api/state, /healthz, the latest frame
 * (/snapshot.jpg, /stream.mjpg), the published messages as Server-Sent Events (/events)
 * and the live page (/) from callbacks. The listening
 * socket is the module's own (bound before anything is served, so a reload can bind a new
 * one while the old still runs); it accepts connections itself to enforce max_clients and an
 * idle timeout, and hands each one to SoupServer, which answers one request on it and closes
 * it. No threads. */
#ifndef BN_HTTP_H
#define BN_HTTP_H

#include <glib.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"
#include "config_http.h"
#include "frame_slot.h"
#include "http_auth.h"
#include "outqueue.h"

/* Largest request body read (and ignored); a larger one is answered 413. */
#define HTTP_BODY_MAX 1024
/* A connection with nothing to read or write for this long is closed. */
#define HTTP_IDLE_TIMEOUT_S 30
/* /stream.mjpg?fps=N accepts 1..this. */
#define HTTP_STREAM_FPS_MAX 30
/* /events: label messages at most this often per client (change and source events always). */
#define HTTP_EVENTS_LABEL_MS 200
/* /events: a comment line when nothing was sent for this long (keeps proxies from closing). */
#define HTTP_EVENTS_KEEPALIVE_S 15
/* /events: a client this many bytes behind loses messages instead of growing the queue. */
#define HTTP_EVENTS_BACKLOG_MAX (256 * 1024)

typedef struct http_server http_server;

/* What the endpoints serve, asked for at each request (on the main context's thread). */
typedef struct {
    char *(*metrics)(void *user);   /* Prometheus text, malloc'd; NULL: 500 */
    json_t *(*state)(void *user);   /* /api/state, a new reference; NULL: 500 */
    /* true when frames flow; otherwise false and why (one line) */
    bool (*health)(void *user, char *why, size_t whylen);
    /* the newest classified frame, a new reference (frame_copy_unref); NULL: none yet */
    const frame_copy *(*frame)(void *user);
    /* the label of a class, for the overlay ("?" when out of range) */
    const char *(*label_name)(void *user, int class_id);
    /* the hello message /events starts with, a new reference; NULL: none */
    pub_msg *(*hello)(void *user);
    /* the saved change events, newest first (event_store_list); NULL: no events: section */
    json_t *(*event_list)(void *user);
    /* one file of them (a name event_store_valid_file accepts), malloc'd into *out;
     * BN_ERR_NO_DATA: no such file, BN_ERR_UNSUPPORTED: no events: section */
    bn_status (*event_file)(void *user, const char *name, uint8_t **out, size_t *len);
    /* the server is gone (http_close), e.g. to stop keeping frames; may be NULL */
    void (*closed)(void *user);
    void *user;
} http_handlers;

typedef struct {
    uint64_t requests;              /* requests answered, any status */
    uint64_t rejected;              /* connections refused: max_clients reached */
    int connected;
    int streams;                    /* /stream.mjpg responses open */
    int event_clients;              /* /events responses open */
    uint64_t jpegs;                 /* JPEG pictures encoded (one serves every viewer) */
    uint64_t events_lost;           /* /events messages dropped for slow clients */
    uint64_t auth_failed;           /* requests answered 401 */
} http_stats;

/* Binds cfg->listen (a loopback address, or any when cfg->allow_remote) and starts serving
 * on ctx (NULL: the default context). Errors name the address and the reason. */
bn_status http_open(const http_config *cfg, const http_handlers *h, GMainContext *ctx,
                    http_server **out, char *err, size_t errlen);
/* Every endpoint but /healthz asks for a user of auth (taken over; NULL: no authentication)
 * from now on (http_auth.h). */
void http_set_auth(http_server *s, http_auth *auth);
/* Stops listening, closes every connection and removes a Unix socket this server created.
 * Idempotent on NULL. */
void http_close(http_server *s);
/* A new limit applies to connections accepted from now on. */
void http_set_max_clients(http_server *s, int max_clients);
void http_get_stats(const http_server *s, http_stats *out);
/* A published message (hello excluded) for the /events clients. NULL s: nothing. */
void http_publish(http_server *s, const pub_msg *m);
/* The address as bound ("127.0.0.1:8080", "[::1]:8080", a path). */
const char *http_address(const http_server *s);

#endif
