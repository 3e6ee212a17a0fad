/* basisnetd runtime (see app.h). Everything except inference runs on the default GLib main
 * context: results arrive through infer's eventfd, clients through server, signals through
 * g_unix_signal_add, and one housekeeping tick drives fps, STATUS= and the watchdog. */
#include "app.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "basisnet.h"
#include "bn_log.h"
#include "budget.h"
#include "capture.h"
#include "config.h"
#include "debounce.h"
#include "infer.h"
#include "mqtt.h"
#include "outqueue.h"
#include "protocol.h"
#include "server.h"
#include "stats.h"

#define MOD "daemon"
#define DRAIN_BATCH 32
#define STOP_FLUSH_MS 500

/* What a reload replaces as a whole: the model, its session and the budget controller. */
typedef struct {
    bn_model *model;
    bn_session *session;
    budget_ctl *budget;
    budget_params bp;
} engine_set;

typedef struct {
    app_options opt;
    bn_config cfg;
    engine_set eng;
    const bn_model_info *info;
    capture *cap;
    infer *inf;
    server *srv;
    mqtt_client *mqtt;          /* NULL without an mqtt: section */
    GMainLoop *loop;
    GSource *result_src, *tick_src;
    GSource *retry_src;         /* pending source re-open (camera missing at start/reload) */
    int retry_ms;
    guint sig_term, sig_int, sig_hup;

    daemon_stats stats;
    debounce deb;
    uint64_t label_seq, change_seq, dropped_frames;
    pub_msg *hello;

    capture_state src_state;
    bool src_was_lost;
    char src_msg[512];

    bool ready;
    uint64_t wd_usec;           /* 0: no watchdog */
    gint64 last_progress_us, last_status_us, last_mqtt_stats_us, start_us;
    uint64_t tick_frames, tick_heartbeat;
    double fps;
    gint64 fps_time_us;
    uint64_t fps_frames;

    uint64_t reloads_ok, reloads_failed;
    char reload_error[1024];
    int exit_code;
} app;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static const char *capture_state_name(capture_state s)
{
    switch (s) {
    case CAPTURE_STARTING: return "starting";
    case CAPTURE_RUNNING: return "running";
    case CAPTURE_LOST: return "lost";
    case CAPTURE_EOS: return "eos";
    }
    return "?";
}

/* ---- engine set --------------------------------------------------------------------------- */

static void engine_set_free(engine_set *e)
{
    budget_free(e->budget);
    e->budget = NULL;
    bn_session_free(e->session);
    e->session = NULL;
    bn_model_close(e->model);
    e->model = NULL;
}

static void budget_params_from_config(const bn_config *cfg, budget_params *bp)
{
    budget_params_init(bp);
    bp->mode = cfg->budget.mode;
    bp->latency_ms = cfg->budget.latency_ms;
    bp->min = cfg->budget.min;
    bp->max = cfg->budget.max;
    bp->window = cfg->budget.window;
    bp->horizon = cfg->budget.horizon;
    bp->fixed_threshold = cfg->engine.threshold;
}

/* Runs both stages once on a grey image: warms caches and gives the budget controller
 * measured cost guesses, so the first real frames already respect the budget. */
static void warm_up(engine_set *e, uint64_t *t_light, uint64_t *t_spec)
{
    const bn_model_info *mi = bn_model_get_info(e->model);
    size_t stride = (size_t)mi->width * (size_t)mi->channels;
    uint8_t *img = malloc(stride * (size_t)mi->height);
    *t_light = *t_spec = 0;
    if (!img)
        return;
    memset(img, 128, stride * (size_t)mi->height);
    bn_result r;
    if (bn_run_light(e->session, img, stride, &r) == BN_OK) {
        *t_light = r.ns_light;
        if (bn_run_specialist(e->session, &r) == BN_OK)
            *t_spec = r.ns_synth + r.ns_specialist;
    }
    free(img);
}

static budget_ctl *budget_create(const budget_params *bp, const bn_model_info *mi,
                                 uint64_t t_light, uint64_t t_spec, char *err, size_t errlen)
{
    budget_ctl *b = NULL;
    if (budget_new(bp, &b, err, errlen) != BN_OK)
        return NULL;
    budget_calibrate(b, mi->val_light_confidence, mi->n_val_light_confidence, t_light, t_spec);
    return b;
}

static bn_status engine_set_open(const bn_config *cfg, engine_set *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    char msg[1024];
    bn_status st = bn_model_open(cfg->model, &e->model, msg, sizeof msg);
    if (st != BN_OK) {
        snprintf(err, errlen, "model %s: %s", cfg->model, msg);
        return st;
    }
    bn_session_params sp = {.threads = cfg->engine.threads};
    st = bn_session_new(e->model, sp, &e->session, msg, sizeof msg);
    if (st != BN_OK) {
        snprintf(err, errlen, "model %s: session: %s", cfg->model, msg);
        engine_set_free(e);
        return st;
    }
    budget_params_from_config(cfg, &e->bp);
    uint64_t tl, ts;
    warm_up(e, &tl, &ts);
    e->budget = budget_create(&e->bp, bn_model_get_info(e->model), tl, ts, msg, sizeof msg);
    if (!e->budget) {
        snprintf(err, errlen, "%s", msg);
        engine_set_free(e);
        return BN_ERR_CONFIG;
    }
    return BN_OK;
}

