/* The optional HTTP server (docs/http.md): libsoup-3.0's SoupServer on the daemon's GLib
 * main context, serving GET /metrics, /api/state and /healthz from callbacks. The listening
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

/* Largest request body read (and ignored); a larger one is answered 413. */
#define HTTP_BODY_MAX 1024
/* A connection with nothing to read or write for this long is closed. */
#define HTTP_IDLE_TIMEOUT_S 30

typedef struct http_server http_server;

/* What the endpoints serve, asked for at each request (on the main context's thread). */
typedef struct {
    char *(*metrics)(void *user);   /* Prometheus text, malloc'd; NULL: 500 */
    json_t *(*state)(void *user);   /* /api/state, a new reference; NULL: 500 */
    /* true when frames flow; otherwise false and why (one line) */
    bool (*health)(void *user, char *why, size_t whylen);
    void *user;
} http_handlers;

typedef struct {
    uint64_t requests;              /* requests answered, any status */
    uint64_t rejected;              /* connections refused: max_clients reached */
    int connected;
} http_stats;

/* Binds cfg->listen (a loopback address, or any when cfg->allow_remote) and starts serving
 * on ctx (NULL: the default context). Errors name the address and the reason. */
bn_status http_open(const http_config *cfg, const http_handlers *h, GMainContext *ctx,
                    http_server **out, char *err, size_t errlen);
/* Stops listening, closes every connection and removes a Unix socket this server created.
 * Idempotent on NULL. */
void http_close(http_server *s);
/* A new limit applies to connections accepted from now on. */
void http_set_max_clients(http_server *s, int max_clients);
void http_get_stats(const http_server *s, http_stats *out);
/* The address as bound ("127.0.0.1:8080", "[::1]:8080", a path). */
const char *http_address(const http_server *s);

#endif
