/* Messages the daemon publishes: hello, labels, change and source events, stats (see
 * docs/protocol.md). Built on the event loop's thread from results the inference thread
 * queued. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_internal.h"
#include "bn_log.h"

_Static_assert(INFER_STAGE_REUSE == PROTO_STAGE_REUSE, "one stage number for a reused answer");

uint64_t app_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t app_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

const char *app_capture_state_name(capture_state s)
{
    switch (s) {
    case CAPTURE_STARTING: return "starting";
    case CAPTURE_RUNNING: return "running";
    case CAPTURE_LOST: return "lost";
    case CAPTURE_EOS: return "eos";
    }
    return "?";
}
/* ---- messages ------------------------------------------------------------------------------ */

json_t *app_budget_json(const budget_params *bp)
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

json_t *app_hello_json(app *a)
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
                          app_budget_json(&a->eng.bp));
    if (o) {    /* the current state, so a late subscriber knows it at once */
        json_object_set_new(o, "stable", a->deb.stable >= 0
                                             ? json_string(label_name(a, a->deb.stable))
                                             : json_null());
        json_object_set_new(o, "source", json_pack("{s:s, s:s}", "state",
                                                   app_capture_state_name(a->src_state), "message",
                                                   a->src_msg));
    }
    return o;
}

void app_rebuild_hello(app *a)
{
    pub_msg_unref(a->hello);
    a->hello = json_to_msg(app_hello_json(a), MSG_HELLO);
}

pub_msg *app_hello_cb(void *user)
{
    app *a = user;
    return pub_msg_ref(a->hello);
}

/* Every published message goes to the socket's subscribers and, when configured, HTTP's
 * /events and MQTT. */
static void publish(app *a, pub_msg *m, mqtt_topic topic)
{
    if (!m)
        return;
    server_publish(a->srv, m);
    http_publish(a->http, m);   /* /events; nothing without an HTTP server */
    if (a->mqtt)
        mqtt_publish(a->mqtt, topic, m->data, m->len);
}

void app_publish_source(app *a, const char *state, const char *message)
{
    pub_msg *m = json_to_msg(proto_source_json(app_real_ns(), state, message), MSG_SOURCE);
    publish(a, m, MQTT_SOURCE);
    pub_msg_unref(m);
}

static void print_label(const proto_label *l)
{
    char t[40];
    proto_format_time(l->time_ns, t, sizeof t);
    printf("%s  %-12s %.3f  %-10s %7.2f ms%s%s%s\n", t, l->label, l->score,
           l->stage == BN_STAGE_SPECIALIST ? "specialist"
           : l->stage == PROTO_STAGE_REUSE ? "reuse"
                                           : "light",
           l->ms_total,
           l->reason ? "  (" : "", l->reason ? l->reason : "", l->reason ? ")" : "");
}

/* A label or change message carries its label, class and score beside the line, for the
 * subscribers' filters (--label, --min-score). */
static pub_msg *publish_labelled(app *a, json_t *o, msg_kind kind, mqtt_topic topic,
                                 const proto_label *l)
{
    pub_msg *m = json_to_msg(o, kind);
    if (!m)
        return NULL;
    snprintf(m->label, sizeof m->label, "%s", l->label);
    m->class_id = l->class_id;
    m->score = l->score;
    publish(a, m, topic);
    return m;
}

/* A change event with an events: section names the files its frame is saved to, and the
 * store's thread writes them (the frame is the newest classified one: the frame the change
 * was decided on unless the loop is behind). With the store's queue full the message names
 * no file (the event is counted as dropped), so a name never points to a save that was not
 * even queued. */
static void publish_change(app *a, const proto_label *l, int prev)
{
    json_t *c = proto_change_json(++a->change_seq, l->pts_ns, l->time_ns, l->label, l->class_id,
                                  l->score, prev >= 0 ? label_name(a, prev) : NULL, a->deb.need);
    const frame_copy *f = a->events && c && event_store_has_room(a->events)
                              ? frame_slot_get(a->frames)
                              : NULL;
    char name[EVENT_NAME_MAX];
    if (f) {
        event_store_name(l->time_ns, a->change_seq, name, sizeof name);
        json_object_set_new(c, "snapshot", json_sprintf("%s.jpg", name));
    }
    pub_msg *m = publish_labelled(a, c, MSG_CHANGE, MQTT_CHANGE, l);
    if (m && f)
        event_store_save(a->events, name, f, m->data, m->len);
    else if (a->events)
        event_store_save(a->events, "", NULL, NULL, 0); /* counted as not saved */
    frame_copy_unref(f);
    pub_msg_unref(m);
}