/* ---- messages ------------------------------------------------------------------------------ */

static json_t *budget_json(const budget_params *bp)
{
    return json_pack("{s:s, s:f, s:f, s:f, s:f}", "mode",
                     budget_mode_name(bp->mode), "latency_ms",
                     proto_round(bp->latency_ms, 4), "min", proto_round(bp->min, 4), "max",
                     proto_round(bp->max, 4), "fixed_threshold",
                     proto_round(bp->fixed_threshold, 4));
}

static pub_msg *json_to_msg(json_t *o, msg_kind kind)
{
    if (!o)
        return NULL;
    size_t len;
    char *line = proto_dump_line(o, &len);
    json_decref(o);
    if (!line)
        return NULL;
    pub_msg *m = pub_msg_new(kind, line, len);
    free(line);
    return m;
}

static const char *label_name(const app *a, int class_id)
{
    if (class_id >= 0 && class_id < a->info->num_classes)
        return a->info->labels[class_id];
    return "?";
}

static void rebuild_hello(app *a)
{
    json_t *labels = json_array();
    for (int i = 0; i < a->info->num_classes; i++)
        json_array_append_new(labels, json_string(a->info->labels[i]));
    json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:o, s:{s:i, s:i, s:i, s:i, s:i}, s:o}",
                          "type", "hello", "v", PROTO_VERSION, "daemon", "basisnetd", "version",
                          BASISNETD_VERSION, "camera", a->cfg.camera, "model",
                          a->info->name ? a->info->name : "", "labels", labels, "input", "width",
                          a->info->width, "height", a->info->height, "channels",
                          a->info->channels, "light_width", a->info->light_width,
                          "light_height", a->info->light_height, "budget",
                          budget_json(&a->eng.bp));
    if (o) {    /* the current state, so a late subscriber knows it at once */
        json_object_set_new(o, "stable", a->deb.stable >= 0
                                             ? json_string(label_name(a, a->deb.stable))
                                             : json_null());
        json_object_set_new(o, "source", json_pack("{s:s, s:s}", "state",
                                                   capture_state_name(a->src_state), "message",
                                                   a->src_msg));
    }
    pub_msg_unref(a->hello);
    a->hello = json_to_msg(o, MSG_HELLO);
}

static pub_msg *hello_cb(void *user)
{
    app *a = user;
    return pub_msg_ref(a->hello);
}

/* Every published message goes to the socket's subscribers and, when configured, MQTT. */
static void publish(app *a, pub_msg *m, mqtt_topic topic)
{
    if (!m)
        return;
    server_publish(a->srv, m);
    if (a->mqtt)
        mqtt_publish(a->mqtt, topic, m->data, m->len);
}

static void publish_source(app *a, const char *state, const char *message)
{
    pub_msg *m = json_to_msg(proto_source_json(real_ns(), state, message), MSG_SOURCE);
    publish(a, m, MQTT_SOURCE);
    pub_msg_unref(m);
}

static void print_label(const proto_label *l)
{
    char t[40];
    proto_format_time(l->time_ns, t, sizeof t);
    printf("%s  %-12s %.3f  %-10s %7.2f ms%s%s%s\n", t, l->label, l->score,
           l->stage == BN_STAGE_SPECIALIST ? "specialist" : "light", l->ms_total,
           l->reason ? "  (" : "", l->reason ? l->reason : "", l->reason ? ")" : "");
}

