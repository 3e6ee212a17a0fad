/* Counters, fixed-bucket histograms and the Prometheus rendering of the stats reply. */
#include "stats.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static const double bucket_ms[STATS_NBUCKETS] = {0.1, 0.25, 0.5, 1,   2.5, 5,    10,  25,
                                                 50,  100,  250, 500, 1000, 2500, 10000};
static const char *const lat_names[LAT_COUNT] = {"light", "synth", "specialist", "total",
                                                 "capture_to_publish", "gate"};

double stats_bucket_bound_ms(int i)
{
    return i >= 0 && i < STATS_NBUCKETS ? bucket_ms[i] : INFINITY;
}

const char *stats_lat_name(lat_kind k)
{
    return (unsigned)k < LAT_COUNT ? lat_names[k] : "?";
}

void stats_init(daemon_stats *s)
{
    memset(s, 0, sizeof *s);
}

void latency_hist_observe(latency_hist *h, double ms)
{
    if (!isfinite(ms) || ms < 0)
        ms = 0;
    int i = 0;
    while (i < STATS_NBUCKETS && ms > bucket_ms[i])
        i++;
    h->counts[i]++;
    h->n++;
    h->sum_ms += ms;
    if (ms > h->max_ms)
        h->max_ms = ms;
}

void stats_observe_frame(daemon_stats *s, int stage, bool deadline, double ms_light,
                         double ms_synth, double ms_specialist, double ms_total,
                         double ms_capture_to_publish)
{
    s->classified++;
    if (stage == 1)
        s->specialist++;
    else
        s->light++;
    if (deadline)
        s->deadline++;
    latency_hist_observe(&s->hist[LAT_LIGHT], ms_light);
    if (stage == 1) {
        latency_hist_observe(&s->hist[LAT_SYNTH], ms_synth);
        latency_hist_observe(&s->hist[LAT_SPECIALIST], ms_specialist);
    }
    latency_hist_observe(&s->hist[LAT_TOTAL], ms_total);
    latency_hist_observe(&s->hist[LAT_CAPTURE_TO_PUBLISH], ms_capture_to_publish);
    s->recent_total[s->recent_pos] = ms_total;
    s->recent_pos = (s->recent_pos + 1) % STATS_RECENT;
    if (s->recent_n < STATS_RECENT)
        s->recent_n++;
}

void stats_observe_reuse(daemon_stats *s, double ms_capture_to_publish)
{
    s->gate_reused++;
    latency_hist_observe(&s->hist[LAT_CAPTURE_TO_PUBLISH], ms_capture_to_publish);
}

void stats_observe_gate(daemon_stats *s, int verdict, double ms_gate)
{
    if (verdict >= 0 && verdict < GATE_VERDICTS)
        s->gate_verdicts[verdict]++;
    latency_hist_observe(&s->hist[LAT_GATE], ms_gate);
}

json_t *stats_gate_verdicts_json(const daemon_stats *s)
{
    json_t *o = json_object();
    for (int v = 0; o && v < GATE_VERDICTS; v++)
        json_object_set_new(o, gate_verdict_name((gate_verdict)v),
                            json_integer((json_int_t)s->gate_verdicts[v]));
    return o;
}

uint64_t stats_frames_published(const daemon_stats *s)
{
    return s->classified + s->gate_reused;
}

double stats_gate_reused_share(const daemon_stats *s)
{
    uint64_t n = stats_frames_published(s);
    return n ? (double)s->gate_reused / (double)n : 0.0;
}

