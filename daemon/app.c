/* basisnetd runtime (see app.h): start-up, the source and the inference thread, event
 * sources, stop. Everything except inference runs on the default GLib main context: results
 * arrive through infer's eventfd, clients through server, signals through g_unix_signal_add,
 * and one housekeeping tick drives fps, STATUS= and the watchdog. The source and inference
 * are app_source.c, messages app_publish.c, the engine set and reload app_reload.c,
 * commands app_commands.c (app_internal.h). */
#include <errno.h>
#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "app_internal.h"
#include "bn_log.h"

#define MOD "daemon"
#define STOP_FLUSH_MS 500

static void update_status(app *a, gint64 now)
{
    budget_stats bs;
    memset(&bs, 0, sizeof bs);
    if (a->inf)
        infer_budget_stats(a->inf, &bs);
    char gate[48] = "";
    if (a->cfg.gate.mode == GATE_MODE_AUTO)
        snprintf(gate, sizeof gate, ", gate reused %.0f%%",
                 100.0 * stats_gate_reused_share(&a->stats));
    sd_notifyf(0,
               "STATUS=%.1f fps, latency mean %.2f ms p99 %.2f ms, exit share %.0f%%, "
               "threshold %.3f%s, %d subscribers, source %s",
               a->fps, a->stats.hist[LAT_TOTAL].n ? a->stats.hist[LAT_TOTAL].sum_ms /
                                                        (double)a->stats.hist[LAT_TOTAL].n
                                                  : 0.0,
               stats_recent_quantile(&a->stats, 0.99), 100.0 * stats_exit_share(&a->stats),
               bs.threshold, gate, server_client_count(a->srv),
               app_capture_state_name(a->src_state));
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
        uint64_t published = stats_frames_published(&a->stats);
        double inst = (double)(published - a->fps_frames) / dt;
        a->fps = a->fps_time_us ? inst : 0;
        a->fps_frames = published;
        a->fps_time_us = now;
    }
    if (a->wd_usec && (uint64_t)(now - a->last_progress_us) < a->wd_usec / 2)
        sd_notify(0, "WATCHDOG=1");
    if (now - a->last_status_us >= (gint64)a->cfg.stats_interval_s * 1000000)
        update_status(a, now);
    if (a->mqtt && now - a->last_mqtt_stats_us >= (gint64)a->cfg.stats_interval_s * 1000000) {
        app_publish_mqtt_stats(a);
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
    app_do_reload(a, err, sizeof err);
    return G_SOURCE_CONTINUE;
}

/* ---- run ----------------------------------------------------------------------------------- */

static void app_stop(app *a)
{
    sd_notify(0, "STOPPING=1");
    app_cancel_retry(a);
    if (a->inf)
        app_stop_infer(a);
    server_flush(a->srv, STOP_FLUSH_MS);
    mqtt_close(a->mqtt);    /* "offline" on P/status, waits <= 1 s for messages in flight */
    a->mqtt = NULL;
    capture_close(a->cap);
    a->cap = NULL;
    http_close(a->http);
    a->http = NULL;
    app_events_close(a, a->events);  /* writes the events still queued */
    a->events = NULL;
    frame_slot_free(a->frames);
    a->frames = NULL;
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
    app_engine_set_free(&a->eng);
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
    /* The same checks and messages as --check-config, before anything starts. */
    if (config_check_resources(&a->cfg, opt->listen_fd >= 0 ? CONFIG_CHECK_NO_SOCKET : 0, err,
                               sizeof err) != BN_OK) {
        BN_LOGE(MOD, "config rejected:\n%s", err);
        goto out;
    }
    bn_log_set_level((bn_log_level)a->cfg.log_level);
    debounce_init(&a->deb, a->cfg.publish.change_frames);

    if (app_engine_set_open(&a->cfg, &a->eng, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "%s", err);
        goto out;
    }
    a->info = bn_model_get_info(a->eng.model);
    BN_LOGI(MOD, "model %s: %d classes, input %dx%dx%d (light %dx%d), %d bases",
            a->info->name ? a->info->name : "?", a->info->num_classes, a->info->width,
            a->info->height, a->info->channels, a->info->light_width, a->info->light_height,
            a->info->num_bases);
    app_rebuild_hello(a);
    a->loop = g_main_loop_new(NULL, FALSE);

    server_params sp = {.path = a->cfg.publish.socket, .mode = a->cfg.publish.mode,
                        .group = a->cfg.publish.group,
                        .control_group = a->cfg.publish.control_group,
                        .max_clients = a->cfg.publish.max_clients, .queue = a->cfg.publish.queue,
                        .max_line = a->cfg.publish.max_line, .listen_fd = opt->listen_fd,
                        .context = NULL, .hello = app_hello_cb, .command = app_on_command, .user = a};
    if (server_open(&sp, &a->srv, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "%s", err);
        goto out;
    }
    BN_LOGI(MOD, "listening on %s", server_activated(a->srv) ? "a socket passed by systemd"
                                                             : a->cfg.publish.socket);
    if (a->cfg.http.enabled) {
        http_auth *auth = NULL;
        if (app_http_auth_load(&a->cfg, &auth, err, sizeof err) != BN_OK ||
            app_http_open(a, &a->cfg, &a->http, err, sizeof err) != BN_OK) {
            http_auth_free(auth);
            BN_LOGE(MOD, "%s", err);
            goto out;
        }
        http_set_auth(a->http, auth);
    }
    if (a->cfg.events.enabled &&
        app_events_open(a, &a->cfg, &a->events, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "%s", err);
        goto out;
    }
    if (a->cfg.mqtt.enabled &&
        mqtt_open(&a->cfg.mqtt, a->cfg.camera, &a->mqtt, err, sizeof err) != BN_OK) {
        BN_LOGE(MOD, "%s", err);
        goto out;
    }
    if (app_source_begin(a, err, sizeof err) != BN_OK) {
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
    if (a->stats.gate_reused)
        BN_LOGI(MOD, "gate: %llu frames reused, %llu classified",
                (unsigned long long)a->stats.gate_reused, (unsigned long long)a->stats.classified);
    if (a->stats.synth_reused)
        BN_LOGI(MOD, "stopped after %llu frames (synthesis reuse kept %llu of %llu layers)",
                (unsigned long long)a->stats.classified, (unsigned long long)a->stats.synth_reused,
                (unsigned long long)a->stats.synth_layers);
    else
        BN_LOGI(MOD, "stopped after %llu frames", (unsigned long long)a->stats.classified);
out:
    app_stop(a);
    free(a);
    return rc;
}


