/* Reload (SIGHUP, `reload`). A reload is all or nothing: every part of the new config is
 * parsed, opened or checked first, beside the running one (config, model, session, budget,
 * socket groups, an MQTT client that does not connect yet, a new HTTP listener, the new
 * source); only when all of it succeeded does anything observable switch (socket access and
 * limits, MQTT, engine, config, source, hello). On any failure the previous config keeps
 * running as it was, its source never stopped. The one exception is a new source that
 * cannot be opened while the running one is (the same camera): the running source is
 * closed first, and reopened if the new one fails (tests/integration/daemon_reload_faults.sh
 * fails each step). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "app_internal.h"
#include "bn_log.h"

#define MOD "daemon"

static bool same_source(const bn_config *x, const bn_config *y)
{
    return memcmp(&x->source, &y->source, sizeof x->source) == 0;
}

static bool same_http(const http_config *x, const http_config *y)
{
    return x->enabled == y->enabled && x->allow_remote == y->allow_remote &&
           x->max_clients == y->max_clients && strcmp(x->listen, y->listen) == 0;
}

/* The new config's parts opened before anything switches. */
typedef struct {
    bn_config *cfg;
    engine_set eng;
    mqtt_client *mqtt;      /* a new client when the mqtt section changed and is enabled;
                               prepared, it connects only once committed */
    bool mqtt_changed;
    http_server *http;      /* a new listener when http.listen changed (or http was off) */
    event_store *events;    /* a new store when the events section changed */
    http_auth *auth;        /* http.auth_file read again (NULL: none) */
    bool events_changed;
    capture *cap;           /* the new source, when it differs from the running one */
    bool new_capture;
    bool retry_capture;     /* a valid new source that is not there yet: retried */
    bool old_closed;        /* the running source was closed for the new one (same device) */
} reload_set;

static void reload_set_free(app *a, reload_set *n)
{
    app_events_close(a, n->events);
    n->events = NULL;
    http_auth_free(n->auth);
    n->auth = NULL;
    capture_close(n->cap);
    n->cap = NULL;
    mqtt_close(n->mqtt);
    n->mqtt = NULL;
    http_close(n->http);
    n->http = NULL;
    app_engine_set_free(&n->eng);
    free(n->cfg);
    n->cfg = NULL;
}

/* Steps that stop nothing of the running config. */
static bn_status reload_prepare(app *a, reload_set *n, char *err, size_t errlen)
{
    n->cfg = malloc(sizeof *n->cfg);
    if (!n->cfg) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    config_init(n->cfg);
    bn_status st = config_load(a->opt.config_path, n->cfg, err, errlen);
    if (st != BN_OK)
        return st;
    if (a->opt.socket_override)
        snprintf(n->cfg->publish.socket, sizeof n->cfg->publish.socket, "%s",
                 a->opt.socket_override);
    /* The socket stays open across a reload: its directory is not checked again. */
    st = config_check_resources(n->cfg, CONFIG_CHECK_NO_SOCKET, err, errlen);
    if (st != BN_OK)
        return st;
    st = app_engine_set_open(n->cfg, &n->eng, err, errlen);
    if (st != BN_OK)
        return st;
    st = server_check_access(n->cfg->publish.group, n->cfg->publish.control_group, err, errlen);
    if (st != BN_OK)
        return st;
    n->mqtt_changed = memcmp(&a->cfg.mqtt, &n->cfg->mqtt, sizeof n->cfg->mqtt) != 0 ||
                      strcmp(a->cfg.camera, n->cfg->camera) != 0;
    if (n->mqtt_changed && n->cfg->mqtt.enabled) {
        st = mqtt_prepare(&n->cfg->mqtt, n->cfg->camera, &n->mqtt, err, errlen);
        if (st != BN_OK)
            return st;
    }
    /* A new address is bound now, beside the running listener (which keeps serving if this
     * fails); the same address keeps the running one. */
    if (!same_http(&a->cfg.http, &n->cfg->http) && n->cfg->http.enabled &&
        !(a->http && http_listen_equal(a->cfg.http.listen, n->cfg->http.listen))) {
        st = app_http_open(a, n->cfg, &n->http, err, errlen);
        if (st != BN_OK)
            return st;
    }
    /* Read at every reload, so that a changed password file applies without a restart. */
    st = app_http_auth_load(n->cfg, &n->auth, err, errlen);
    if (st != BN_OK)
        return st;
    n->events_changed = memcmp(&a->cfg.events, &n->cfg->events, sizeof n->cfg->events) != 0;
    if (n->events_changed && n->cfg->events.enabled) {
        st = app_events_open(a, n->cfg, &n->events, err, errlen);
        if (st != BN_OK)
            return st;
    }
    const bn_model_info *ni = bn_model_get_info(n->eng.model);
    n->new_capture = !a->cap || !same_source(&a->cfg, n->cfg) || ni->width != a->info->width ||
                     ni->height != a->info->height || ni->channels != a->info->channels;
    return BN_OK;
}

/* Opens the new source beside the running one, which keeps delivering frames. A new source
 * that is missing or busy while another one runs may be the same camera (a device cannot be
 * opened twice): that is left to reload_open_capture_exclusive. */
static bn_status reload_open_capture(app *a, reload_set *n, char *err, size_t errlen)
{
    if (!n->new_capture)
        return BN_OK;
    bn_status st = app_open_capture(a, n->cfg, bn_model_get_info(n->eng.model), &n->cap, err,
                                    errlen);
    if (st != BN_OK && bn_status_recoverable(st)) {
        if (!a->cap)
            n->retry_capture = true;    /* nothing runs that could hold it: retried */
        return BN_OK;
    }
    return st;
}

