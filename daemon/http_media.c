/* The HTTP server's pictures and event stream (see http_internal.h): /snapshot.jpg encodes
 * the newest frame when asked; /stream.mjpg sends it as multipart/x-mixed-replace parts at a
 * fixed rate, a part only once the previous one is written (a slow viewer gets fewer
 * frames, never a backlog); /events sends the published JSON lines as Server-Sent Events,
 * label messages at most every HTTP_EVENTS_LABEL_MS per client; /events/ lists the saved
 * change events and serves their files. One encoding of a frame
 * serves every viewer that asks for the same picture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn_log.h"
#include "event_store.h"
#include "http_internal.h"

#define MOD "http"
#define BOUNDARY "bnframe"
/* A viewer gets the frame again after this long without a new one (the source stalled),
 * so that it can tell a stall from a dead connection. */
#define MJPEG_REPEAT_US (2 * G_USEC_PER_SEC)

typedef enum { STREAM_MJPEG, STREAM_EVENTS } stream_kind;

struct http_stream {
    http_stream *next;
    http_server *s;
    SoupServerMessage *msg;         /* a reference */
    stream_kind kind;
    picture_opts opts;
    GSource *timer;                 /* /events: keepalive */
    gint64 interval_us, next_us;    /* /stream.mjpg: part period, next part due */
    uint64_t queued, written;       /* body bytes handed to SoupServer / written by it */
    uint64_t last_seq;
    gint64 last_sent_us, last_label_us;
};

/* ---- options --------------------------------------------------------------------------- */

static const char *query_get(GHashTable *query, const char *key)
{
    return query ? g_hash_table_lookup(query, key) : NULL;
}

/* 1..max from a query value; false when it is anything else. */
static bool query_int(const char *v, int max, int *out)
{
    char *end;
    if (!v || !*v)
        return false;
    long n = strtol(v, &end, 10);
    if (*end || n < 1 || n > max)
        return false;
    *out = (int)n;
    return true;
}

/* ?overlay=0|1 and ?scale=1..16; answers 400 and returns false on a bad value. */
static bool parse_picture_opts(SoupServerMessage *msg, GHashTable *query, picture_opts *o)
{
    memset(o, 0, sizeof *o);
    const char *ov = query_get(query, "overlay");
    if (ov) {
        if (!strcmp(ov, "1") || !strcmp(ov, "true") || !*ov)
            o->overlay = true;
        else if (strcmp(ov, "0") && strcmp(ov, "false")) {
            http_respond_error(msg, SOUP_STATUS_BAD_REQUEST,
                               "overlay=%.40s: expected overlay=1 or overlay=0", ov);
            return false;
        }
    }
    const char *sc = query_get(query, "scale");
    if (sc && !query_int(sc, PICTURE_SCALE_MAX, &o->scale)) {
        http_respond_error(msg, SOUP_STATUS_BAD_REQUEST,
                           "scale=%.40s: expected a whole factor from 1 to %d", sc,
                           PICTURE_SCALE_MAX);
        return false;
    }
    return true;
}

/* ---- pictures -------------------------------------------------------------------------- */

/* The JPEG of f with o (a new reference), from the cache when this frame was encoded so
 * already; NULL when encoding failed (logged once per frame). */
static GBytes *picture_get(http_server *s, const frame_copy *f, const picture_opts *o)
{
    gint64 now = g_get_monotonic_time();
    picture_cache *victim = &s->pics[0];
    for (int i = 0; i < HTTP_PICTURE_CACHE; i++) {
        picture_cache *p = &s->pics[i];
        if (p->jpeg && p->seq == f->seq && p->opts.overlay == o->overlay &&
            p->opts.scale == o->scale) {
            p->used_us = now;
            return g_bytes_ref(p->jpeg);
        }
        if (!p->jpeg || (victim->jpeg && p->used_us < victim->used_us))
            victim = p;
    }
    uint8_t *buf;
    size_t len;
    char err[256];
    const char *label = s->h.label_name ? s->h.label_name(s->h.user, f->class_id) : "?";
    if (picture_jpeg(f, label, o, &buf, &len, err, sizeof err) != BN_OK) {
        BN_LOGW(MOD, "frame %llu: %s", (unsigned long long)f->seq, err);
        return NULL;
    }
    s->jpegs++;
    if (victim->jpeg)
        g_bytes_unref(victim->jpeg);
    victim->jpeg = g_bytes_new_with_free_func(buf, len, free, buf);
    victim->seq = f->seq;
    victim->opts = *o;
    victim->used_us = now;
    return g_bytes_ref(victim->jpeg);
}