double stats_synth_reused_share(const daemon_stats *s)
{
    return s->synth_layers ? (double)s->synth_reused / (double)s->synth_layers : 0.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double stats_recent_quantile(const daemon_stats *s, double q)
{
    if (s->recent_n == 0)
        return 0;
    double tmp[STATS_RECENT];
    memcpy(tmp, s->recent_total, sizeof(double) * (size_t)s->recent_n);
    qsort(tmp, (size_t)s->recent_n, sizeof(double), cmp_double);
    /* nearest rank */
    int idx = (int)ceil(q * s->recent_n) - 1;
    if (idx < 0)
        idx = 0;
    if (idx >= s->recent_n)
        idx = s->recent_n - 1;
    return tmp[idx];
}

double stats_exit_share(const daemon_stats *s)
{
    return s->classified ? (double)s->light / (double)s->classified : 0.0;
}

json_t *latency_hist_json(const latency_hist *h)
{
    json_t *b = json_array();
    for (int i = 0; i <= STATS_NBUCKETS; i++) {
        json_t *le = i < STATS_NBUCKETS ? json_real(bucket_ms[i]) : json_string("+Inf");
        json_array_append_new(b, json_pack("{s:o, s:I}", "le", le, "count",
                                           (json_int_t)h->counts[i]));
    }
    return json_pack("{s:I, s:f, s:f, s:f, s:o}", "count", (json_int_t)h->n, "sum",
                     proto_round(h->sum_ms, 3), "mean",
                     proto_round(h->n ? h->sum_ms / (double)h->n : 0, 3), "max",
                     proto_round(h->max_ms, 3), "buckets", b);
}

json_t *stats_latency_json(const daemon_stats *s)
{
    json_t *o = json_object();
    for (int k = 0; k < LAT_COUNT; k++) {
        json_t *h = latency_hist_json(&s->hist[k]);
        if (k == LAT_TOTAL && h) {
            json_object_set_new(h, "p50", json_real(proto_round(stats_recent_quantile(s, 0.5), 3)));
            json_object_set_new(h, "p99", json_real(proto_round(stats_recent_quantile(s, 0.99), 3)));
        }
        json_object_set_new(o, lat_names[k], h);
    }
    return o;
}

/* ---- Prometheus ----------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} strbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    if (sb->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->oom = true;
            return;
        }
        if ((size_t)n < sb->cap - sb->len) {
            sb->len += (size_t)n;
            return;
        }
        size_t ncap = (sb->cap + (size_t)n + 1) * 2;
        char *nb = realloc(sb->buf, ncap);
        if (!nb) {
            sb->oom = true;
            return;
        }
        sb->buf = nb;
        sb->cap = ncap;
    }
}

/* Label value escaping per the exposition format: backslash, quote, newline. */
static void escape_label(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 3 < outlen; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

/* The member at a dotted path ("frames.classified"), NULL when absent. */
static const json_t *json_at(const json_t *root, const char *path)
{
    char key[64];
    const json_t *v = root;
    const char *p = path;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        v = json_object_get(v, key);
        p = dot ? dot + 1 : p + n;
    }
    return v;
}

static double num_at(const json_t *root, const char *path)
{
    const json_t *v = json_at(root, path);
    if (json_is_boolean(v))
        return json_is_true(v) ? 1.0 : 0.0;
    return v && json_is_number(v) ? json_number_value(v) : NAN;
}

/* Integers in full ("1234567"); others with the fewest digits that read back as v, at most
 * 15: the reply's values have 3 or 4 decimals, and a 16th or 17th digit would only be the
 * noise of dividing them by 1000 (0.00334, not 0.0033399999999999997). */
static const char *fmt_value(double v, char *buf, size_t len)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, len, "%.0f", v);
        return buf;
    }
    for (int prec = 1; prec <= 15; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;   /* %.15g when nothing shorter round-trips */
}

typedef struct {
    const char *metric;
    const char *type;   /* counter | gauge */
    const char *help;
    const char *path;
} prom_scalar;