/* The new source could not open beside the running one: the running source is closed (the
 * inference thread is stopped) and the new one opened again. On an error a retry cannot fix,
 * the caller reopens the old one. */
static bn_status reload_open_capture_exclusive(app *a, reload_set *n, char *err, size_t errlen)
{
    if (!n->new_capture || n->cap || n->retry_capture)
        return BN_OK;
    app_cancel_retry(a);
    capture_close(a->cap);
    a->cap = NULL;
    n->old_closed = true;
    bn_status st = app_open_capture(a, n->cfg, bn_model_get_info(n->eng.model), &n->cap, err,
                                    errlen);
    if (st != BN_OK && bn_status_recoverable(st)) {
        n->retry_capture = true;
        return BN_OK;
    }
    return st;
}

/* Everything opened: switch. Only server_set_access can still fail (chown/chmod of the
 * socket file); it is first, and undone if it does. */
static bn_status reload_commit(app *a, reload_set *n, char *err, size_t errlen)
{
    const publish_config *np = &n->cfg->publish, *op = &a->cfg.publish;
    bn_status st = server_set_access(a->srv, np->mode, np->group, np->control_group, err, errlen);
    if (st != BN_OK) {
        char e2[256];
        if (server_set_access(a->srv, op->mode, op->group, op->control_group, e2, sizeof e2) !=
            BN_OK)
            BN_LOGE(MOD, "cannot restore the socket's access: %s", e2);
        return st;
    }
    if (n->mqtt_changed) {
        mqtt_close(a->mqtt);
        a->mqtt = n->mqtt;
        n->mqtt = NULL;
        mqtt_start(a->mqtt);
    }
    if (n->http) {
        http_close(a->http);
        a->http = n->http;
        n->http = NULL;
    } else if (!n->cfg->http.enabled && a->http) {
        http_close(a->http);
        a->http = NULL;
        BN_LOGI(MOD, "HTTP off (the http: section was removed)");
    }
    http_set_max_clients(a->http, n->cfg->http.max_clients);
    http_set_auth(a->http, n->auth);
    n->auth = NULL;
    if (n->events_changed) {
        app_events_close(a, a->events);
        a->events = n->events;
        n->events = NULL;
        if (!a->events)
            BN_LOGI(MOD, "event snapshots off (the events: section was removed)");
    }
    if (strcmp(op->socket, np->socket) != 0)
        BN_LOGW(MOD, "publish.socket changed to %s: takes effect at the next restart",
                np->socket);
    server_set_limits(a->srv, np->max_clients, np->queue, np->max_line);
    app_engine_set_free(&a->eng);
    a->eng = n->eng;
    memset(&n->eng, 0, sizeof n->eng);
    a->info = bn_model_get_info(a->eng.model);
    a->cfg = *n->cfg;
    bn_log_set_level((bn_log_level)a->cfg.log_level);
    debounce_init(&a->deb, a->cfg.publish.change_frames);
    app_rebuild_hello(a);
    server_publish(a->srv, a->hello);   /* labels may have changed: tell every subscriber */
    http_publish(a->http, a->hello);    /* and every /events client */
    if (n->new_capture) {
        app_cancel_retry(a);
        capture_close(a->cap);              /* the old source, when it was still open */
        a->cap = n->cap;                    /* NULL when retried: app_source_begin opens it */
        n->cap = NULL;
        a->src_state = CAPTURE_STARTING;    /* src_was_lost stays: "recovered" follows */
    }
    return BN_OK;
}

static bn_status reload(app *a, char *err, size_t errlen)
{
    reload_set n;
    memset(&n, 0, sizeof n);
    bn_status st = reload_prepare(a, &n, err, errlen);
    if (st == BN_OK)
        st = reload_open_capture(a, &n, err, errlen);
    if (st != BN_OK) {     /* nothing that runs was touched */
        reload_set_free(a, &n);
        return st;
    }
    /* From here inference pauses for a moment; subscribers stay connected. */
    app_stop_infer(a);
    st = reload_open_capture_exclusive(a, &n, err, errlen);
    if (st == BN_OK)
        st = reload_commit(a, &n, err, errlen);
    bool old_source_closed = st != BN_OK && n.old_closed;
    reload_set_free(a, &n);
    /* Inference again: on the new config's source, or (rejected) on the old one, reopened
     * when it was closed for the new. */
    char err2[1024];
    bn_status st2 = BN_OK;
    if (a->cap && !old_source_closed)
        st2 = app_start_infer(a, err2, sizeof err2);
    else if (!a->retry_src)     /* a pending retry of a missing source opens it itself */
        st2 = app_source_begin(a, err2, sizeof err2);
    if (st2 != BN_OK) {
        BN_LOGE(MOD, "cannot restart inference after reload: %s", err2);
        a->exit_code = 1;
        g_main_loop_quit(a->loop);
    } else if (a->inf && !a->result_src) {
        app_attach_results(a);
    }
    return st;
}

bn_status app_do_reload(app *a, char *err, size_t errlen)
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
    /* A reload frees a whole model, engine session and pipeline, or the new ones that were
     * rejected; give those pages back (glibc keeps freed heap otherwise, and RSS creeps up
     * reload after reload to a plateau well above what is in use). */
    malloc_trim(0);
    sd_notify(0, "READY=1");
    return st;
}