static const frame_copy *newest_frame(http_server *s)
{
    return s->h.frame ? s->h.frame(s->h.user) : NULL;
}

void http_serve_snapshot(http_server *s, SoupServerMessage *msg, GHashTable *query)
{
    picture_opts o;
    if (!parse_picture_opts(msg, query, &o))
        return;
    const frame_copy *f = newest_frame(s);
    if (!f) {
        http_respond_error(msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                           "no frame yet: nothing has been classified since the source started");
        return;
    }
    GBytes *jpeg = picture_get(s, f, &o);
    frame_copy_unref(f);
    if (!jpeg) {
        http_respond_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "cannot encode the frame");
        return;
    }
    gsize len;
    const char *data = g_bytes_get_data(jpeg, &len);
    http_respond(msg, SOUP_STATUS_OK, "image/jpeg", data, len);
    g_bytes_unref(jpeg);
}

/* ---- long-lived responses -------------------------------------------------------------- */

static void stream_free(http_stream *st)
{
    http_server *s = st->s;
    for (http_stream **pp = &s->streams; *pp; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    if (st->kind == STREAM_MJPEG) {
        if (--s->n_mjpeg == 0 && s->mjpeg_timer) {
            g_source_destroy(s->mjpeg_timer);
            g_source_unref(s->mjpeg_timer);
            s->mjpeg_timer = NULL;
        }
    } else {
        s->n_events--;
    }
    if (st->timer) {
        g_source_destroy(st->timer);
        g_source_unref(st->timer);
    }
    g_signal_handlers_disconnect_by_data(st->msg, st);
    g_object_unref(st->msg);
    free(st);
}

static void on_stream_finished(SoupServerMessage *msg, gpointer data)
{
    (void)msg;
    stream_free(data);
}

static void on_wrote_body_data(SoupServerMessage *msg, guint n, gpointer data)
{
    (void)msg;
    http_stream *st = data;
    st->written += n;
}

static void stream_append(http_stream *st, GBytes *b)
{
    SoupMessageBody *body = soup_server_message_get_response_body(st->msg);
    st->queued += g_bytes_get_size(b);
    soup_message_body_append_bytes(body, b);
    st->last_sent_us = g_get_monotonic_time();
    soup_server_message_unpause(st->msg);   /* SoupServer paused when it ran out of body */
}

static void stream_append_static(http_stream *st, const char *text)
{
    GBytes *b = g_bytes_new_static(text, strlen(text));
    stream_append(st, b);
    g_bytes_unref(b);
}

/* Headers of a response whose body is written as it comes; NULL for HEAD (answered with the
 * headers alone). */
static http_stream *stream_begin(http_server *s, SoupServerMessage *msg, stream_kind kind,
                                 const char *type)
{
    if (!strcmp(soup_server_message_get_method(msg), "HEAD")) {
        http_respond(msg, SOUP_STATUS_OK, type, "", 0);
        return NULL;
    }
    http_stream *st = calloc(1, sizeof *st);
    if (!st) {
        http_respond_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "out of memory");
        return NULL;
    }
    st->s = s;
    st->kind = kind;
    st->msg = g_object_ref(msg);
    soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
    SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(h, "Cache-Control", "no-store");
    soup_message_headers_replace(h, "Connection", "close");
    soup_message_headers_replace(h, "X-Accel-Buffering", "no"); /* a proxy must not buffer */
    soup_message_headers_set_content_type(h, type, NULL);
    soup_message_headers_set_encoding(h, SOUP_ENCODING_CHUNKED);
    soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);
    g_signal_connect(msg, "wrote-body-data", G_CALLBACK(on_wrote_body_data), st);
    g_signal_connect(msg, "finished", G_CALLBACK(on_stream_finished), st);
    st->next = s->streams;
    s->streams = st;
    if (kind == STREAM_MJPEG)
        s->n_mjpeg++;
    else
        s->n_events++;
    return st;
}