static void publish_result(app *a, const infer_result *r)
{
    uint64_t now = mono_ns();
    proto_label l = {0};
    l.seq = ++a->label_seq;
    l.pts_ns = r->pts_ns;
    /* the capture time in wall-clock terms: now minus how long ago it was captured */
    uint64_t age = r->capture_mono_ns && r->capture_mono_ns <= now ? now - r->capture_mono_ns : 0;
    l.time_ns = real_ns() - (int64_t)age;
    l.label = label_name(a, r->class_id);
    l.class_id = r->class_id;
    l.score = r->score;
    l.stage = r->stage;
    /* only a light answer the budget forced carries a reason ("deadline", "horizon") */
    l.reason = r->reason == BUDGET_EXIT_DEADLINE || r->reason == BUDGET_EXIT_HORIZON
                   ? budget_reason_name(r->reason)
                   : NULL;
    l.threshold = r->threshold;
    l.ms_light = (double)r->ns_light / 1e6;
    l.ms_synth = (double)r->ns_synth / 1e6;
    l.ms_specialist = (double)r->ns_specialist / 1e6;
    l.ms_total = (double)(r->ns_light + r->ns_synth + r->ns_specialist) / 1e6;
    l.ms_capture_to_publish = r->capture_mono_ns ? (double)age / 1e6 : 0;
    l.dropped_frames = r->dropped;
    a->dropped_frames += r->dropped;
    stats_observe_frame(&a->stats, r->stage, r->reason == BUDGET_EXIT_DEADLINE, l.ms_light, l.ms_synth,
                        l.ms_specialist, l.ms_total, l.ms_capture_to_publish);

    pub_msg *m = json_to_msg(proto_label_json(&l), MSG_LABEL);
    if (m) {
        snprintf(m->label, sizeof m->label, "%s", l.label);
        m->class_id = l.class_id;
        m->score = l.score;
        publish(a, m, MQTT_LABEL);
        pub_msg_unref(m);
    }
    if (a->opt.print)
        print_label(&l);

    int prev;
    if (debounce_feed(&a->deb, r->class_id, &prev)) {
        json_t *c = proto_change_json(++a->change_seq, l.pts_ns, l.time_ns, l.label, l.class_id,
                                      l.score, prev >= 0 ? label_name(a, prev) : NULL,
                                      a->deb.need);
        pub_msg *cm = json_to_msg(c, MSG_CHANGE);
        if (cm) {
            snprintf(cm->label, sizeof cm->label, "%s", l.label);
            cm->class_id = l.class_id;
            cm->score = l.score;
            publish(a, cm, MQTT_CHANGE);
            pub_msg_unref(cm);
        }
        rebuild_hello(a);
    }
}

/* ---- stats --------------------------------------------------------------------------------- */

static json_t *stats_json(app *a)
{
    capture_stats cs;
    memset(&cs, 0, sizeof cs);
    if (a->cap)
        capture_get_stats(a->cap, &cs);
    budget_stats bs;
    memset(&bs, 0, sizeof bs);
    if (a->inf)
        infer_budget_stats(a->inf, &bs);
    const daemon_stats *s = &a->stats;
    json_t *budget = budget_json(&a->eng.bp);
    json_object_set_new(budget, "mean_ms", json_real(proto_round(bs.mean_ms, 3)));
    json_object_set_new(budget, "p99_ms", json_real(proto_round(bs.p99_ms, 3)));
    json_object_set_new(budget, "window_frames", json_integer(bs.window_frames));
    json_object_set_new(budget, "target_specialist_share",
                        json_real(proto_round(bs.target_spec_share, 4)));
    json_object_set_new(budget, "t_light_ms", json_real(proto_round(bs.t_light_ms, 3)));
    json_object_set_new(budget, "t_specialist_ms", json_real(proto_round(bs.t_spec_ms, 3)));
    json_object_set_new(budget, "unattainable", json_boolean(bs.unattainable));
    if (bs.unattainable) {
        char note[200];
        snprintf(note, sizeof note,
                 "budget unattainable: the lightweight model alone takes %.2f ms > %.2f ms; "
                 "frames are dropped at the source",
                 bs.t_light_ms, bs.budget_ms);
        json_object_set_new(budget, "note", json_string(note));
    }
    json_object_set_new(budget, "deadline_exits", json_integer((json_int_t)bs.deadline_exits));
    json_object_set_new(budget, "horizon", json_integer(a->cfg.budget.horizon));
    json_object_set_new(budget, "horizon_exits", json_integer((json_int_t)bs.horizon_exits));

    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:{s:s, s:s, s:b, s:I, s:I, s:I, s:s, s:s},"
        " s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:f, s:f, s:f, s:o, s:o,"
        " s:{s:i, s:i, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:s}}",
        "camera", a->cfg.camera, "model", a->info->name ? a->info->name : "", "version",
        BASISNETD_VERSION, "uptime_s", (json_int_t)((g_get_monotonic_time() - a->start_us) / 1000000),
        "source", "kind", source_kind_name(a->cfg.source.kind), "state",
        capture_state_name(a->src_state), "up", a->src_state == CAPTURE_RUNNING,
        "frames_in", (json_int_t)cs.frames_in, "frames_dropped", (json_int_t)cs.frames_dropped,
        "reconnects", (json_int_t)cs.reconnects, "message", a->src_msg, "pipeline",
        cs.description,
        "frames", "classified", (json_int_t)s->classified, "light", (json_int_t)s->light,
        "specialist", (json_int_t)s->specialist, "deadline", (json_int_t)s->deadline,
        "dropped", (json_int_t)cs.frames_dropped, "results_dropped",
        (json_int_t)(a->inf ? infer_results_dropped(a->inf) : 0),
        "fps", proto_round(a->fps, 2), "exit_share", proto_round(stats_exit_share(s), 4),
        "threshold", proto_round(bs.threshold, 4), "budget", budget, "latency_ms",
        stats_latency_json(s),
        "clients", "connected", server_client_count(a->srv), "max", a->cfg.publish.max_clients,
        "accepted", (json_int_t)server_accepted_total(a->srv), "rejected",
        (json_int_t)server_rejected_total(a->srv), "lost_total",
        (json_int_t)server_lost_total(a->srv), "line_disconnects",
        (json_int_t)server_line_disconnects(a->srv), "rate_limited",
        (json_int_t)server_rate_limited_total(a->srv),
        "reload", "ok", (json_int_t)a->reloads_ok, "failed", (json_int_t)a->reloads_failed,
        "last_error", a->reload_error);
    if (o)
        json_object_set_new(o, "changes", json_integer((json_int_t)a->change_seq));
    if (o && a->mqtt) {
        mqtt_stats ms;
        mqtt_get_stats(a->mqtt, &ms);
        json_object_set_new(o, "mqtt",
                            json_pack("{s:s, s:b, s:s, s:I, s:I, s:I, s:I}", "state",
                                      mqtt_state_name(ms.state), "connected",
                                      ms.state == MQTT_CONNECTED, "last_error", ms.last_error,
                                      "sent", (json_int_t)ms.sent, "dropped",
                                      (json_int_t)ms.dropped, "queued", (json_int_t)ms.queued,
                                      "connects", (json_int_t)ms.connects));
    }
    return o;
}