static const prom_scalar prom_scalars[] = {
    {"basisnetd_frames_in_total", "counter", "Frames that reached the capture sink.", "source.frames_in"},
    {"basisnetd_frames_dropped_total", "counter", "Frames dropped before classification (latest-frame semantics).", "frames.dropped"},
    {"basisnetd_results_dropped_total", "counter", "Results dropped because the event loop fell behind the inference thread.", "frames.results_dropped"},
    {"basisnetd_frames_classified_total", "counter", "Frames classified.", "frames.classified"},
    {"basisnetd_frames_light_total", "counter", "Frames answered by the lightweight model.", "frames.light"},
    {"basisnetd_frames_specialist_total", "counter", "Frames answered by the synthesized specialist.", "frames.specialist"},
    {"basisnetd_frames_deadline_total", "counter", "Frames answered light because the deadline left no time.", "frames.deadline"},
    {"basisnetd_synth_layers_total", "counter", "Synthesized layers due on specialist frames.", "frames.synth_layers"},
    {"basisnetd_synth_reused_total", "counter", "Of those, layers whose weights were kept (engine.synth_reuse).", "frames.synth_reused"},
    {"basisnetd_synth_reused_share", "gauge", "Share of synthesized layers kept since start (engine.synth_reuse).", "frames.synth_reused_share"},
    {"basisnetd_gate_reused_total", "counter", "Frames the gate found unchanged: the last answer republished, the engine not run.", "frames.gate_reused"},
    {"basisnetd_gate_reused_share", "gauge", "Share of published frames the gate reused since start.", "frames.gate_reused_share"},
    {"basisnetd_gate_noise_sigma", "gauge", "The gate's noise estimate (gray levels, cell difference).", "gate.noise_sigma"},
    {"basisnetd_source_reconnects_total", "counter", "Source reconnect attempts.", "source.reconnects"},
    {"basisnetd_source_up", "gauge", "1 while frames flow from the source.", "source.up"},
    {"basisnetd_frames_per_second", "gauge", "Published frames per second (recent).", "fps"},
    {"basisnetd_changes_total", "counter", "Change events (debounced stable-label changes).", "changes"},
    {"basisnetd_exit_share", "gauge", "Share of frames answered by the lightweight model.", "exit_share"},
    {"basisnetd_threshold", "gauge", "Current early-exit threshold.", "threshold"},
    {"basisnetd_subscribers", "gauge", "Connected clients.", "clients.connected"},
    {"basisnetd_client_messages_lost_total", "counter", "Messages dropped from slow clients' queues.", "clients.lost_total"},
    {"basisnetd_client_commands_rate_limited_total", "counter", "Commands ignored because a client sent more than 200 a second.", "clients.rate_limited"},
    {"basisnetd_client_read_paused_total", "counter", "Times a client's reading was paused: it sent more than 64 KiB/s.", "clients.read_paused"},
    {"basisnetd_client_reply_paused_total", "counter", "Times a client's reading was paused: 64 KiB of its replies unread.", "clients.reply_paused"},
    {"basisnetd_reloads_total", "counter", "Successful reloads.", "reload.ok"},
    {"basisnetd_reload_failures_total", "counter", "Rejected reloads.", "reload.failed"},
    {"basisnetd_uptime_seconds", "gauge", "Seconds since start.", "uptime_s"},
    {"basisnetd_mqtt_connected", "gauge", "1 while connected to the MQTT broker.", "mqtt.connected"},
    {"basisnetd_mqtt_sent_total", "counter", "Messages delivered to the MQTT broker.", "mqtt.sent"},
    {"basisnetd_mqtt_dropped_total", "counter", "Messages lost while the broker was unreachable.", "mqtt.dropped"},
    {"basisnetd_http_clients", "gauge", "Open HTTP connections.", "http.connected"},
    {"basisnetd_http_requests_total", "counter", "HTTP requests answered.", "http.requests"},
    {"basisnetd_http_connections_rejected_total", "counter", "HTTP connections refused at http.max_clients.", "http.rejected"},
    {"basisnetd_http_streams", "gauge", "Open /stream.mjpg responses.", "http.streams"},
    {"basisnetd_http_event_clients", "gauge", "Open /events responses.", "http.event_clients"},
    {"basisnetd_http_jpeg_encodes_total", "counter", "JPEG pictures encoded for /snapshot.jpg and /stream.mjpg.", "http.jpegs"},
    {"basisnetd_http_events_lost_total", "counter", "/events messages dropped for clients that read too slowly.", "http.events_lost"},
    {"basisnetd_http_auth_failures_total", "counter", "HTTP requests answered 401 (http.auth_file).", "http.auth_failed"},
    {"basisnetd_event_snapshots_saved_total", "counter", "Change events saved in events.dir (picture and sidecar).", "events.saved"},
    {"basisnetd_event_snapshots_failed_total", "counter", "Change events that could not be written to events.dir.", "events.failed"},
    {"basisnetd_event_snapshots_dropped_total", "counter", "Change events not saved: no frame yet, or too many saves waiting.", "events.dropped"},
    {"basisnetd_event_snapshots_removed_total", "counter", "Saved events removed by retention (events.keep, events.max_bytes).", "events.removed"},
    {"basisnetd_event_snapshots", "gauge", "Saved events in events.dir.", "events.files"},
    {"basisnetd_event_snapshots_bytes", "gauge", "Bytes of the saved events (pictures and sidecars).", "events.bytes"},
    {"basisnetd_event_snapshot_save_seconds", "gauge", "Mean time to encode and write one event.", "events.save_ms.mean"},
};

/* The budget's samples, left out while budget.mode is off (a budget of 0 would read as a
 * budget of nothing); the reply's milliseconds become seconds for the _seconds names. */
static const prom_scalar prom_budget[] = {
    {"basisnetd_budget_seconds", "gauge", "Latency budget per frame.", "budget.latency_ms"},
    {"basisnetd_budget_mean_seconds", "gauge", "Mean compute per frame over the budget window.", "budget.mean_ms"},
    {"basisnetd_budget_unattainable", "gauge", "1 when the lightweight model alone exceeds the budget.", "budget.unattainable"},
    {"basisnetd_budget_horizon_exits_total", "counter", "Frames answered light because the horizon's budget was spent.", "budget.horizon_exits"},
};

/* A string of the stats reply as a label of a gauge that is always 1 (the Prometheus way to
 * export a state or a name); no sample when the string is absent or null. */
typedef struct {
    const char *metric;
    const char *help;
    const char *path;
    const char *label;
} prom_info;

static const prom_info prom_infos[] = {
    {"basisnetd_stable_label", "The current stable label (the last change event's), as label.", "stable", "label"},
    {"basisnetd_source_state", "The source's state (starting, running, lost, eos), as state.", "source.state", "state"},
    {"basisnetd_budget_mode", "The budget controller's mode (off, mean, deadline), as mode.", "budget.mode", "mode"},
};