static void stream_timer(http_stream *st, guint ms, GSourceFunc fn)
{
    st->timer = g_timeout_source_new(ms);
    g_source_set_callback(st->timer, fn, st, NULL);
    g_source_attach(st->timer, st->s->ctx);
}

/* One MJPEG part: the newest frame, unless the viewer has not read the last part yet or
 * already has this frame. */
static void mjpeg_send(http_stream *st, gint64 now)
{
    http_server *s = st->s;
    if (st->queued > st->written)
        return;
    const frame_copy *f = newest_frame(s);
    if (!f)
        return;
    if (f->seq == st->last_seq && now - st->last_sent_us < MJPEG_REPEAT_US) {
        frame_copy_unref(f);
        return;
    }
    GBytes *jpeg = picture_get(s, f, &st->opts);
    st->last_seq = f->seq;
    frame_copy_unref(f);
    if (!jpeg)
        return;
    char head[160];
    int n = snprintf(head, sizeof head,
                     "--" BOUNDARY "\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\n\r\n",
                     g_bytes_get_size(jpeg));
    GBytes *hb = g_bytes_new(head, (gsize)n);
    stream_append(st, hb);
    g_bytes_unref(hb);
    stream_append(st, jpeg);
    g_bytes_unref(jpeg);
    stream_append_static(st, "\r\n");
}

/* Parts fall due at whole multiples of their period on one clock, so that viewers at the
 * same rate are served in the same tick, from the same frame and the same encoding. */
static void mjpeg_schedule(http_stream *st, gint64 now)
{
    st->next_us = (now / st->interval_us + 1) * st->interval_us;
}

static gboolean on_mjpeg_tick(gpointer data);

/* One timer for every viewer, set for the earliest part due. */
static void mjpeg_arm(http_server *s, gint64 now)
{
    gint64 due = G_MAXINT64;
    for (http_stream *st = s->streams; st; st = st->next)
        if (st->kind == STREAM_MJPEG && st->next_us < due)
            due = st->next_us;
    if (s->mjpeg_timer) {
        g_source_destroy(s->mjpeg_timer);
        g_source_unref(s->mjpeg_timer);
        s->mjpeg_timer = NULL;
    }
    if (due == G_MAXINT64)
        return;
    gint64 ms = due > now ? (due - now + 999) / 1000 : 0;
    s->mjpeg_timer = g_timeout_source_new((guint)ms);
    g_source_set_callback(s->mjpeg_timer, on_mjpeg_tick, s, NULL);
    g_source_attach(s->mjpeg_timer, s->ctx);
}

static gboolean on_mjpeg_tick(gpointer data)
{
    http_server *s = data;
    gint64 now = g_get_monotonic_time();
    for (http_stream *st = s->streams; st; st = st->next)
        if (st->kind == STREAM_MJPEG && now >= st->next_us) {
            mjpeg_send(st, now);
            mjpeg_schedule(st, now);
        }
    g_source_unref(s->mjpeg_timer); /* this one-shot source ends with this call */
    s->mjpeg_timer = NULL;
    mjpeg_arm(s, now);
    return G_SOURCE_REMOVE;
}

void http_serve_stream(http_server *s, SoupServerMessage *msg, GHashTable *query)
{
    picture_opts o;
    if (!parse_picture_opts(msg, query, &o))
        return;
    int fps = s->stream_fps > 0 ? s->stream_fps : 5;
    const char *fv = query_get(query, "fps");
    if (fv && !query_int(fv, HTTP_STREAM_FPS_MAX, &fps)) {
        http_respond_error(msg, SOUP_STATUS_BAD_REQUEST, "fps=%.40s: expected 1 to %d", fv,
                           HTTP_STREAM_FPS_MAX);
        return;
    }
    http_stream *st =
        stream_begin(s, msg, STREAM_MJPEG, "multipart/x-mixed-replace;boundary=" BOUNDARY);
    if (!st)
        return;
    st->opts = o;
    st->interval_us = G_USEC_PER_SEC / fps;
    gint64 now = g_get_monotonic_time();
    mjpeg_send(st, now); /* the first picture at once */
    mjpeg_schedule(st, now);
    mjpeg_arm(s, now);
}