/* ---- reload ----------------------------------------------------------------------------------- */

static void on_source_state(capture_state state, const char *message, void *user);

static bn_status open_capture(app *a, const bn_config *cfg, const bn_model_info *mi,
                              capture **out, char *err, size_t errlen)
{
    capture_params cp = {.width = mi->width, .height = mi->height, .channels = mi->channels,
                         .context = NULL, .on_state = on_source_state, .user = a};
    return capture_open(&cfg->source, &cp, out, err, errlen);
}

static bn_status start_infer(app *a, char *err, size_t errlen)
{
    if (!a->eng.budget) {   /* restarting after a reload that kept the old engine */
        a->eng.budget = budget_create(&a->eng.bp, a->info, 0, 0, err, errlen);
        if (!a->eng.budget)
            return BN_ERR_INVALID_ARG;
    }
    infer_params ip = {.cap = a->cap, .session = a->eng.session, .budget = a->eng.budget,
                       .queue = 64};
    a->eng.budget = NULL;   /* owned by infer from here */
    return infer_start(&ip, &a->inf, err, errlen);
}

static gboolean on_results(gint fd, GIOCondition cond, gpointer data);

static void attach_results(app *a)
{
    a->result_src = g_unix_fd_source_new(infer_eventfd(a->inf), G_IO_IN);
    g_source_set_callback(a->result_src, G_SOURCE_FUNC(on_results), a, NULL);
    g_source_attach(a->result_src, NULL);
}

static void detach_results(app *a)
{
    if (a->result_src) {
        g_source_destroy(a->result_src);
        g_source_unref(a->result_src);
        a->result_src = NULL;
    }
}

static void drain_results(app *a, bool *eos)
{
    infer_result rs[DRAIN_BATCH];
    int n;
    *eos = false;
    if (!a->inf)
        return;
    while ((n = infer_drain(a->inf, rs, DRAIN_BATCH, eos)) > 0)
        for (int i = 0; i < n; i++)
            publish_result(a, &rs[i]);
}

static gboolean on_source_retry(gpointer data);

static void cancel_retry(app *a)
{
    if (a->retry_src) {
        g_source_destroy(a->retry_src);
        g_source_unref(a->retry_src);
        a->retry_src = NULL;
    }
    a->retry_ms = 0;
}

static void schedule_retry(app *a)
{
    if (a->retry_src)
        return;
    int lo = a->cfg.source.retry_initial_ms > 0 ? a->cfg.source.retry_initial_ms : 500;
    int hi = a->cfg.source.retry_max_ms >= lo ? a->cfg.source.retry_max_ms : lo;
    a->retry_ms = a->retry_ms <= 0 ? lo : (a->retry_ms > hi / 2 ? hi : a->retry_ms * 2);
    a->retry_src = g_timeout_source_new((guint)a->retry_ms);
    g_source_set_callback(a->retry_src, on_source_retry, a, NULL);
    g_source_attach(a->retry_src, NULL);
}

/* Opens the source of a->cfg and starts inference on it. A source that is missing or busy
 * (a recoverable status) is not fatal: the daemon keeps serving its socket, reports the
 * source as lost (and READY to systemd), and retries with the configured back-off. Only
 * errors a retry cannot fix are returned. */
static bn_status source_begin(app *a, char *err, size_t errlen)
{
    bn_status st = open_capture(a, &a->cfg, a->info, &a->cap, err, errlen);
    if (st == BN_OK) {
        a->retry_ms = 0;
        st = start_infer(a, err, errlen);
        if (st == BN_OK)
            attach_results(a);
        return st;
    }
    if (!bn_status_recoverable(st))
        return st;
    if (a->src_state != CAPTURE_LOST) {
        BN_LOGW(MOD, "source: %s; retrying every %d..%d ms", err, a->cfg.source.retry_initial_ms,
                a->cfg.source.retry_max_ms);
        on_source_state(CAPTURE_LOST, err, a);
    }
    schedule_retry(a);
    return BN_OK;
}