char *stats_to_prometheus(const json_t *stats)
{
    if (!json_is_object(stats))
        return NULL;
    const json_t *lat = json_object_get(stats, "latency_ms");
    if (!json_is_object(lat))
        return NULL;
    char cam[256] = "";
    const json_t *c = json_object_get(stats, "camera");
    escape_label(json_is_string(c) ? json_string_value(c) : "", cam, sizeof cam);

    strbuf sb = {0};
    char num[40];
    for (size_t i = 0; i < sizeof prom_scalars / sizeof prom_scalars[0]; i++) {
        const prom_scalar *p = &prom_scalars[i];
        double v = num_at(stats, p->path);
        if (isnan(v))
            continue;
        if (strstr(p->path, "_ms") && strstr(p->metric, "_seconds"))
            v /= 1000.0; /* the reply's milliseconds, in base units */
        sb_printf(&sb, "# HELP %s %s\n# TYPE %s %s\n%s{camera=\"%s\"} %s\n", p->metric,
                  p->help, p->metric, p->type, p->metric, cam, fmt_value(v, num, sizeof num));
    }
    const json_t *mode = json_at(stats, "budget.mode");
    for (size_t i = 0; i < sizeof prom_budget / sizeof prom_budget[0]; i++) {
        const prom_scalar *p = &prom_budget[i];
        double v = num_at(stats, p->path);
        if (isnan(v) || !json_is_string(mode) || !strcmp(json_string_value(mode), "off"))
            continue;
        if (strstr(p->metric, "_seconds"))
            v /= 1000.0;
        sb_printf(&sb, "# HELP %s %s\n# TYPE %s %s\n%s{camera=\"%s\"} %s\n", p->metric,
                  p->help, p->metric, p->type, p->metric, cam, fmt_value(v, num, sizeof num));
    }
    for (size_t i = 0; i < sizeof prom_infos / sizeof prom_infos[0]; i++) {
        const prom_info *p = &prom_infos[i];
        const json_t *v = json_at(stats, p->path);
        if (!json_is_string(v))
            continue;
        char val[256];
        escape_label(json_string_value(v), val, sizeof val);
        sb_printf(&sb, "# HELP %s %s\n# TYPE %s gauge\n%s{camera=\"%s\",%s=\"%s\"} 1\n",
                  p->metric, p->help, p->metric, p->metric, cam, p->label, val);
    }
    /* the gate's verdicts, one sample per verdict */
    const json_t *verdicts = json_at(stats, "gate.verdicts");
    if (json_is_object(verdicts)) {
        const char *gm = "basisnetd_gate_decisions_total";
        sb_printf(&sb, "# HELP %s Frames the gate decided on, by verdict: closed (reused), or why "
                       "the frame was classified.\n# TYPE %s counter\n", gm, gm);
        for (int k = 0; k < GATE_VERDICTS; k++) {
            const char *name = gate_verdict_name((gate_verdict)k);
            const json_t *v = json_object_get(verdicts, name);
            if (json_is_number(v))
                sb_printf(&sb, "%s{camera=\"%s\",verdict=\"%s\"} %s\n", gm, cam, name,
                          fmt_value(json_number_value(v), num, sizeof num));
        }
    }
    const char *hm = "basisnetd_latency_seconds";
    sb_printf(&sb, "# HELP %s Per-stage latency of classified frames.\n# TYPE %s histogram\n", hm,
              hm);
    for (int k = 0; k < LAT_COUNT; k++) {
        const json_t *h = json_object_get(lat, lat_names[k]);
        const json_t *buckets = json_object_get(h, "buckets");
        if (!json_is_array(buckets))
            continue;
        double cum = 0;
        size_t i;
        const json_t *b;
        json_array_foreach(buckets, i, b) {
            const json_t *le = json_object_get(b, "le");
            cum += json_number_value(json_object_get(b, "count"));
            char lebuf[40];
            const char *les = json_is_number(le)
                                  ? fmt_value(json_number_value(le) / 1000.0, lebuf, sizeof lebuf)
                                  : "+Inf";
            sb_printf(&sb, "%s_bucket{camera=\"%s\",stage=\"%s\",le=\"%s\"} %s\n", hm, cam,
                      lat_names[k], les, fmt_value(cum, num, sizeof num));
        }
        sb_printf(&sb, "%s_sum{camera=\"%s\",stage=\"%s\"} %s\n", hm, cam, lat_names[k],
                  fmt_value(json_number_value(json_object_get(h, "sum")) / 1000.0, num,
                            sizeof num));
        sb_printf(&sb, "%s_count{camera=\"%s\",stage=\"%s\"} %s\n", hm, cam, lat_names[k],
                  fmt_value(json_number_value(json_object_get(h, "count")), num, sizeof num));
    }
    if (sb.oom) {
        free(sb.buf);
        return NULL;
    }
    return sb.buf;
}