static gboolean on_events_tick(gpointer data)
{
    http_stream *st = data;
    if (g_get_monotonic_time() - st->last_sent_us >= HTTP_EVENTS_KEEPALIVE_S * G_USEC_PER_SEC &&
        st->queued == st->written)
        stream_append_static(st, ": keepalive\n\n");
    return G_SOURCE_CONTINUE;
}

/* "data: {...}\n\n" of a message line ("{...}\n"). */
static GBytes *event_bytes(const pub_msg *m)
{
    size_t n = m->len && m->data[m->len - 1] == '\n' ? m->len - 1 : m->len;
    char *b = malloc(n + 8);
    if (!b)
        return NULL;
    memcpy(b, "data: ", 6);
    memcpy(b + 6, m->data, n);
    memcpy(b + 6 + n, "\n\n", 2);
    return g_bytes_new_with_free_func(b, n + 8, free, b);
}

void http_serve_events(http_server *s, SoupServerMessage *msg, GHashTable *query)
{
    (void)query;
    http_stream *st = stream_begin(s, msg, STREAM_EVENTS, "text/event-stream");
    if (!st)
        return;
    stream_timer(st, 1000, on_events_tick);
    stream_append_static(st, "retry: 2000\n\n");
    pub_msg *hello = s->h.hello ? s->h.hello(s->h.user) : NULL;
    if (hello) {
        GBytes *b = event_bytes(hello);
        if (b) {
            stream_append(st, b);
            g_bytes_unref(b);
        }
        pub_msg_unref(hello);
    }
}

void http_publish(http_server *s, const pub_msg *m)
{
    if (!s || s->n_events == 0 || !m)
        return;
    GBytes *b = NULL;
    gint64 now = g_get_monotonic_time();
    for (http_stream *st = s->streams; st; st = st->next) {
        if (st->kind != STREAM_EVENTS)
            continue;
        if (m->kind == MSG_LABEL) {
            if (st->last_label_us && now - st->last_label_us < HTTP_EVENTS_LABEL_MS * 1000)
                continue;
            st->last_label_us = now;
        }
        if (st->queued - st->written > HTTP_EVENTS_BACKLOG_MAX) {
            s->events_lost++;
            continue;
        }
        if (!b && !(b = event_bytes(m)))
            return;
        stream_append(st, b);
    }
    if (b)
        g_bytes_unref(b);
}

void http_media_close(http_server *s)
{
    while (s->streams)
        stream_free(s->streams);
    for (int i = 0; i < HTTP_PICTURE_CACHE; i++)
        if (s->pics[i].jpeg) {
            g_bytes_unref(s->pics[i].jpeg);
            s->pics[i].jpeg = NULL;
        }
}

/* ---- saved change events: /events/ and /events/NAME.jpg|json ----------------------------- */

void http_serve_event_file(http_server *s, SoupServerMessage *msg, const char *name)
{
    if (!name[0]) {
        json_t *list = s->h.event_list ? s->h.event_list(s->h.user) : NULL;
        if (!list) {
            http_respond_error(msg, SOUP_STATUS_NOT_FOUND,
                               "event snapshots are off (the config has no events: section)");
            return;
        }
        http_respond_json(msg, SOUP_STATUS_OK,
                          json_pack("{s:s, s:o}", "type", "events", "events", list));
        return;
    }
    /* Only the store's own names: no '/', no '..', no '%', nothing to resolve. */
    uint8_t *data = NULL;
    size_t len = 0;
    bn_status st = BN_ERR_NO_DATA;
    if (event_store_valid_file(name) && s->h.event_file)
        st = s->h.event_file(s->h.user, name, &data, &len);
    if (st == BN_OK) {
        bool jpg = g_str_has_suffix(name, ".jpg");
        http_respond(msg, SOUP_STATUS_OK, jpg ? "image/jpeg" : "application/json",
                     (const char *)data, len);
    } else if (st == BN_ERR_UNSUPPORTED) {
        http_respond_error(msg, SOUP_STATUS_NOT_FOUND,
                           "event snapshots are off (the config has no events: section)");
    } else if (st == BN_ERR_NO_DATA) {
        http_respond_error(msg, SOUP_STATUS_NOT_FOUND,
                           "no such event file: %.100s (/events/ lists them)", name);
    } else {
        http_respond_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "cannot read %.100s", name);
    }
    free(data);
}