static gboolean on_source_retry(gpointer data)
{
    app *a = data;
    g_source_unref(a->retry_src);   /* this one-shot source ends with this call */
    a->retry_src = NULL;
    char err[1024];
    bn_status st = source_begin(a, err, sizeof err);
    if (st != BN_OK) {
        /* e.g. the device exists now but refuses the format: keep trying, slowly */
        BN_LOGE(MOD, "source: %s", err);
        a->retry_ms = a->cfg.source.retry_max_ms;
        schedule_retry(a);
    }
    return G_SOURCE_REMOVE;
}

static bool same_source(const bn_config *x, const bn_config *y)
{
    return memcmp(&x->source, &y->source, sizeof x->source) == 0;
}

/* Parses and opens everything new first; swaps only when all of it is valid. */
static bn_status reload(app *a, char *err, size_t errlen)
{
    bn_config *ncfg = malloc(sizeof *ncfg);
    if (!ncfg) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    config_init(ncfg);
    bn_status st = config_load(a->opt.config_path, ncfg, err, errlen);
    if (st != BN_OK)
        goto fail;
    if (a->opt.socket_override)
        snprintf(ncfg->publish.socket, sizeof ncfg->publish.socket, "%s", a->opt.socket_override);
    engine_set ne;
    st = engine_set_open(ncfg, &ne, err, errlen);
    if (st != BN_OK)
        goto fail;
    st = server_set_access(a->srv, ncfg->publish.mode, ncfg->publish.group,
                           ncfg->publish.control_group, err, errlen);
    if (st != BN_OK) {
        engine_set_free(&ne);
        goto fail;
    }
    /* MQTT: a changed section gets a new client, opened before anything is swapped. */
    mqtt_client *nm = NULL;
    bool mqtt_changed = memcmp(&a->cfg.mqtt, &ncfg->mqtt, sizeof ncfg->mqtt) != 0 ||
                        strcmp(a->cfg.camera, ncfg->camera) != 0;
    if (mqtt_changed && ncfg->mqtt.enabled) {
        st = mqtt_open(&ncfg->mqtt, ncfg->camera, &nm, err, errlen);
        if (st != BN_OK) {
            engine_set_free(&ne);
            goto fail;
        }
    }
    if (mqtt_changed) {
        mqtt_close(a->mqtt);
        a->mqtt = nm;
    }
    const bn_model_info *ni = bn_model_get_info(ne.model);
    bool new_capture = !a->cap || !same_source(&a->cfg, ncfg) || ni->width != a->info->width ||
                       ni->height != a->info->height || ni->channels != a->info->channels;

    /* From here the old pipeline stops for a moment; subscribers stay connected. */
    bool eos;
    infer_stop(a->inf);
    drain_results(a, &eos);
    detach_results(a);
    infer_free(a->inf);
    a->inf = NULL;
    capture *nc = NULL;
    bool retry_new = false;
    if (new_capture) {
        cancel_retry(a);
        capture_close(a->cap);
        a->cap = NULL;
        st = open_capture(a, ncfg, ni, &nc, err, errlen);
        if (st != BN_OK && bn_status_recoverable(st)) {
            retry_new = true;   /* a valid config whose camera is not there yet */
            st = BN_OK;
        } else if (st != BN_OK) {
            /* keep running the old config: its source again */
            char err2[1024];
            engine_set_free(&ne);
            if (source_begin(a, err2, sizeof err2) != BN_OK) {
                BN_LOGE(MOD, "cannot reopen the previous source either: %s", err2);
                a->exit_code = 1;
                g_main_loop_quit(a->loop);
            }
            goto fail;
        }
    }
    if (strcmp(a->cfg.publish.socket, ncfg->publish.socket) != 0)
        BN_LOGW(MOD, "publish.socket changed to %s: takes effect at the next restart",
                ncfg->publish.socket);
    server_set_limits(a->srv, ncfg->publish.max_clients, ncfg->publish.queue,
                      ncfg->publish.max_line);
    engine_set_free(&a->eng);
    a->eng = ne;
    a->info = ni;
    a->cfg = *ncfg;
    bn_log_set_level((bn_log_level)a->cfg.log_level);
    debounce_init(&a->deb, a->cfg.publish.change_frames);
    rebuild_hello(a);
    server_publish(a->srv, a->hello);   /* labels may have changed: tell every subscriber */
    if (new_capture && !retry_new) {
        a->cap = nc;
        a->src_state = CAPTURE_STARTING;    /* src_was_lost stays: "recovered" follows */
    }
    char err3[1024];
    bn_status st2 = a->cap ? start_infer(a, err3, sizeof err3) : source_begin(a, err3, sizeof err3);
    if (st2 != BN_OK) {
        BN_LOGE(MOD, "cannot restart inference after reload: %s", err3);
        a->exit_code = 1;
        g_main_loop_quit(a->loop);
    } else if (a->inf && !a->result_src) {
        attach_results(a);
    }
fail:
    free(ncfg);
    return st;
}

