/* What the HTTP server's parts share (not a public interface):
 *   http.c        listening socket, accept loop, limits, routing, the small endpoints
 *   http_media.c  the latest frame as JPEG (/snapshot.jpg), MJPEG (/stream.mjpg), Server-
 *                 Sent Events (/events): long-lived responses fed from the main loop
 *   http_page.c   the live page (/), one self-contained HTML document
 *   http_intake.c a connection's request head, checked before SoupServer takes it
 * Everything runs on the main context's thread. */
#ifndef BN_HTTP_INTERNAL_H
#define BN_HTTP_INTERNAL_H

#include <libsoup/soup.h>

#include "http.h"
#include "picture.h"

/* Open connections, shared with a weak reference on each: SoupServer may drop a connection
 * after http_close freed the server, so the count outlives it. */
typedef struct {
    int refs;
    int open;
} conn_tally;

/* One encoded picture, kept while it is the newest of its kind: every viewer of a frame
 * gets the same bytes. */
typedef struct {
    uint64_t seq;                   /* frame, 0: empty */
    picture_opts opts;
    GBytes *jpeg;
    gint64 used_us;
} picture_cache;
#define HTTP_PICTURE_CACHE 4

typedef struct http_stream http_stream;
typedef struct http_intake http_intake;

/* The longest request head taken (request line and headers); longer ones get 431. */
#define HTTP_HEAD_MAX 32768

struct http_server {
    SoupServer *soup;
    GMainContext *ctx;
    GSource *accept_src;
    int fd;
    http_listen addr;
    char address[HTTP_UNIX_PATH_MAX + 16];
    bool created_path;              /* a Unix socket file this server made */
    dev_t path_dev;
    ino_t path_ino;
    int max_clients;
    int stream_fps;
    conn_tally *tally;
    http_handlers h;
    uint64_t requests, rejected;
    bool warned_accept;
    picture_cache pics[HTTP_PICTURE_CACHE];
    http_stream *streams;           /* open /stream.mjpg and /events responses */
    int n_mjpeg, n_events;
    GSource *mjpeg_timer;           /* while any /stream.mjpg is open */
    uint64_t jpegs, events_lost;
    http_auth *auth;                /* NULL: no authentication */
    uint64_t auth_failed;
    http_intake *intakes;           /* connections whose request head is not yet checked */
    int intake_ep;                  /* their edge-triggered epoll set */
    GSource *intake_src, *intake_sweep;
    char intake_buf[HTTP_HEAD_MAX]; /* where heads are peeked at (main thread only) */
};

/* http.c */
void http_respond(SoupServerMessage *msg, guint status, const char *type, const char *body,
                  size_t len);
/* o is consumed; NULL answers 500. */
void http_respond_json(SoupServerMessage *msg, guint status, json_t *o);
__attribute__((format(printf, 3, 4))) void http_respond_error(SoupServerMessage *msg,
                                                              guint status, const char *fmt,
                                                              ...);

/* The connection on to SoupServer (counted in tally->open until it ends). */
void http_adopt(http_server *s, int fd);
/* A short JSON error answer whole (status line, headers, body) into resp, for a connection
 * answered outside SoupServer: its length. */
int http_format_refusal(char *resp, size_t cap, const char *status, const char *extra_headers,
                        const char *text);
/* GET and HEAD: the methods the endpoints answer. */
bool http_method_allowed(const char *m);

/* http_intake.c */
/* Takes fd (counted in tally->open meanwhile): its request head is peeked at and checked,
 * then the connection goes on to http_adopt, or is answered and closed here. */
bn_status http_intake_open(http_server *s, char *err, size_t errlen);
void http_intake_start(http_server *s, int fd);
/* Closes the waiting connections and the epoll set (safe after a failed or no open). */
void http_intake_close(http_server *s);

/* http_media.c */
void http_serve_snapshot(http_server *s, SoupServerMessage *msg, GHashTable *query);
void http_serve_stream(http_server *s, SoupServerMessage *msg, GHashTable *query);
void http_serve_events(http_server *s, SoupServerMessage *msg, GHashTable *query);
/* /events/ (the saved change events) and /events/NAME.jpg|json (name: after "/events/"). */
void http_serve_event_file(http_server *s, SoupServerMessage *msg, const char *name);
/* Ends every long-lived response (http_close, before SoupServer disconnects). */
void http_media_close(http_server *s);

/* http_page.c */
extern const char http_page_html[];
extern const size_t http_page_len;

#endif