void app_publish_result(app *a, const infer_result *r)
{
    app_source_frame_seen(a, r->capture_mono_ns);
    uint64_t now = app_mono_ns();
    proto_label l = {0};
    l.seq = ++a->label_seq;
    l.pts_ns = r->pts_ns;
    /* the capture time in wall-clock terms: now minus how long ago it was captured */
    uint64_t age = r->capture_mono_ns && r->capture_mono_ns <= now ? now - r->capture_mono_ns : 0;
    l.time_ns = app_real_ns() - (int64_t)age;
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
    l.gated = r->gated;
    l.ms_gate = (double)r->ns_gate / 1e6;
    l.gate = r->gated ? gate_verdict_name((gate_verdict)r->gate_verdict) : NULL;
    /* the compute the frame cost: the gate's decision and what ran after it */
    l.ms_total = (double)(r->ns_gate + r->ns_light + r->ns_synth + r->ns_specialist) / 1e6;
    l.ms_age = (double)r->reuse_age_ns / 1e6;
    l.ms_capture_to_publish = r->capture_mono_ns ? (double)age / 1e6 : 0;
    l.dropped_frames = r->dropped;
    l.synth_reuse_on = a->cfg.engine.synth_reuse > 0;
    l.synth_reused = r->synth_reused;
    a->dropped_frames += r->dropped;
    a->last_frame_us = g_get_monotonic_time();
    if (r->gated)
        stats_observe_gate(&a->stats, r->gate_verdict, l.ms_gate);
    if (r->stage == INFER_STAGE_REUSE) {
        stats_observe_reuse(&a->stats, l.ms_capture_to_publish);
    } else {
        stats_observe_frame(&a->stats, r->stage, r->reason == BUDGET_EXIT_DEADLINE, l.ms_light,
                            l.ms_synth, l.ms_specialist, l.ms_total, l.ms_capture_to_publish);
        a->stats.synth_layers += (uint64_t)r->synth_layers;
        a->stats.synth_reused += (uint64_t)r->synth_reused;
    }

    pub_msg_unref(publish_labelled(a, proto_label_json(&l), MSG_LABEL, MQTT_LABEL, &l));
    if (a->opt.print)
        print_label(&l);

    int prev;
    if (debounce_feed(&a->deb, r->class_id, &prev)) {
        publish_change(a, &l, prev);
        app_rebuild_hello(a);
    }
}

/* ---- stats --------------------------------------------------------------------------------- */

/* The gate's settings and state for stats. */
static json_t *app_gate_json(app *a)
{
    const gate_config *g = &a->cfg.gate;
    json_t *o = json_pack("{s:s, s:i, s:f, s:f, s:f, s:i}", "mode",
                          g->mode == GATE_MODE_AUTO ? "auto" : "off", "refresh_ms",
                          g->refresh_ms, "cell_sigmas", proto_round(g->cell_sigmas, 4),
                          "min_area", proto_round(g->min_area, 4), "min_score",
                          proto_round(g->min_score, 4), "hold_frames", g->hold_frames);
    if (o && g->mode == GATE_MODE_AUTO)
        json_object_set_new(o, "verdicts", stats_gate_verdicts_json(&a->stats));
    gate_stats gs;
    if (o && a->inf && infer_gate_stats(a->inf, &gs)) {
        json_object_set_new(o, "noise_sigma", json_real(proto_round(gs.sigma, 3)));
        json_object_set_new(o, "grid", json_pack("{s:i, s:i, s:i}", "width", gs.grid_w,
                                                 "height", gs.grid_h, "cell", gs.cell));
    }
    return o;
}

json_t *app_stats_json(app *a)
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
    json_t *budget = app_budget_json(&a->eng.bp);
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
        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:f, s:f, s:f, s:o, s:o,"
        " s:{s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:s}}",
        "camera", a->cfg.camera, "model", a->info->name ? a->info->name : "", "version",
        BASISNETD_VERSION, "uptime_s", (json_int_t)((g_get_monotonic_time() - a->start_us) / 1000000),
        "source", "kind", source_kind_name(a->cfg.source.kind), "state",
        app_capture_state_name(a->src_state), "up", a->src_state == CAPTURE_RUNNING,
        "frames_in", (json_int_t)cs.frames_in, "frames_dropped", (json_int_t)cs.frames_dropped,
        "reconnects", (json_int_t)cs.reconnects, "message", a->src_msg, "pipeline",
        cs.description,
        "frames", "classified", (json_int_t)s->classified, "light", (json_int_t)s->light,
        "specialist", (json_int_t)s->specialist, "deadline", (json_int_t)s->deadline,
        "synth_layers", (json_int_t)s->synth_layers, "synth_reused", (json_int_t)s->synth_reused,
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
        (json_int_t)server_rate_limited_total(a->srv), "read_paused",
        (json_int_t)server_read_paused_total(a->srv), "reply_paused",
        (json_int_t)server_reply_paused_total(a->srv),
        "reload", "ok", (json_int_t)a->reloads_ok, "failed", (json_int_t)a->reloads_failed,
        "last_error", a->reload_error);
    if (o) {
        json_t *fr = json_object_get(o, "frames");
        json_object_set_new(fr, "synth_reused_share",
                            json_real(proto_round(stats_synth_reused_share(s), 4)));
        json_object_set_new(fr, "gate_reused", json_integer((json_int_t)s->gate_reused));
        json_object_set_new(fr, "gate_reused_share",
                            json_real(proto_round(stats_gate_reused_share(s), 4)));
        json_object_set_new(o, "changes", json_integer((json_int_t)a->change_seq));
        json_object_set_new(o, "stable", a->deb.stable >= 0
                                             ? json_string(label_name(a, a->deb.stable))
                                             : json_null());
        json_object_set_new(o, "gate", app_gate_json(a));
    }
    if (o && a->http)
        json_object_set_new(o, "http", app_http_stats_json(a));
    if (o && a->events)
        json_object_set_new(o, "events", app_events_stats_json(a));
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

void app_publish_mqtt_stats(app *a)
{
    char t[40];
    proto_format_time(app_real_ns(), t, sizeof t);
    json_t *o = json_pack("{s:s, s:s, s:o}", "type", "stats", "time", t, "stats", app_stats_json(a));
    pub_msg *m = json_to_msg(o, MSG_SOURCE);
    if (m)
        mqtt_publish(a->mqtt, MQTT_STATS, m->data, m->len);
    pub_msg_unref(m);
}