static bn_status do_reload(app *a, char *err, size_t errlen)
{
    BN_LOGI(MOD, "reloading %s", a->opt.config_path);
    sd_notify(0, "RELOADING=1");
    bn_status st = reload(a, err, errlen);
    if (st == BN_OK) {
        a->reloads_ok++;
        a->reload_error[0] = '\0';
        BN_LOGI(MOD, "reload done: model %s, camera %s", a->info->name ? a->info->name : "?",
                a->cfg.camera);
    } else {
        a->reloads_failed++;
        snprintf(a->reload_error, sizeof a->reload_error, "%s", err);
        BN_LOGE(MOD, "reload rejected, the previous config keeps running:\n%s", err);
    }
    sd_notify(0, "READY=1");
    return st;
}

/* ---- commands --------------------------------------------------------------------------------- */

static void cmd_set(app *a, server *srv, server_client *c, const proto_command *cmd)
{
    const proto_set *s = &cmd->set;
    budget_params bp = a->eng.bp;
    bool rebuild = false;
    if (s->has_threshold) {
        bp.mode = BUDGET_OFF;
        bp.fixed_threshold = s->threshold;
        rebuild = true;
    }
    if (s->has_threshold_min) {
        bp.min = s->threshold_min;
        rebuild = true;
    }
    if (s->has_threshold_max) {
        bp.max = s->threshold_max;
        rebuild = true;
    }
    if (s->has_budget_ms) {
        bp.latency_ms = s->budget_ms;
        if (bp.mode == BUDGET_OFF && !s->has_threshold) {
            bp.mode = BUDGET_MEAN;  /* a budget means: control to it */
            rebuild = true;
        }
    }
    char err[256];
    if (rebuild) {
        budget_stats bs;
        memset(&bs, 0, sizeof bs);
        if (a->inf)
            infer_budget_stats(a->inf, &bs);
        budget_ctl *b = budget_create(&bp, a->info, (uint64_t)(bs.t_light_ms * 1e6),
                                      (uint64_t)(bs.t_spec_ms * 1e6), err, sizeof err);
        if (!b) {
            server_send_json(srv, c, proto_error_json("set", cmd->id, err));
            return;
        }
        if (a->inf) {
            infer_set_budget(a->inf, b);
        } else {    /* no source yet: used when inference starts */
            budget_free(a->eng.budget);
            a->eng.budget = b;
        }
    } else if (s->has_budget_ms) {
        if (a->inf)
            infer_set_budget_ms(a->inf, s->budget_ms);
        else if (a->eng.budget)
            budget_set_latency(a->eng.budget, s->budget_ms);
    }
    a->eng.bp = bp;
    rebuild_hello(a);   /* new clients see the budget now in force */
    BN_LOGI(MOD, "set by pid %d: budget mode %s, %.3g ms, threshold [%.3g, %.3g], fixed %.3g",
            (int)server_client_pid(c), budget_mode_name(bp.mode), bp.latency_ms,
            bp.min, bp.max, bp.fixed_threshold);
    json_t *r = proto_reply_json("set", cmd->id);
    json_object_set_new(r, "budget", budget_json(&bp));
    server_send_json(srv, c, r);
}

static void on_command(server *srv, server_client *c, const proto_command *cmd, void *user)
{
    app *a = user;
    switch (cmd->kind) {
    case PROTO_CMD_STATS: {
        json_t *r = proto_reply_json("stats", cmd->id);
        json_object_set_new(r, "stats", stats_json(a));
        server_send_json(srv, c, r);
        break;
    }
    case PROTO_CMD_SET:
        cmd_set(a, srv, c, cmd);
        break;
    case PROTO_CMD_RELOAD: {
        char err[2048];
        if (do_reload(a, err, sizeof err) == BN_OK)
            server_send_json(srv, c, proto_reply_json("reload", cmd->id));
        else
            server_send_json(srv, c, proto_error_json("reload", cmd->id, err));
        break;
    }
    default:
        server_send_json(srv, c, proto_error_json(proto_cmd_name(cmd->kind), cmd->id,
                                                  "command not available"));
    }
}

/* ---- event sources ---------------------------------------------------------------------------- */

static void set_ready(app *a, const char *why)
{
    if (a->ready)
        return;
    a->ready = true;
    BN_LOGI(MOD, "ready (%s)", why);
    sd_notifyf(0, "READY=1\nSTATUS=%s", why);
}

static gboolean on_results(gint fd, GIOCondition cond, gpointer data)
{
    app *a = data;
    (void)fd;
    (void)cond;
    bool eos;
    drain_results(a, &eos);
    if (a->stats.classified > 0)
        set_ready(a, "first frame classified");
    if (eos) {
        a->src_state = CAPTURE_EOS;
        if (a->opt.exit_on_eos) {
            BN_LOGI(MOD, "end of stream: exiting (--exit-on-eos)");
            g_main_loop_quit(a->loop);
        }
    }
    return G_SOURCE_CONTINUE;
}

static void on_source_state(capture_state state, const char *message, void *user)
{
    app *a = user;
    capture_state old = a->src_state;
    a->src_state = state;
    snprintf(a->src_msg, sizeof a->src_msg, "%s", message ? message : "");
    if (state == old)
        return;
    rebuild_hello(a);
    switch (state) {
    case CAPTURE_LOST:
        a->src_was_lost = true;
        publish_source(a, "lost", message);
        /* The daemon is up and serving while it waits for the camera: ready to systemd. */
        set_ready(a, "source lost, reconnecting");
        break;
    case CAPTURE_RUNNING:
        if (a->src_was_lost) {
            publish_source(a, "recovered", message);
            a->src_was_lost = false;
        }
        break;
    case CAPTURE_EOS:
        publish_source(a, "eos", message);
        break;
    default:
        break;
    }
}

static void update_status(app *a, gint64 now)
{
    budget_stats bs;
    memset(&bs, 0, sizeof bs);
    if (a->inf)
        infer_budget_stats(a->inf, &bs);
    sd_notifyf(0,
               "STATUS=%.1f fps, latency mean %.2f ms p99 %.2f ms, exit share %.0f%%, "
               "threshold %.3f, %d subscribers, source %s",
               a->fps, a->stats.hist[LAT_TOTAL].n ? a->stats.hist[LAT_TOTAL].sum_ms /
                                                        (double)a->stats.hist[LAT_TOTAL].n
                                                  : 0.0,
               stats_recent_quantile(&a->stats, 0.99), 100.0 * stats_exit_share(&a->stats),
               bs.threshold, server_client_count(a->srv), capture_state_name(a->src_state));
    a->last_status_us = now;
}

/* Housekeeping: fps, STATUS=, and the watchdog. The watchdog is fed only while the
 * inference thread makes progress, or the source is legitimately idle (reconnect back-off,
 * start-up, end of a clip) and the thread is still looping. */
static gboolean on_tick(gpointer data)
{
    app *a = data;
    gint64 now = g_get_monotonic_time();
    uint64_t frames = a->inf ? infer_frames(a->inf) : a->tick_frames;
    uint64_t hb = a->inf ? infer_heartbeat(a->inf) : a->tick_heartbeat;
    /* idle but healthy: no frames because the source is away, and the inference thread
     * still loops (or, with no source open, the retry timer is armed) */
    bool idle_ok = a->src_state == CAPTURE_EOS ||   /* the clip ended; thread is done */
                   (a->src_state != CAPTURE_RUNNING &&
                    (a->inf ? hb != a->tick_heartbeat : a->retry_src != NULL));
    if (frames != a->tick_frames || idle_ok)
        a->last_progress_us = now;
    a->tick_frames = frames;
    a->tick_heartbeat = hb;

    double dt = (double)(now - a->fps_time_us) / 1e6;
    if (dt >= 1.0) {
        double inst = (double)(a->stats.classified - a->fps_frames) / dt;
        a->fps = a->fps_time_us ? inst : 0;
        a->fps_frames = a->stats.classified;
        a->fps_time_us = now;
    }
    if (a->wd_usec && (uint64_t)(now - a->last_progress_us) < a->wd_usec / 2)
        sd_notify(0, "WATCHDOG=1");
    if (now - a->last_status_us >= (gint64)a->cfg.stats_interval_s * 1000000)
        update_status(a, now);
    if (a->mqtt && now - a->last_mqtt_stats_us >= (gint64)a->cfg.stats_interval_s * 1000000) {
        char t[40];
        proto_format_time(real_ns(), t, sizeof t);
        json_t *o = json_pack("{s:s, s:s, s:o}", "type", "stats", "time", t, "stats",
                              stats_json(a));
        pub_msg *m = json_to_msg(o, MSG_SOURCE);
        if (m)
            mqtt_publish(a->mqtt, MQTT_STATS, m->data, m->len);
        pub_msg_unref(m);
        a->last_mqtt_stats_us = now;
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_quit_signal(gpointer data)
{
    app *a = data;
    BN_LOGI(MOD, "stopping");
    g_main_loop_quit(a->loop);
    return G_SOURCE_CONTINUE;
}

static gboolean on_hup(gpointer data)
{
    app *a = data;
    char err[2048];
    do_reload(a, err, sizeof err);
    return G_SOURCE_CONTINUE;
}

/* ---- run ----------------------------------------------------------------------------------- */

bn_status app_check_config(const char *path, char *err, size_t errlen)
{
    bn_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    config_init(cfg);
    bn_status st = config_load(path, cfg, err, errlen);
    if (st == BN_OK) {
        bn_model *m = NULL;
        char msg[1024];
        st = bn_model_open(cfg->model, &m, msg, sizeof msg);
        if (st != BN_OK)
            snprintf(err, errlen, "%s: model %s: %s", path, cfg->model, msg);
        bn_model_close(m);
    }
    free(cfg);
    return st;
}

static void app_stop(app *a)
{
    sd_notify(0, "STOPPING=1");
    cancel_retry(a);
    if (a->inf) {
        bool eos;
        infer_stop(a->inf);
        drain_results(a, &eos);
    }
    server_flush(a->srv, STOP_FLUSH_MS);
    mqtt_close(a->mqtt);    /* "offline" on P/status, waits <= 1 s for messages in flight */
    a->mqtt = NULL;
    detach_results(a);
    infer_free(a->inf);
    a->inf = NULL;
    capture_close(a->cap);
    a->cap = NULL;
    server_close(a->srv);
    a->srv = NULL;
    if (a->tick_src) {
        g_source_destroy(a->tick_src);
        g_source_unref(a->tick_src);
        a->tick_src = NULL;
    }
    if (a->sig_term)
        g_source_remove(a->sig_term);
    if (a->sig_int)
        g_source_remove(a->sig_int);
    if (a->sig_hup)
        g_source_remove(a->sig_hup);
    engine_set_free(&a->eng);
    pub_msg_unref(a->hello);
    a->hello = NULL;
    if (a->loop)
        g_main_loop_unref(a->loop);
    a->loop = NULL;
}

int app_run(const app_options *opt)
{
    app *a = calloc(1, sizeof *a);
    if (!a) {
        BN_LOGE(MOD, "out of memory");
        return 1;
    }
    a->opt = *opt;
    a->start_us = g_get_monotonic_time();
    stats_init(&a->stats);
    char err[8192];
    int rc = 1;

    config_init(&a->cfg);
    if (config_load(opt->config_path, &a->cfg, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "config rejected:\n%s", err);
        goto out;
    }
    if (opt->socket_override)
        snprintf(a->cfg.publish.socket, sizeof a->cfg.publish.socket, "%s", opt->socket_override);
    bn_log_set_level((bn_log_level)a->cfg.log_level);
    debounce_init(&a->deb, a->cfg.publish.change_frames);

    if (engine_set_open(&a->cfg, &a->eng, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "%s", err);
        goto out;
    }
    a->info = bn_model_get_info(a->eng.model);
    BN_LOGI(MOD, "model %s: %d classes, input %dx%dx%d (light %dx%d), %d bases",
            a->info->name ? a->info->name : "?", a->info->num_classes, a->info->width,
            a->info->height, a->info->channels, a->info->light_width, a->info->light_height,
            a->info->num_bases);
    rebuild_hello(a);
    a->loop = g_main_loop_new(NULL, FALSE);

    server_params sp = {.path = a->cfg.publish.socket, .mode = a->cfg.publish.mode,
                        .group = a->cfg.publish.group,
                        .control_group = a->cfg.publish.control_group,
                        .max_clients = a->cfg.publish.max_clients, .queue = a->cfg.publish.queue,
                        .max_line = a->cfg.publish.max_line, .listen_fd = opt->listen_fd,
                        .context = NULL, .hello = hello_cb, .command = on_command, .user = a};
    if (server_open(&sp, &a->srv, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "%s", err);
        goto out;
    }
    BN_LOGI(MOD, "listening on %s", server_activated(a->srv) ? "a socket passed by systemd"
                                                             : a->cfg.publish.socket);
    if (a->cfg.mqtt.enabled &&
        mqtt_open(&a->cfg.mqtt, a->cfg.camera, &a->mqtt, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "%s", err);
        goto out;
    }
    if (source_begin(a, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "source: %s", err);
        goto out;
    }

    a->sig_term = g_unix_signal_add(SIGTERM, on_quit_signal, a);
    a->sig_int = g_unix_signal_add(SIGINT, on_quit_signal, a);
    a->sig_hup = g_unix_signal_add(SIGHUP, on_hup, a);
    uint64_t wd = 0;
    if (sd_watchdog_enabled(0, &wd) > 0)
        a->wd_usec = wd;
    guint tick_ms = 1000;
    if (a->wd_usec && a->wd_usec / 4000 < tick_ms)
        tick_ms = (guint)(a->wd_usec / 4000 > 10 ? a->wd_usec / 4000 : 10);
    a->last_progress_us = g_get_monotonic_time();
    a->fps_time_us = a->last_progress_us;
    a->last_status_us = a->last_progress_us;
    a->tick_src = g_timeout_source_new(tick_ms);
    g_source_set_callback(a->tick_src, on_tick, a, NULL);
    g_source_attach(a->tick_src, NULL);

    a->exit_code = 0;
    g_main_loop_run(a->loop);
    rc = a->exit_code;
    BN_LOGI(MOD, "stopped after %llu frames", (unsigned long long)a->stats.classified);
out:
    app_stop(a);
    free(a);
    return rc;
}
